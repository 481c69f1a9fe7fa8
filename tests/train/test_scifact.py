"""SciFact's training split as training data: every judgment usable, BM25 negatives never judged positive."""

from __future__ import annotations

import pytest

from rankstack.data import load_collection
from rankstack.index import build_inverted_index
from rankstack.train import TrainingSet, bm25_negatives, doc_texts, ict_pairs

pytestmark = pytest.mark.collection


def test_scifact_train_split_makes_examples_and_clean_negatives(tmp_path):
    col = load_collection("scifact")
    texts = doc_texts(col.corpus)
    qrels = col.qrels("train")
    data = TrainingSet.from_qrels(col.queries_for("train"), qrels, texts)
    assert len(data.positives) == 809 and len(data) == len(qrels)
    index = build_inverted_index(col.corpus, tmp_path / "idx", show_progress=False)
    pools = bm25_negatives(data.query_texts(), data.positives, index, depth=20)
    assert all(len(p) == 20 and not set(p) & data.positives[q] for q, p in pools.items())
    ict = ict_pairs(col.corpus, seed=0, max_docs=500)
    assert 450 <= len(ict) <= 500
