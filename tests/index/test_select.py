"""The running top-k buffer equals a full sort by (score desc, position asc), whatever the block split."""

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
def test_buffer_equals_a_full_sort(rows, cols, k, cuts, seed):
    rng = np.random.default_rng(seed)
    # many ties, both zeros (equal, so the lower position wins), the infinities, NaN (never a result)
    values = np.array([-2.0, -1.5, -0.0, 0.0, 0.5, 1.0, 3.0, np.inf, -np.inf, np.nan], dtype=np.float32)
    scores = values[rng.integers(0, len(values), size=(rows, cols))]
    bounds = [0, *sorted(c for c in cuts if c <= cols), cols]
    top = TopK(rows, k)
    for lo, hi in itertools.pairwise(bounds):
        top.push(scores[:, lo:hi], lo)
    pos, got = top.result()
    want_pos, want = reference(scores, k)
    assert pos.tolist() == want_pos.tolist()
    np.testing.assert_array_equal(got, want)


def test_positions_up_to_the_key_limit():
    top = TopK(1, 2)
    top.push(np.array([[1.0, 5.0, 5.0]], dtype=np.float32), 2**32 - 3)
    pos, scores = top.result()
    assert pos.tolist() == [[2**32 - 2, 2**32 - 1]] and scores.tolist() == [[5.0, 5.0]]
    with pytest.raises(ValueError, match="2\\*\\*32"):
        top.push(np.zeros((1, 1), dtype=np.float32), 2**32)


@pytest.mark.parametrize(
    ("scores", "first", "match"),
    [
        (np.zeros((3, 4), dtype=np.float32), 0, "2 queries"),
        (np.zeros(4, dtype=np.float32), 0, "2 queries"),
        (np.zeros((2, 4), dtype=np.float32), -1, "position order"),
    ],
)
def test_bad_blocks_are_refused(scores, first, match):
    with pytest.raises(ValueError, match=match):
        TopK(2, 3).push(scores, first)


def test_blocks_out_of_order_are_refused():
    top = TopK(1, 3)
    top.push(np.zeros((1, 4), dtype=np.float32), 0)
    with pytest.raises(ValueError, match="position order"):
        top.push(np.zeros((1, 4), dtype=np.float32), 2)


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
