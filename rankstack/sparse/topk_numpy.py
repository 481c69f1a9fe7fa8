"""Top-k for a few queries in plain numpy: the same results as ``topk.py``'s compiled kernels, bit for bit.

Loading numba and its cached kernels costs a new process about half a second before the first query is
answered; a one-off ``rankstack search`` or the first request to a fresh worker would pay that for a
handful of postings. This path needs only numpy: per query, the postings of its terms are concatenated in
the query's term order and summed per document with ``np.bincount`` (float64, sequentially, in input
order: the same sums as the compiled term-at-a-time loop), rounded once to float32 and ranked by the same
packed keys, ``(~float_bits(score) << 32) | doc``, so ties break by document number as before. Its cost
grows with the collection size (the accumulator is dense), so ``BM25`` sends only small batches over
small segments here.
"""

from __future__ import annotations

import numpy as np

_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


def term_maxima(imps: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The largest impact in each term's postings (0 for an empty list): MaxScore's per-term bound."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    out = np.zeros(len(lengths), dtype=np.float32)
    nonempty = lengths > 0
    if len(imps) and nonempty.any():
        out[nonempty] = np.maximum.reduceat(imps, offsets[:-1][nonempty])
    return np.maximum(out, np.float32(0.0))


def top_keys(docs, imps, starts, ends, weights, num_docs: int, k: int) -> np.ndarray:
    """One query's best ``k`` as sorted packed keys (only documents scoring above zero)."""
    if len(starts) == 1:
        d = docs[starts[0] : ends[0]]
        acc = np.zeros(num_docs, dtype=np.float64)
        acc[d] = weights[0] * imps[starts[0] : ends[0]].astype(np.float64)
    else:
        d = np.concatenate([docs[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)])
        w = np.concatenate(
            [weights[t] * imps[s:e].astype(np.float64) for t, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True))]
        )
        acc = np.bincount(d, weights=w, minlength=num_docs)
    cand = np.flatnonzero(acc > 0.0)
    score = acc[cand].astype(np.float32)
    keys = ((_LOW32 - score.view(np.uint32).astype(np.uint64)) << _SHIFT) | cand.astype(np.uint64)
    if len(keys) > k:
        keys = np.partition(keys, k - 1)[:k]
    keys.sort()
    return keys


def few_topk(docs, imps, q_offsets, starts, ends, weights, num_docs: int, k: int):
    """``topk.batch_topk``'s contract for a small batch: flat ``(docs int64, scores float32, counts)``."""
    nq = len(q_offsets) - 1
    parts = []
    counts = np.zeros(nq, dtype=np.int64)
    for q in range(nq):
        a, b = int(q_offsets[q]), int(q_offsets[q + 1])
        if b > a:
            keys = top_keys(docs, imps, starts[a:b], ends[a:b], weights[a:b], num_docs, k)
            counts[q] = len(keys)
            parts.append(keys)
    keys = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    out_docs = (keys & _LOW32).astype(np.int64)
    bits = (_LOW32 - (keys >> _SHIFT)).astype(np.uint32)
    return out_docs, bits.view(np.float32), counts
