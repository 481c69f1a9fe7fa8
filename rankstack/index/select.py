"""Top-k selection over blocks of dense scores, compiled with numba.

Exact vector search scores every stored vector; picking the best ``k`` of each query's row used to cost
four times the matrix product itself (partition, then a sort to settle ties at the k-th score). Here each
query keeps a buffer of candidates and a floor, the k-th best score seen so far. Rows are scanned in
position order and a candidate must *beat* the floor, so among equal scores the lower position wins with
no tie-breaking pass, and nearly every score is rejected by one comparison. A candidate is one packed
key, (order-preserving float32 bits << 32) | ~position, so larger keys are better results; when the buffer
fills, a partition keeps its k largest keys and raises the floor.
"""

from __future__ import annotations

import numba
import numpy as np

_SIGN = np.uint32(0x80000000)
_LOW = np.uint64(0xFFFFFFFF)


class TopK:
    """Running top ``k`` per query over score blocks given in position order (``push``), then ``result``."""

    def __init__(self, num_queries: int, k: int):
        self.k = int(k)
        self._keys = np.zeros((num_queries, 2 * self.k), dtype=np.uint64)
        self._count = np.zeros(num_queries, dtype=np.int64)
        self._floor = np.full(num_queries, -np.inf, dtype=np.float32)

    def push(self, scores: np.ndarray, first_position: int) -> None:
        """Offer ``scores[q, j]`` as position ``first_position + j``; blocks must come in position order.
        ``-inf`` and NaN never enter (deleted rows are marked ``-inf``)."""
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if self.k and scores.size:
            if first_position + scores.shape[1] > 1 << 32:
                raise ValueError("exact search keys hold positions below 2**32")
            _push_block(scores, scores.view(np.uint32), int(first_position), self._keys, self._count, self._floor)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(positions int64, scores float32)`` per query, best first, ties by position; ``-1`` / ``-inf``
        where a query has fewer than k."""
        nq, k = len(self._count), self.k
        keys = np.zeros((nq, k), dtype=np.uint64)
        for q in range(nq):
            found = np.sort(self._keys[q, : self._count[q]])[::-1][:k]
            keys[q, : len(found)] = found
        bits = (keys >> np.uint64(32)).astype(np.uint32)
        bits = np.where(bits & _SIGN, bits ^ _SIGN, ~bits)
        scores = bits.view(np.float32)
        positions = (~keys & _LOW).astype(np.int64)
        empty = keys == 0
        return np.where(empty, -1, positions), np.where(empty, -np.inf, scores).astype(np.float32)


@numba.njit(nogil=True)
def _push_block(
    scores: np.ndarray, bits: np.ndarray, first: int, keys: np.ndarray, count: np.ndarray, floor: np.ndarray
) -> None:
    nq, m = scores.shape
    k = keys.shape[1] // 2
    for q in range(nq):
        buf = keys[q]
        n = count[q]
        low = floor[q]
        for j in range(m):
            s = scores[q, j]
            if s > low:  # later positions lose ties, so only a strictly higher score gets in
                b = bits[q, j]
                b = b | np.uint32(0x80000000) if s >= 0 else ~b  # order-preserving: larger float, larger bits
                buf[n] = (np.uint64(b) << np.uint64(32)) | (~np.uint64(first + j) & np.uint64(0xFFFFFFFF))
                n += 1
                if n == buf.shape[0]:
                    buf[:] = np.partition(buf, n - k)  # the k largest keys end up last
                    buf[:k] = buf[n - k :].copy()
                    n = k
                    low = _score_of(buf[:k].min())
        count[q] = n
        floor[q] = low


@numba.njit(inline="always")
def _score_of(key: np.uint64) -> np.float32:
    b = np.uint32(key >> np.uint64(32))
    b = b ^ np.uint32(0x80000000) if b & np.uint32(0x80000000) else ~b
    return np.array([b], dtype=np.uint32).view(np.float32)[0]
