"""Top-k query processing over impact postings, compiled with numba.

A query is a set of terms, each with a weight and a postings list of (doc, impact); a document's score
is ``sum_t weight_t * impact_t(doc)``. Two algorithms return the *same* top k:

* ``exhaustive``: term-at-a-time accumulation into a dense score array (the reference);
* ``maxscore``: document-at-a-time MaxScore (Turtle & Flood, 1995): terms are ordered by their score
  upper bound, and terms whose bounds together cannot lift a document above the current k-th score
  are "non-essential": they are only probed, never used to find candidates.

Both order documents by score descending, then document number ascending, and sum each document's
contributions in the query's term order, so their scores are bit-identical, not just close.
Only documents with a positive score are returned.
"""

from __future__ import annotations

import numba
import numpy as np

_MARGIN = 1e-12  # relative slack on bound comparisons: summation order differs from the bound's


@numba.njit(inline="always")
def _worse(s1, d1, s2, d2):  # pragma: no cover - compiled
    return s1 < s2 or (s1 == s2 and d1 > d2)


@numba.njit
def _sift_down(hs, hd, size, i):  # pragma: no cover - compiled
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        worst = left
        right = left + 1
        if right < size and _worse(hs[right], hd[right], hs[left], hd[left]):
            worst = right
        if _worse(hs[worst], hd[worst], hs[i], hd[i]):
            hs[i], hs[worst] = hs[worst], hs[i]
            hd[i], hd[worst] = hd[worst], hd[i]
            i = worst
        else:
            return


@numba.njit
def _push(hs, hd, size, k, score, doc):  # pragma: no cover - compiled
    """Offer (score, doc) to a min-heap of the k best; returns the new size."""
    if size < k:
        i = size
        hs[i] = score
        hd[i] = doc
        while i > 0:
            parent = (i - 1) // 2
            if _worse(hs[i], hd[i], hs[parent], hd[parent]):
                hs[i], hs[parent] = hs[parent], hs[i]
                hd[i], hd[parent] = hd[parent], hd[i]
                i = parent
            else:
                break
        return size + 1
    if _worse(hs[0], hd[0], score, doc):
        hs[0] = score
        hd[0] = doc
        _sift_down(hs, hd, size, 0)
    return size


@numba.njit
def _drain(hs, hd, size, out_docs, out_scores):  # pragma: no cover - compiled
    """Pop the heap into best-first order; returns the count."""
    n = size
    while size > 0:
        size -= 1
        out_scores[size] = hs[0]
        out_docs[size] = hd[0]
        hs[0] = hs[size]
        hd[0] = hd[size]
        _sift_down(hs, hd, size, 0)
    return n


@numba.njit
def exhaustive_one(docs, imps, starts, ends, weights, num_docs, k, out_docs, out_scores):  # pragma: no cover
    acc = np.zeros(num_docs, dtype=np.float64)
    touched = np.zeros(num_docs, dtype=np.bool_)
    for t in range(len(starts)):
        w = weights[t]
        for p in range(starts[t], ends[t]):
            d = docs[p]
            acc[d] += w * imps[p]
            touched[d] = True
    hs = np.empty(k, dtype=np.float64)
    hd = np.empty(k, dtype=np.int64)
    size = 0
    for d in range(num_docs):
        if touched[d] and acc[d] > 0.0:
            size = _push(hs, hd, size, k, acc[d], d)
    return _drain(hs, hd, size, out_docs, out_scores)


@numba.njit
def maxscore_one(docs, imps, starts, ends, weights, ubs, k, out_docs, out_scores):  # pragma: no cover
    m = len(starts)
    order = np.argsort(ubs)  # ascending upper bound
    cum = np.empty(m, dtype=np.float64)  # cum[i] = sum of the i+1 smallest bounds
    running = 0.0
    for i in range(m):
        running += ubs[order[i]]
        cum[i] = running
    pos = starts.copy()
    contrib = np.zeros(m, dtype=np.float64)
    present = np.zeros(m, dtype=np.bool_)
    hs = np.empty(k, dtype=np.float64)
    hd = np.empty(k, dtype=np.int64)
    size = 0
    threshold = 0.0
    first_ess = 0
    big = np.iinfo(np.int64).max
    while first_ess < m:
        cand = big
        for i in range(first_ess, m):
            t = order[i]
            if pos[t] < ends[t]:
                d = np.int64(docs[pos[t]])
                if d < cand:
                    cand = d
        if cand == big:
            break
        partial = 0.0
        for i in range(first_ess, m):
            t = order[i]
            if pos[t] < ends[t] and docs[pos[t]] == cand:
                c = weights[t] * imps[pos[t]]
                contrib[t] = c
                present[t] = True
                partial += c
                pos[t] += 1
        alive = True
        for i in range(first_ess - 1, -1, -1):
            if size == k and (partial + cum[i]) * (1.0 + _MARGIN) < threshold:
                alive = False
                break
            t = order[i]
            if pos[t] < ends[t] and docs[pos[t]] < cand:
                pos[t] += np.searchsorted(docs[pos[t] : ends[t]], cand)
            if pos[t] < ends[t] and docs[pos[t]] == cand:
                c = weights[t] * imps[pos[t]]
                contrib[t] = c
                present[t] = True
                partial += c
        if alive:
            score = 0.0
            for t in range(m):  # the query's own term order: the same sum as exhaustive_one
                if present[t]:
                    score += contrib[t]
            if score > 0.0 and (size < k or score > hs[0]):
                size = _push(hs, hd, size, k, score, cand)
                if size == k:
                    threshold = hs[0]
                    while first_ess < m and cum[first_ess] * (1.0 + _MARGIN) < threshold:
                        first_ess += 1
        for t in range(m):
            present[t] = False
    return _drain(hs, hd, size, out_docs, out_scores)


@numba.njit(parallel=True)
def batch_topk(docs, imps, q_offsets, starts, ends, weights, ubs, num_docs, k, use_maxscore):  # pragma: no cover
    """Top-k for many queries in parallel; query q's terms are rows q_offsets[q]:q_offsets[q+1]."""
    nq = len(q_offsets) - 1
    out_docs = np.full((nq, k), -1, dtype=np.int64)
    out_scores = np.zeros((nq, k), dtype=np.float64)
    counts = np.zeros(nq, dtype=np.int64)
    for q in numba.prange(nq):
        a, b = q_offsets[q], q_offsets[q + 1]
        if b == a:
            continue
        if use_maxscore:
            counts[q] = maxscore_one(
                docs, imps, starts[a:b], ends[a:b], weights[a:b], ubs[a:b], k, out_docs[q], out_scores[q]
            )
        else:
            counts[q] = exhaustive_one(
                docs, imps, starts[a:b], ends[a:b], weights[a:b], num_docs, k, out_docs[q], out_scores[q]
            )
    return out_docs, out_scores, counts


@numba.njit(parallel=True)
def block_max(imps, offsets):  # pragma: no cover - compiled
    """Maximum impact of each term's postings (the MaxScore upper bound before weighting)."""
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.float32)
    for t in numba.prange(n):
        best = np.float32(0.0)
        for p in range(offsets[t], offsets[t + 1]):
            if imps[p] > best:
                best = imps[p]
        out[t] = best
    return out
