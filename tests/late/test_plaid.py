"""PLAID search and the ColBERT stage: exact when nothing is pruned, close when it is, refuses other encoders."""

from __future__ import annotations

import numpy as np
import pytest

import rankstack
from rankstack.errors import RankstackError
from rankstack.index.tokens import build_token_index
from rankstack.late import ColBERT, ColBERTEncoder, PlaidSettings, build_colbert_index, maxsim
from rankstack.late.plaid import _centroid_interaction, search_one
from rankstack.types import Queries
from tests.index.test_tokens import DIM, MODEL, toy_docs, unit
from tests.rerank.conftest import make_tiny_bert_encoder, toy_queries
from tests.rerank.conftest import toy_docs as toy_corpus

EVERYTHING = PlaidSettings(nprobe=10**6, threshold=-10.0, ndocs=10**6)


def brute_force(query, mats, live, k):
    scores = np.array([maxsim(query, m) if live[i] else -np.inf for i, m in enumerate(mats)])
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return order[np.isfinite(scores[order])], scores[order][np.isfinite(scores[order])]


@pytest.fixture()
def queries():
    """Queries shaped like the documents (tokens near the same topics), so some documents match them well."""
    rng = np.random.default_rng(5)
    _, mats = toy_docs(6, seed=11)
    return unit(np.stack([m[:3] for m in mats]) + 0.2 * rng.normal(size=(6, 3, DIM)))


def test_without_compression_or_pruning_search_equals_exhaustive_maxsim(tmp_path, queries):
    ids, mats = toy_docs(60)
    index = build_token_index(tmp_path / "idx", [(ids, mats)], MODEL, bits=0, num_centroids=8)
    stored = [np.asarray(m, np.float16).astype(np.float32) for m in mats]  # what the index keeps
    live = np.ones(60, bool)
    for q in queries:
        want_pos, want_scores = brute_force(q, stored, live, 10)
        for exhaustive in (False, True):
            pos, scores = search_one(index, q, 10, EVERYTHING, exhaustive=exhaustive)
            np.testing.assert_array_equal(pos, want_pos)
            np.testing.assert_allclose(scores, want_scores, atol=1e-4)
    index = index.delete(["d3", "d10"])
    live[[3, 10]] = False
    for q in queries:
        pos, _ = search_one(index, q, 60, EVERYTHING)
        assert len(pos) == 58 and 3 not in pos and 10 not in pos


def test_compressed_search_scores_are_exact_maxsim_over_decompressed_vectors(tmp_path, queries):
    ids, mats = toy_docs(80)
    index = build_token_index(tmp_path / "idx", [(ids, mats)], MODEL, bits=2, num_centroids=16)
    decoded = [index.doc_vectors([i])[0] for i in range(80)]
    for q in queries:
        exact_pos, _ = brute_force(q, decoded, np.ones(80, bool), 10)
        pos, scores = search_one(index, q, 10, PlaidSettings(nprobe=2, threshold=0.2, ndocs=64))
        for p, s in zip(pos, scores, strict=True):
            assert s == pytest.approx(maxsim(q, decoded[p]), abs=1e-4)  # survivors are scored exactly
        full, _ = search_one(index, q, 10, EVERYTHING)
        np.testing.assert_array_equal(full, exact_pos)


def test_centroid_interaction_is_maxsim_over_centroids_with_pruned_tokens_left_out(tmp_path, queries):
    ids, mats = toy_docs(30)
    index = build_token_index(tmp_path / "idx", [(ids, mats)], MODEL, bits=2, num_centroids=16)
    for q in queries:
        scores = np.ascontiguousarray(index.centroids @ q.T)
        keep = scores.max(axis=1) >= 0.3
        cand = np.array([0, 4, 7, 29], dtype=np.int64)
        got = _centroid_interaction(cand, index.doc_offsets, np.asarray(index.codes), scores, keep)
        for d, value in zip(cand, got, strict=True):
            codes = np.asarray(index.codes[index.doc_offsets[d] : index.doc_offsets[d + 1]])
            kept = codes[keep[codes]]
            want = maxsim(q, index.centroids[kept]) if len(kept) else 0.0
            assert value == pytest.approx(want, abs=1e-5)


def test_k_beyond_the_collection_returns_every_document(tmp_path, queries):
    ids, mats = toy_docs(7)
    index = build_token_index(tmp_path / "idx", [(ids, mats)], MODEL, bits=2, num_centroids=4)
    pos, scores = search_one(index, queries[0], 50, PlaidSettings.for_k(50))
    assert sorted(pos.tolist()) == list(range(7)) and np.all(np.diff(scores) <= 0)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    path = make_tiny_bert_encoder(tmp_path_factory.mktemp("plaid") / "bert")
    return ColBERTEncoder(path, dim=16, device="cpu")


def test_the_stage_end_to_end_from_an_index(tiny_encoder, tmp_path):
    corpus = toy_corpus()
    index = build_colbert_index(corpus, tiny_encoder, tmp_path / "idx", bits=0, show_progress=False)
    assert index.manifest["model"]["fingerprint"] == tiny_encoder.fingerprint
    stage = rankstack.open(tmp_path / "idx").colbert(tiny_encoder, k=5, nprobe=10**6, threshold=-10.0, ndocs=10**6)
    queries = toy_queries()
    ranking = stage(queries)
    frame = ranking.to_pandas()
    assert set(frame.groupby("qid").size()) == {5}
    docs = {d.docid: d.contents() for d in corpus}
    qvecs = tiny_encoder.encode_queries(queries.text.tolist())
    for row in frame[frame.qid == "q2"].itertuples():
        want = maxsim(qvecs[2], tiny_encoder.encode_docs([docs[row.docid]])[0].astype(np.float16).astype(np.float32))
        assert row.score == pytest.approx(want, abs=1e-3)
    assert len((stage % 2)(queries)) == 2 * len(queries)  # the cut-off is pushed into the stage
    assert "colbert" in repr(stage)
    assert len(stage(Queries([], []))) == 0


def test_an_index_refuses_another_encoder(tiny_encoder, tmp_path):
    build_colbert_index(toy_corpus(), tiny_encoder, tmp_path / "idx", bits=2, show_progress=False)
    other = ColBERTEncoder(tiny_encoder.path, dim=16, seed=1, device="cpu")  # another projection
    with pytest.raises(RankstackError, match="fingerprint"):
        ColBERT(tmp_path / "idx", other)


def test_the_reranker_scores_indexed_documents_from_stored_vectors(tiny_encoder, tmp_path):
    from rankstack.late import ColBERTReranker
    from tests.rerank.conftest import toy_ranking

    corpus = toy_corpus()
    index = build_colbert_index(corpus[:8], tiny_encoder, tmp_path / "idx", bits=0, show_progress=False)
    docs = {d.docid: d.contents() for d in corpus}
    ranking = toy_ranking(depth=5)
    from_index = ColBERTReranker(tiny_encoder, docs=docs, index=index)(ranking).to_pandas()
    encoded = ColBERTReranker(tiny_encoder, docs=docs)(ranking).to_pandas()
    merged = from_index.merge(encoded, on=["qid", "docid"])
    np.testing.assert_allclose(merged.score_x, merged.score_y, rtol=3e-4)  # d0..d7 come from float16 storage
    assert len(merged) == len(ranking)
