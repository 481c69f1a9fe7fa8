"""The running top-k heap equals a full sort by (score desc, position asc), whatever the block split."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.index.select import TopK


def reference(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    pos, out = [], []
    for row in scores:
        keep = [j for j in range(len(row)) if row[j] > -np.inf]  # NaN and -inf never qualify
        keep.sort(key=lambda j: (-row[j], j))
        keep = keep[:k]
        pos.append(keep + [-1] * (k - len(keep)))
        out.append([row[j] for j in keep] + [-np.inf] * (k - len(keep)))
    return np.array(pos, dtype=np.int64).reshape(len(scores), k), np.array(out, dtype=np.float32).reshape(
        len(scores), k
    )


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 4),
    cols=st.integers(0, 60),
    k=st.integers(0, 20),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_heap_equals_a_full_sort(rows, cols, k, cuts, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(-3, 4, size=(rows, cols)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.1] = -np.inf  # deleted rows
    scores[rng.random(scores.shape) < 0.05] = np.nan
    bounds = [0, *sorted(c for c in cuts if c <= cols), cols]
    top = TopK(rows, k)
    for lo, hi in itertools.pairwise(bounds):
        top.push(scores[:, lo:hi], lo)
    pos, got = top.result()
    want_pos, want = reference(scores, k)
    assert pos.tolist() == want_pos.tolist()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("k", [1, 10, 1000])
def test_large_random_blocks(k):
    rng = np.random.default_rng(k)
    scores = rng.standard_normal((3, 50_000)).astype(np.float32)
    top = TopK(3, k)
    for lo in range(0, 50_000, 4096):
        top.push(scores[:, lo : lo + 4096], lo)
    pos, got = top.result()
    want = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    assert (pos == want).all()
    np.testing.assert_array_equal(got, np.take_along_axis(scores, want, 1))
