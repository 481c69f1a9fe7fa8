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

import numpy as np

from rankstack.jit import njit

_SIGN = np.uint32(0x80000000)
_LOW = np.uint64(0xFFFFFFFF)
_NEG_INF_BITS = np.float32(-np.inf).view(np.uint32)


class TopK:
    """Running top ``k`` per query over score blocks given in position order (``push``), then ``result``."""

    def __init__(self, num_queries: int, k: int):
        self.k = int(k)
        self._keys = np.zeros((num_queries, 2 * self.k), dtype=np.uint64)
        self._count = np.zeros(num_queries, dtype=np.int64)
        self._floor = np.full(num_queries, -np.inf, dtype=np.float32)
        self._next = 0  # the lowest position the next block may start at

    def push(self, scores: np.ndarray, first_position: int) -> None:
        """Offer ``scores[q, j]`` as position ``first_position + j``; blocks must come in position order.
        ``-inf`` and NaN never enter (deleted rows are marked ``-inf``)."""
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if scores.ndim != 2 or len(scores) != len(self._count):
            raise ValueError(
                f"a block of scores needs one row for each of the {len(self._count)} queries, got shape {scores.shape}"
            )
        if first_position < self._next:
            raise ValueError(
                f"blocks must come in position order: this one starts at {first_position}, the last ended at {self._next}"
            )
        self._next = int(first_position) + scores.shape[1]
        if self._next > 1 << 32:
            raise ValueError("exact search keys hold positions below 2**32")
        if self.k and scores.size:
            _push_block(scores, scores.view(np.uint32), int(first_position), self._keys, self._count, self._floor)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(positions int64, scores float32)`` per query, best first, ties by position; ``-1`` / ``-inf``
        where a query has fewer than k."""
        nq, k = len(self._count), self.k
        # slots past a query's count hold stale keys; 0 is no key (a real one has nonzero score bits)
        live = np.arange(self._keys.shape[1]) < self._count[:, None]
        keys = np.sort(np.where(live, self._keys, np.uint64(0)), axis=1)[:, ::-1][:, :k]
        positions = np.empty((nq, k), dtype=np.int64)
        bits = np.empty((nq, k), dtype=np.uint32)
        _unpack(np.ascontiguousarray(keys), positions, bits)
        return positions, bits.view(np.float32)


@njit(nogil=True)
def _push_block(  # pragma: no cover - compiled
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
                b = b | _SIGN if s >= 0 else ~b  # order-preserving (and -0.0 packs as 0.0): larger float, larger bits
                buf[n] = (np.uint64(b) << np.uint64(32)) | (~np.uint64(first + j) & _LOW)
                n += 1
                if n == buf.shape[0]:
                    buf[:] = np.partition(buf, n - k)  # the k largest keys end up last
                    buf[:k] = buf[n - k :].copy()
                    n = k
                    low = _score_of(buf[:k].min())
        count[q] = n
        floor[q] = low


@njit()
def _bits_of(key: np.uint64) -> np.uint32:  # pragma: no cover - compiled
    """The float32 bits of the score a packed key holds (the inverse of the packing in ``_push_block``)."""
    b = np.uint32(key >> np.uint64(32))
    return b ^ _SIGN if b & _SIGN else ~b


@njit()
def _score_of(key: np.uint64) -> np.float32:  # pragma: no cover - compiled
    return np.array([_bits_of(key)], dtype=np.uint32).view(np.float32)[0]


@njit()
def _unpack(keys: np.ndarray, positions: np.ndarray, bits: np.ndarray) -> None:  # pragma: no cover - compiled
    """Positions and float32 score bits of every key; 0 (no key) becomes position -1 and -inf."""
    for q in range(keys.shape[0]):
        for i in range(keys.shape[1]):
            if keys[q, i] == 0:
                positions[q, i], bits[q, i] = -1, _NEG_INF_BITS
            else:
                positions[q, i] = np.int64(~keys[q, i] & _LOW)
                bits[q, i] = _bits_of(keys[q, i])
