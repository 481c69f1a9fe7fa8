"""A toy collection indexed twice (BM25 with its document store; BM25 with other parameters) and a tiny
random cross-encoder: enough for every serve spec shape, built in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankstack.index import build_inverted_index
from tests.rerank.conftest import make_tiny_cross_encoder, toy_docs

pytest.importorskip("fastapi")


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Path:
    """A folder with two indexes, a cross-encoder and nothing else: specs are written next to them."""
    root = tmp_path_factory.mktemp("serve")
    build_inverted_index(toy_docs(), root / "toy", show_progress=False)
    build_inverted_index(toy_docs(), root / "toy-nostore", store_docs=False, show_progress=False)
    make_tiny_cross_encoder(root / "mono")
    return root


def write_spec(folder: Path, text: str, name: str = "spec.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
