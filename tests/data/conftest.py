"""Shared fixtures for rankstack.data tests: where the real collections live, and tiny file writers."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).parents[2] / "../shared/data").resolve()


@pytest.fixture
def shared_dir() -> Path:
    """The real collections beside the repository; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real collections not found at {SHARED_DATA}")
    return SHARED_DATA


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def write() -> Callable[[Path, str], Path]:
    """``write(path, text)``: write UTF-8 text, gzip-compressed when the name ends in .gz (a fixture, not an
    import, so it cannot collide with other packages' conftest modules)."""
    return _write
