"""Exact top-k against brute force, ANCE mining with the model itself, denoising, bi-encoder scoring."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.dense.encoder import BiEncoder
from rankstack.train.examples import doc_texts
from rankstack.train.negatives import AnceRefresh, denoise, dense_negatives, exact_top_k
from rankstack.train.scoring import BiEncoderScorer, score_pools
from tests.train.conftest import toy_docs


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_exact_top_k_equals_a_full_sort(chunk_size):
    rng = np.random.default_rng(0)
    q, d = rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=(100, 8)).astype(np.float32)
    idx, scores = exact_top_k(q, d, 10, chunk_size=chunk_size)
    full = q @ d.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-6)
    assert exact_top_k(q, d[:3], 10)[0].shape == (5, 3)  # k larger than the corpus


def test_exact_top_k_breaks_ties_by_row():
    q = np.ones((1, 2), np.float32)
    d = np.array([[0, 1], [1, 0], [2, 2], [0.5, 0.5]], np.float32)
    assert exact_top_k(q, d, 4, chunk_size=2)[0].tolist() == [[2, 0, 1, 3]]


def test_dense_negatives_follow_the_model_and_skip_positives(tiny_model_dir):
    encoder = BiEncoder(tiny_model_dir)
    texts = doc_texts(toy_docs())
    queries = {"q0": "where does the cat live", "q1": "owl forest"}
    positives = {"q0": ["d0", "d1"], "q1": ["d6"]}
    pools = dense_negatives(encoder, queries, texts, positives, depth=4)
    docids = list(texts)
    dv = encoder.encode_docs([texts[d] for d in docids])
    for qid, text in queries.items():
        scores = dv @ encoder.encode_queries([text])[0]
        ranked = [docids[i] for i in np.argsort(-scores, kind="stable")]
        assert pools[qid] == [d for d in ranked if d not in positives[qid]][:4]
    refresh = AnceRefresh(queries, texts, positives, depth=4, show_progress=False)
    assert refresh(encoder) == pools


def _table_scorer(table):
    """A scorer that looks scores up by text, recording its calls."""
    calls = []

    def score(query, docs):
        calls.append((query, list(docs)))
        return [table[query][d] for d in docs]

    score.calls = calls
    return score


def test_denoise_drops_negatives_scored_above_the_positive_or_a_threshold():
    texts = {"p": "P", "p2": "P2", "a": "A", "b": "B", "c": "C"}
    table = {"Q1": {"P": 1.0, "P2": 0.6, "A": 0.9, "B": 0.5, "C": 0.61}, "Q2": {"A": 3.0, "B": 2.0}}
    queries = {"q1": "Q1", "q2": "Q2"}
    positives = {"q1": ["p", "p2"], "q2": []}
    negatives = {"q1": ["a", "b", "c"], "q2": ["a", "b"], "q3": ["c"]}
    scorer = _table_scorer(table)
    # the lowest positive scores 0.6: a (0.9) and c (0.61) rank above it
    assert denoise(queries, positives, negatives, texts, scorer) == {"q1": ["b"], "q2": ["a", "b"], "q3": ["c"]}
    assert len(scorer.calls) == 2  # one call per query that has text and a pool
    assert denoise(queries, positives, negatives, texts, scorer, margin=-0.05) == {
        "q1": ["b", "c"],
        "q2": ["a", "b"],
        "q3": ["c"],
    }
    assert denoise(queries, positives, negatives, texts, scorer, margin=-1.0, threshold=2.5) == {
        "q1": ["a", "b", "c"],
        "q2": ["b"],
        "q3": ["c"],
    }


def test_score_pools_checks_the_scorer_answers_every_document():
    with pytest.raises(ValueError, match="1 scores for 2 documents"):
        score_pools({"q": "Q"}, {"q": ["a"]}, {"q": ["b"]}, {"a": "A", "b": "B"}, lambda q, docs: [0.0])


class OverlapPairs:
    """A pair model (``score_pairs``): shared words, counting its calls."""

    def __init__(self):
        self.calls = 0

    def score_pairs(self, queries, docs):
        self.calls += 1
        return [float(len(set(q.split()) & set(d.split()))) for q, d in zip(queries, docs, strict=True)]


def test_score_pools_scores_a_pair_model_in_one_call_as_the_per_query_scorer_does():
    queries = {"q1": "cat mat", "q2": "dog"}
    positives, negatives = {"q1": ["a"], "q2": ["b"]}, {"q1": ["b", "c", "gone"], "q2": ["a", "b"]}
    texts = {"a": "the cat on the mat", "b": "a dog and a cat", "c": "bones"}
    model = OverlapPairs()
    batched = score_pools(queries, positives, negatives, texts, model)
    per_query = score_pools(queries, positives, negatives, texts, lambda q, docs: model.score_pairs([q] * len(docs), docs))
    assert batched == per_query == {"q1": {"a": 2.0, "b": 1.0, "c": 0.0}, "q2": {"b": 1.0, "a": 0.0}}
    assert model.calls == 1 + 2  # one call for every pair, then one per query

    class Short(OverlapPairs):
        def score_pairs(self, queries, docs):
            return [0.0]

    with pytest.raises(ValueError, match="1 scores for 5 pairs"):
        score_pools(queries, positives, negatives, texts, Short())


def test_bi_encoder_scorer_is_the_inner_product_and_uses_its_cache(tiny_model_dir):
    encoder = BiEncoder(tiny_model_dir)
    scorer = BiEncoderScorer(encoder)
    docs = ["a cat near the river", "a dog in the city"]
    expected = encoder.encode_docs(docs) @ encoder.encode_queries(["cat"])[0]
    np.testing.assert_allclose(scorer("cat", docs), expected, rtol=1e-5, atol=1e-6)
    q = encoder.encode_queries(["cat"])[0]
    scorer.add(["primed"], q[None, :] * 2)
    assert scorer("cat", ["primed"])[0] == pytest.approx(2 * float(q @ q), rel=1e-5)
