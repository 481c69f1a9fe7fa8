"""BM25 effectiveness on real collections equals Pyserini's (../shared/data/PEERS.md), within 0.005 nDCG@10."""

from __future__ import annotations

import pytest

from rankstack.data import load_collection
from rankstack.eval import evaluate
from rankstack.index import build_inverted_index


def pyserini(shared_data, collection: str) -> dict[str, float]:
    """The Pyserini row for ``collection`` in PEERS.md (measured by the people who set the target)."""
    lines = (shared_data / "PEERS.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| collection |"))
    names = [c.strip() for c in header.strip("|").split("|")][2:]
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[:2] == [collection, "pyserini"]:
            return {n: float(v) for n, v in zip(names, cells[2:], strict=True)}
    raise LookupError(f"no Pyserini row for {collection} in PEERS.md")


@pytest.mark.collection
@pytest.mark.parametrize("collection", ["scifact", "nfcorpus", "cranfield"])
def test_bm25_matches_pyserini(shared_data, tmp_path, collection):
    col = load_collection(shared_data / collection)
    index = build_inverted_index(col.corpus, tmp_path / collection, show_progress=False)
    run = index.bm25(k1=0.9, b=0.4, k=1000)(col.queries_for("test"))
    got = evaluate(run, col.qrels("test"), ["nDCG@10", "AP@1000", "R@100"])
    want = pyserini(shared_data, collection)
    assert got["nDCG@10"] == pytest.approx(want["nDCG@10"], abs=0.005)
    assert got["AP@1000"] == pytest.approx(want["AP@1000"], abs=0.005)
    assert got["R@100"] == pytest.approx(want["R@100"], abs=0.01)
