from __future__ import annotations

import itertools
import json
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rankstack
from rankstack.errors import IndexFormatError, RankstackError
from rankstack.index.vectors import AnnConfig, VectorIndex, check_model, write_vector_index

MODEL = {"model": "test-model", "dim": 8, "fingerprint": "abc", "pooling": "mean", "normalize": True}


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int, dead=None):
    """Top k by inner product, ties by position: the definition the index must meet."""
    out_pos, out_scores = [], []
    for q in queries:
        scores = vectors.astype(np.float32) @ q.astype(np.float32)
        order = [i for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)) if dead is None or not dead[i]]
        out_pos.append(order[:k])
        out_scores.append(scores[order[:k]])
    return out_pos, out_scores


def unit(rng, n, dim=8):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(path, vectors, ids=None, ann=None, dtype="float32", chunks=3):
    ids = ids or [f"d{i}" for i in range(len(vectors))]
    bounds = np.linspace(0, len(vectors), chunks + 1).astype(int)
    blocks = [(ids[a:b], vectors[a:b]) for a, b in itertools.pairwise(bounds)]
    return write_vector_index(path, blocks, MODEL, ann, dtype=dtype)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.lists(st.integers(-2, 2), min_size=8, max_size=8), min_size=1, max_size=40),
    queries=st.lists(st.lists(st.integers(-2, 2), min_size=8, max_size=8), min_size=1, max_size=4),
    k=st.integers(1, 12),
    block=st.sampled_from([1, 3, 7, 1 << 16]),
    dead=st.sets(st.integers(0, 39), max_size=6),
)
def test_exact_search_equals_brute_force_with_ties(tmp_path_factory, data, queries, k, block, dead):
    """Across block boundaries (the search reads the vectors ``block`` rows at a time) and deleted rows."""
    vectors = np.array(data, dtype=np.float32)  # small integers: many tied scores
    q = np.array(queries, dtype=np.float32)
    index = build(tmp_path_factory.mktemp("v") / "idx", vectors)
    dead = sorted(i for i in dead if i < len(vectors))
    if dead:
        index = index.delete([f"d{i}" for i in dead])
    mask = np.isin(np.arange(len(vectors)), dead)
    with (
        mock.patch("rankstack.index.vectors._block_rows", lambda _: block),
        mock.patch("rankstack.index.vectors._SEARCH_QUERIES", 3),
    ):
        pos, scores = index.search(q, k, exact=True)
    want_pos, want_scores = brute_force(vectors, q, k, mask)
    for row in range(len(q)):
        n = len(want_pos[row])
        assert pos[row, :n].tolist() == want_pos[row]
        np.testing.assert_allclose(scores[row, :n], want_scores[row])
        assert (pos[row, n:] == -1).all() and np.isneginf(scores[row, n:]).all()


def test_vectors_stream_to_a_valid_npy_with_manifest(tmp_path):
    rng = np.random.default_rng(0)
    vectors = unit(rng, 50)
    index = build(tmp_path / "idx", vectors, chunks=7)
    np.testing.assert_array_equal(np.load(tmp_path / "idx" / "vectors.npy"), vectors)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["type"] == "dense" and manifest["format_version"] == 1
    assert manifest["num_docs"] == 50 and manifest["model"]["fingerprint"] == "abc"
    assert isinstance(rankstack.open(tmp_path / "idx"), VectorIndex)
    assert index.docids[:3].tolist() == ["d0", "d1", "d2"]
    np.testing.assert_array_equal(index.vector("d7"), vectors[7])


def test_float16_storage(tmp_path):
    rng = np.random.default_rng(1)
    vectors = unit(rng, 30)
    index = build(tmp_path / "idx", vectors, dtype="float16")
    assert index.vectors.dtype == np.float16
    pos, scores = index.search(vectors[:5], 1, exact=True)
    assert pos[:, 0].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=2e-3)


def test_corrupt_or_foreign_index_is_refused(tmp_path):
    rng = np.random.default_rng(2)
    build(tmp_path / "idx", unit(rng, 10))
    manifest_path = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="format version 99"):
        VectorIndex(tmp_path / "idx")
    build(tmp_path / "idx2", unit(rng, 10))
    with open(tmp_path / "idx2" / "vectors.npy", "r+b") as fh:
        fh.seek(200)
        fh.write(b"\xff\xff\xff\xff")
    with pytest.raises(IndexFormatError, match="checksum"):
        VectorIndex(tmp_path / "idx2")


def test_a_failed_build_leaves_the_old_index(tmp_path):
    rng = np.random.default_rng(3)
    build(tmp_path / "idx", unit(rng, 10))

    def blocks():
        yield ["a", "b"], unit(rng, 2)
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        write_vector_index(tmp_path / "idx", blocks(), MODEL, overwrite=True)
    assert VectorIndex(tmp_path / "idx").num_docs == 10
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no half-written sibling left visible


def test_dimension_mismatch_is_an_error(tmp_path):
    rng = np.random.default_rng(4)
    index = build(tmp_path / "idx", unit(rng, 10))
    with pytest.raises(ValueError, match="dimension 5 but index"):
        index.search(np.ones((1, 5), dtype=np.float32), 3)
    with pytest.raises(ValueError, match="expected vectors of dimension 8"):
        write_vector_index(tmp_path / "bad", [(["a"], np.ones((1, 5)))], MODEL)
    with pytest.raises(IndexFormatError, match="dimensional"):
        check_model(MODEL, {**MODEL, "dim": 16, "model": "other"}, tmp_path, strict=False)


def test_another_model_is_refused_or_warned(tmp_path):
    other = {**MODEL, "model": "other-model", "fingerprint": "zzz"}
    with pytest.raises(RankstackError, match="fingerprint"):
        check_model(MODEL, other, tmp_path, strict=True)
    with pytest.warns(UserWarning, match="other-model"):
        check_model(MODEL, other, tmp_path, strict=False)
    check_model(MODEL, dict(MODEL), tmp_path, strict=True)  # the same model passes silently


@pytest.mark.parametrize("ann", [None, AnnConfig(kind="hnsw", m=8, ef_search=64)])
def test_add_and_delete_equal_a_fresh_build(tmp_path, ann):
    rng = np.random.default_rng(5)
    vectors = unit(rng, 60)
    ids = [f"d{i}" for i in range(60)]
    queries = unit(rng, 6)
    index = build(tmp_path / "idx", vectors[:40], ids[:40], ann=ann)
    index = index.add(ids[40:], vectors[40:])
    replacement = unit(rng, 1)
    index = index.add(["d3"], replacement)  # re-adding a docid replaces its vector
    index = index.delete(["d10", "d11"])
    with pytest.warns(UserWarning, match="not in the index"):
        index = index.delete(["nope"])
    final_ids = [d for d in ids if d not in ("d3", "d10", "d11")] + ["d3"]
    final_vecs = np.vstack([vectors[[i for i, d in enumerate(ids) if d not in ("d3", "d10", "d11")]], replacement])
    fresh = build(tmp_path / "fresh", final_vecs, final_ids, ann=ann)
    assert index.num_docs == fresh.num_docs == 58
    for exact in (True, False):
        got_pos, got_scores = index.search(queries, 10, exact=exact)
        want_pos, want_scores = fresh.search(queries, 10, exact=exact)
        assert index.docids[got_pos].tolist() == fresh.docids[want_pos].tolist()
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6)
    assert len(list((tmp_path / "idx").glob("deleted-*.npy"))) == 1  # old tombstones cleaned
    rebuilt = index.rebuild(AnnConfig(kind="flat"))
    assert rebuilt.num_docs == 58 and not rebuilt.deleted.any()


def test_repeated_docids_keep_the_last_vector(tmp_path):
    vectors = np.eye(8, dtype=np.float32)[:3]
    with pytest.warns(UserWarning, match="1 repeated docids"):
        index = write_vector_index(tmp_path / "idx", [(["a", "b", "a"], vectors)], MODEL)
    assert index.num_docs == 2
    np.testing.assert_array_equal(index.vector("a"), vectors[2])


@pytest.mark.parametrize(
    "ann",
    [
        AnnConfig(kind="hnsw", m=16, ef_search=128),
        AnnConfig(kind="ivfpq", nlist=16, pq_m=4, nbits=6, nprobe=8, refine=8),
    ],
)
def test_approximate_search_recall_and_exact_scores(tmp_path, ann):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(6)
    centres = unit(rng, 20)
    vectors = centres[rng.integers(0, 20, 2000)] + 0.1 * rng.standard_normal((2000, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = unit(rng, 50)
    index = build(tmp_path / "idx", vectors, ann=ann)
    assert index.ann is not None
    pos, scores = index.search(queries, 10)
    truth, _ = index.search(queries, 10, exact=True)
    recall = np.mean([len(set(p) & set(t)) / 10 for p, t in zip(pos.tolist(), truth.tolist())])
    assert recall >= 0.9
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[pos]), rtol=1e-5)  # re-scored exactly


def test_ivfpq_on_too_few_vectors_says_what_to_use(tmp_path):
    pytest.importorskip("faiss")
    with pytest.raises(ValueError, match="kind='flat' or 'hnsw'"):
        build(tmp_path / "idx", unit(np.random.default_rng(7), 20), ann=AnnConfig(kind="ivfpq"))
    with pytest.raises(ValueError, match="unknown ANN kind"):
        AnnConfig(kind="lsh")  # type: ignore[arg-type]


def test_an_overflowing_score_is_still_the_best_result(tmp_path):
    vectors = np.zeros((3, 8), dtype=np.float32)
    vectors[1, 0] = 1e30  # its inner product with the query overflows float32 to +inf
    vectors[2, 0] = 1.0
    index = build(tmp_path / "idx", vectors)
    q = np.zeros((1, 8), dtype=np.float32)
    q[0, 0] = 1e30
    with np.errstate(over="ignore"):
        pos, scores = index.search(q, 2, exact=True)
    assert pos.tolist() == [[1, 2]] and np.isposinf(scores[0, 0])
