"""The top-k kernels against a numpy reference: every selection path, ties, both algorithms, and the three
ways a batch runs (compiled in parallel chunks, compiled on the calling thread, plain numpy)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.sparse import topk, topk_numpy

PATHS = ["parallel", "serial", "numpy"]


def reference(postings, weights, num_docs, k):
    """Scores summed in float64 in term order, rounded to float32; best first, ties by document."""
    acc = np.zeros(num_docs)
    for (docs, imps), w in zip(postings, weights, strict=True):  # a term's documents are distinct
        acc[docs] += w * imps.astype(np.float64)
    score32 = acc.astype(np.float32)
    docs = np.flatnonzero(score32 > 0)
    order = np.lexsort((docs, -score32[docs]))[:k]
    return docs[order], score32[docs][order]


def run(postings, weights, num_docs, k, maxscore, chunks=1, path="parallel"):
    docs = np.concatenate([p[0] for p in postings]).astype(np.uint32)
    imps = np.concatenate([p[1] for p in postings]).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum([len(p[0]) for p in postings])]).astype(np.int64)
    w = np.asarray(weights, dtype=np.float64)
    ubs = np.array([wt * (p[1].max() if len(p[1]) else 0.0) for p, wt in zip(postings, w, strict=True)])
    q_offsets = np.array([0, len(postings)], dtype=np.int64)
    if path == "numpy":
        out_docs, out_scores, counts = topk_numpy.few_topk(docs, imps, q_offsets, offsets[:-1], offsets[1:], w, num_docs, k)
    elif path == "serial":
        out_docs, out_scores, counts = topk.serial_topk(
            docs, imps, q_offsets, offsets[:-1], offsets[1:], w, ubs, k, maxscore, *topk.scratch(num_docs, k, maxscore)
        )
    else:
        work = topk.thread_scratch(numba.config.NUMBA_NUM_THREADS, num_docs, k, maxscore)
        out_docs, out_scores, counts = topk.batch_topk(
            docs, imps, q_offsets, offsets[:-1], offsets[1:], w, ubs, k, maxscore, chunks, work
        )
    return out_docs[: counts[0]], out_scores[: counts[0]]


def random_query(rng, num_docs, num_terms, density, tie_levels):
    postings = []
    for _ in range(num_terms):
        n = max(1, int(rng.binomial(num_docs, density)))
        docs = np.sort(rng.choice(num_docs, size=min(n, num_docs), replace=False))
        # few distinct impact values make many exact ties in the float32 scores
        imps = rng.integers(1, tie_levels + 1, size=len(docs)).astype(np.float32) / tie_levels
        postings.append((docs, imps))
    weights = rng.choice([0.5, 1.0, 2.0], size=num_terms)
    return postings, weights


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    num_docs=st.integers(1, 3000),
    num_terms=st.integers(1, 6),
    density=st.sampled_from([0.001, 0.01, 0.1, 0.5, 0.9]),  # sparse and dense gathering
    k=st.sampled_from([1, 3, 10, 64, 65, 100, 1000, 5000]),  # heap and radix selection, k above n
    tie_levels=st.sampled_from([2, 7, 1000]),
    maxscore=st.booleans(),
    path=st.sampled_from(PATHS),
)
def test_batch_topk_equals_the_reference(seed, num_docs, num_terms, density, k, tie_levels, maxscore, path):
    rng = np.random.default_rng(seed)
    postings, weights = random_query(rng, num_docs, num_terms, density, tie_levels)
    want_docs, want_scores = reference(postings, weights, num_docs, k)
    got_docs, got_scores = run(postings, weights, num_docs, k, maxscore, path=path)
    assert got_docs.tolist() == want_docs.tolist()
    assert got_scores.tolist() == want_scores.tolist()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    blocks=st.floats(1.0, 5.0),  # collections of one to five accumulation blocks, ending mid-block or not
    num_terms=st.integers(1, 6),
    density=st.sampled_from([0.0005, 0.005, 0.03]),
    k=st.sampled_from([1, 10, 100, 1000]),
    tie_levels=st.sampled_from([2, 1000]),
    path=st.sampled_from(PATHS),
)
def test_sparse_queries_on_large_collections_go_block_by_block(seed, blocks, num_terms, density, k, tie_levels, path):
    """Large collections accumulate sparse queries in blocks of documents; documents on either side of
    a block boundary must sum like any other."""
    rng = np.random.default_rng(seed)
    num_docs = int(blocks * topk._ACC_BLOCK) + 1
    postings, weights = random_query(rng, num_docs, num_terms, density, tie_levels)
    starts = np.arange(0, num_docs, topk._ACC_BLOCK)
    edges = np.unique(np.concatenate([starts, starts - 1, [num_docs - 1]]))[1:]  # first and last of each block
    for i, (docs, imps) in enumerate(postings):
        extra = np.setdiff1d(edges[rng.random(len(edges)) < 0.5], docs)
        docs = np.concatenate([docs, extra])
        order = np.argsort(docs)
        imps = np.concatenate([imps, np.full(len(extra), 1.0, dtype=np.float32)])
        postings[i] = (docs[order], imps[order])
    want_docs, want_scores = reference(postings, weights, num_docs, k)
    got_docs, got_scores = run(postings, weights, num_docs, k, maxscore=False, path=path)
    assert got_docs.tolist() == want_docs.tolist()
    assert got_scores.tolist() == want_scores.tolist()


@pytest.mark.parametrize("low_bit", [0, 32])
def test_radix_select_and_sort_are_stable_on_the_score_bits(low_bit):
    rng = np.random.default_rng(7)
    n, k = 5000, 700
    scores = rng.integers(0, 50, size=n).astype(np.uint64)  # heavy ties in the high word
    docs = np.arange(n, dtype=np.uint64)  # input in document order
    keys = (scores << np.uint64(32)) | docs
    out = np.empty(n + 1, dtype=np.uint64)
    topk.radix_select(keys.copy(), n, k, out, low_bit)
    selected = out[:k].copy()
    topk.radix_sort(selected, k, np.empty(k, dtype=np.uint64), low_bit)
    assert selected.tolist() == np.sort(keys)[:k].tolist()


def test_batches_in_parallel_chunks_equal_one_at_a_time():
    rng = np.random.default_rng(3)
    num_docs = 2000
    queries = [random_query(rng, num_docs, 4, 0.05, 7) for _ in range(37)]
    postings = [p for q, _ in queries for p in q]
    docs = np.concatenate([p[0] for p in postings]).astype(np.uint32)
    imps = np.concatenate([p[1] for p in postings]).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum([len(p[0]) for p in postings])]).astype(np.int64)
    weights = np.concatenate([w for _, w in queries]).astype(np.float64)
    q_offsets = np.arange(0, 4 * 37 + 1, 4, dtype=np.int64)
    ubs = weights * np.array([p[1].max() for p in postings])  # MaxScore needs true upper bounds
    args = (docs, imps, q_offsets, offsets[:-1], offsets[1:], weights)
    for maxscore, path in [(False, "parallel"), (True, "parallel"), (False, "serial"), (True, "serial"), (False, "numpy")]:
        if path == "parallel":
            work = topk.thread_scratch(numba.config.NUMBA_NUM_THREADS, num_docs, 50, maxscore)
            d, s, c = topk.batch_topk(*args, ubs, 50, maxscore, 8, work)
            assert not work[0].any()  # each thread's accumulator is left all zero for the next batch
        elif path == "serial":
            d, s, c = topk.serial_topk(*args, ubs, 50, maxscore, *topk.scratch(num_docs, 50, maxscore))
        else:
            d, s, c = topk_numpy.few_topk(*args, num_docs, 50)
        starts = np.concatenate([[0], np.cumsum(c)])
        for qi, (p, w) in enumerate(queries):
            want_docs, want_scores = reference(p, w, num_docs, 50)
            assert d[starts[qi] : starts[qi + 1]].tolist() == want_docs.tolist()
            assert s[starts[qi] : starts[qi + 1]].tolist() == want_scores.tolist()


def test_term_maxima_is_each_lists_largest_impact_and_zero_for_empty_lists():
    imps = np.array([0.5, 2.0, 1.0, 3.0, 0.25], dtype=np.float32)
    offsets = np.array([0, 2, 2, 4, 5, 5], dtype=np.int64)  # lists 1 and 4 are empty
    assert topk_numpy.term_maxima(imps, offsets).tolist() == [2.0, 0.0, 3.0, 0.25, 0.0]
    assert topk_numpy.term_maxima(np.zeros(0, np.float32), np.zeros(3, np.int64)).tolist() == [0.0, 0.0]
