"""doc2query expansion on a tiny random T5: seeded per document, cached on disk, filtered (doc2query--)."""

from __future__ import annotations

import json

import pytest

from rankstack.index import build_inverted_index
from rankstack.sparse.doc2query import CACHE_FILE, Doc2Query
from rankstack.types import Document
from tests.rerank.test_t5 import make_tiny_t5

torch = pytest.importorskip("torch")

DOCS = [Document(f"d{i}", text, "A title" if i == 0 else None) for i, text in
        enumerate(["The cat sat on the mat.", "Vitamin D and bone density.", "Dogs chase cats.", ""])]  # fmt: skip


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    return make_tiny_t5(tmp_path_factory.mktemp("t5") / "model")


def test_sampling_is_seeded_per_document_and_cached(t5, tmp_path):
    d2q = Doc2Query(t5, num_queries=3, max_new_tokens=6, cache_dir=tmp_path / "cache", device="cpu")
    first = d2q.generate([d.contents() for d in DOCS])
    assert [len(q) for q in first] == [3, 3, 3, 3] and d2q.generated == 4
    alone = Doc2Query(t5, num_queries=3, max_new_tokens=6, device="cpu").generate([DOCS[2].contents()])
    assert alone == [first[2]]  # the same document alone, without a cache: the same samples
    again = Doc2Query(t5, num_queries=3, max_new_tokens=6, cache_dir=tmp_path / "cache", device="cpu")
    assert again.generate([d.contents() for d in DOCS]) == first and again.generated == 0  # all from disk
    other = Doc2Query(t5, num_queries=3, max_new_tokens=6, seed=1, cache_dir=tmp_path / "cache", device="cpu")
    assert other.generate([DOCS[1].contents()]) != [first[1]] and other.generated == 1  # settings are in the key
    with open(tmp_path / "cache" / CACHE_FILE, "a") as fh:
        fh.write('{"key": "cut sho')  # a killed writer's last line
    assert Doc2Query(t5, num_queries=3, max_new_tokens=6, cache_dir=tmp_path / "cache", device="cpu").generate(
        [DOCS[0].contents()]
    ) == [first[0]]


def test_expansion_appends_queries_and_doc2query_minus_filters(t5, tmp_path):
    d2q = Doc2Query(t5, num_queries=4, max_new_tokens=5, device="cpu")
    expanded = list(d2q.expand(DOCS, show_progress=False, chunk=3))
    assert [d.docid for d in expanded] == [d.docid for d in DOCS] and expanded[0].title == "A title"
    for doc, exp in zip(DOCS, expanded, strict=True):
        assert exp.text == " ".join([doc.text, *exp.fields["doc2query"]]) and len(exp.fields["doc2query"]) == 4

    class ByLength:  # a scorer: longer generated queries score higher
        def score_pairs(self, queries, texts):
            return [float(len(q)) for q in queries]

    kept = list(d2q.expand(DOCS, scorer=ByLength(), min_score=12.0, show_progress=False))
    for full, filtered in zip(expanded, kept, strict=True):
        assert filtered.fields["doc2query"] == [q for q in full.fields["doc2query"] if len(q) >= 12]
    index = build_inverted_index(expanded, tmp_path / "idx", show_progress=False)
    assert index.docs["d1"].text.startswith("Vitamin D and bone density.")
    with pytest.raises(ValueError, match="both"):
        list(d2q.expand(DOCS, scorer=ByLength()))
    with pytest.raises(ValueError, match="at least 1"):
        Doc2Query(t5, num_queries=0)
    assert json.dumps(expanded[0].fields)  # fields stay JSON-able (the doc store keeps them)


def test_a_doc2query_model_trained_here_writes_its_documents_queries(t5, tmp_path):
    from rankstack.train import Doc2QueryConfig, train_doc2query
    from rankstack.types import Qrels, Queries

    queries = Queries(["q1", "q2"], ["cat mat", "vitamin bones"])
    qrels = Qrels(["q1", "q2"], ["d0", "d1"], [1, 1])
    config = Doc2QueryConfig(epochs=150, batch_size=2, learning_rate=2e-2, warmup_ratio=0.0, show_progress=False)
    final = train_doc2query(t5, queries, qrels, DOCS, tmp_path / "out", config=config)
    history = json.loads((tmp_path / "out" / "trainer_state.json").read_text())["log_history"]
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    greedy = Doc2Query(final, num_queries=1, top_k=1, max_new_tokens=8)  # top-1 sampling: the likeliest query
    assert greedy.generate([DOCS[0].contents(), DOCS[1].contents()]) == [["cat mat"], ["vitamin bones"]]
    with pytest.raises(ValueError, match="no training examples"):
        train_doc2query(t5, queries, Qrels(["q1"], ["nowhere"], [1]), DOCS, tmp_path / "empty", config=config)
