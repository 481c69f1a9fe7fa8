"""Training examples from qrels, and BM25-mined negatives checked against brute-force BM25."""

from __future__ import annotations

import pytest

from rankstack.index import build_inverted_index
from rankstack.train.examples import Example, TrainingSet, bm25_negatives, doc_texts
from rankstack.types import Corpus, Qrels, Ranking
from tests.helpers import brute_force_bm25
from tests.train.conftest import toy_docs, toy_qrels, toy_queries


def test_examples_are_the_positive_judgments_with_known_query_and_document():
    texts = doc_texts(toy_docs())
    data = TrainingSet.from_qrels(toy_queries(), toy_qrels(), texts)
    pairs = [(e.qid, e.positive) for e in data.examples]
    assert pairs[:3] == [("q0", "d0"), ("q1", "d1"), ("q2", "d2")]
    assert ("q0", "d1") in pairs and ("q1", "d0") not in pairs  # relevance 0 is not a positive
    assert data.examples[0] == Example("q0", "where does the cat live", "d0")
    assert data.positives["q0"] == {"d0", "d1"} and data.positives["q1"] == {"d1"}


def test_missing_documents_and_queries_are_skipped_with_a_warning_and_duplicates_count_once():
    texts = doc_texts(toy_docs())
    qrels = Qrels(["q0", "q0", "q0", "q99"], ["d0", "d0", "gone", "d1"], [1, 2, 1, 1])
    with pytest.warns(UserWarning, match="1 queries have no text, 1 positives are not in the corpus"):
        data = TrainingSet.from_qrels(toy_queries(), qrels, texts)
    assert [(e.qid, e.positive) for e in data.examples] == [("q0", "d0")]
    with pytest.raises(ValueError, match="no training examples"):
        TrainingSet.from_qrels(toy_queries(), Qrels(["q0"], ["d0"], [0]), texts)


def test_with_negatives_never_keeps_a_judged_positive_or_an_unknown_document():
    data = TrainingSet.from_qrels(toy_queries(), toy_qrels(), doc_texts(toy_docs()))
    pools = data.with_negatives({"q0": ["d0", "d5", "d1", "nope", "d3"], "q2": ["d2"]}).negatives
    assert pools == {"q0": ["d5", "d3"], "q2": []}
    assert data.negatives == {}  # a copy: the original is untouched


def test_doc_texts_from_corpus_mapping_and_index_agree(tmp_path):
    docs = toy_docs()
    index = build_inverted_index(docs, tmp_path / "idx", show_progress=False)
    from_docs = doc_texts(Corpus.from_documents(docs))
    assert from_docs["d0"] == "cat story The cat lives near the river. It is a cat of the river. People watch it daily."
    assert doc_texts(index) == from_docs
    assert doc_texts({d.docid: d for d in docs}) == from_docs
    assert doc_texts({"x": "plain"}) == {"x": "plain"}


def test_bm25_negatives_are_the_bm25_ranking_without_positives(tmp_path):
    docs = toy_docs()
    index = build_inverted_index(docs, tmp_path / "idx", show_progress=False)
    queries = {"q0": "cat river farm", "q1": "river people"}
    positives = {"q0": {"d0", "d1"}, "q1": {"d6"}}
    pools = bm25_negatives(queries, positives, index, depth=3)
    for qid, text in queries.items():
        scores = brute_force_bm25(docs, text)
        expected = sorted((s for d, s in scores.items() if d not in positives[qid]), reverse=True)[:3]
        # compared by score: documents tied at the cut may be any of the tied ones
        assert [scores[d] for d in pools[qid]] == pytest.approx(expected, rel=1e-5)
        assert not set(pools[qid]) & positives[qid]
    assert pools["q0"][0] not in ("d0", "d1") and len(pools["q1"]) == 3  # positives removed, pool still full


def test_bm25_negatives_take_any_stage_and_keep_queries_without_hits(tmp_path):
    index = build_inverted_index(toy_docs(), tmp_path / "idx", show_progress=False)
    with pytest.warns(UserWarning, match="no terms"):
        pools = bm25_negatives({"q0": "horse", "q1": "the"}, {"q0": {"d2"}}, index.bm25(k=5), depth=10)
    assert pools == {"q0": [], "q1": []}  # only d2 mentions horses; "the" is a stopword


def _many_per_query() -> TrainingSet:
    texts = {f"d{i}": f"text {i}" for i in range(30)}
    qrels = Qrels(["big"] * 20 + ["small"] * 2, [f"d{i}" for i in range(22)], [1] * 22)
    return TrainingSet.from_qrels({"big": "broad topic", "small": "narrow question"}, qrels, texts)


def test_sample_caps_examples_per_query_then_in_all_and_keeps_every_positive():
    data = _many_per_query()
    capped = data.sample(max_per_query=3, seed=1)
    by_query = [e.qid for e in capped.examples]
    assert by_query.count("big") == 3 and by_query.count("small") == 2  # a small query is kept whole
    assert {e.positive for e in capped.examples if e.qid == "small"} == {"d20", "d21"}
    assert capped.sample(max_per_query=3, seed=1).examples == capped.examples  # seeded
    assert capped.positives == data.positives  # a sampled-out judgment is still never a negative
    assert len(data.sample(4, max_per_query=3, seed=1)) == 4
    assert len(data.sample(100)) == len(data) and data.sample().examples == data.examples


def test_retrieved_by_keeps_positives_the_first_stage_ranks_within_the_depth():
    data = _many_per_query()
    run = Ranking(["big", "big", "big", "small", "small"], ["x", "d3", "d7", "d21", "d20"], [5.0, 4, 3, 2, 1])
    kept = data.retrieved_by(run, depth=2)
    assert [(e.qid, e.positive) for e in kept.examples] == [("big", "d3"), ("small", "d20"), ("small", "d21")]
    assert kept.positives == data.positives
    with pytest.raises(ValueError, match="raise the depth"):
        data.retrieved_by(Ranking(["big"], ["x"], [1.0]), depth=5)
