"""Shared fixtures. Collection tests read ../shared/data and are skipped when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"test collections not found at {SHARED_DATA}")
    for item in items:
        if "collection" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _collections_on_search_path(request, monkeypatch):
    """Collection tests resolve names (``scifact``) through RANKSTACK_DATA, never a download."""
    if "collection" in request.keywords and not os.environ.get("RANKSTACK_DATA"):
        monkeypatch.setenv("RANKSTACK_DATA", str(SHARED_DATA))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA
