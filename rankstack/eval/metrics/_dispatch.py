"""The one loop every metric runs through: all queries (in parallel) times all requested measures.

Each family module holds only its per-query kernel; this module routes a family code to that kernel, so the
parallel loop, the slicing of the encoded arrays and the fallback for missing queries exist once instead of
once per metric file (ranx repeats them in every file). A query absent from the run gets an empty ``ranked``
slice, for which every kernel returns 0 — ir_measures' default for such queries.

Numba caches compiled code on disk (``cache=True``) but only notices edits to the file a function lives in:
after changing a kernel in a family module, delete ``rankstack/eval/metrics/__pycache__`` so this loop is
recompiled with it.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from rankstack.eval.metrics import ap, bpref, judged, ndcg, precision, recall, rr, success
from rankstack.jit import njit

_AP = ap.FAMILY.code
_NDCG = ndcg.FAMILY.code
_P = precision.FAMILY.code
_R = recall.FAMILY.code
_RR = rr.FAMILY.code
_BPREF = bpref.FAMILY.code
_JUDGED = judged.FAMILY.code
_SUCCESS = success.FAMILY.code


@njit(nogil=True)
def _score_one(code: int, ranked, labels, k: int, rel: int) -> float:
    if code == _AP:
        return ap.average_precision(ranked, labels, k, rel)
    if code == _NDCG:
        return ndcg.ndcg(ranked, labels, k, rel)
    if code == _P:
        return precision.precision(ranked, labels, k, rel)
    if code == _R:
        return recall.recall(ranked, labels, k, rel)
    if code == _RR:
        return rr.reciprocal_rank(ranked, labels, k, rel)
    if code == _BPREF:
        return bpref.bpref(ranked, labels, k, rel)
    if code == _JUDGED:
        return judged.judged_rate(ranked, labels, k, rel)
    if code == _SUCCESS:
        return success.success(ranked, labels, k, rel)
    return np.nan


@njit(parallel=True)
def score_queries(ranked, run_start, run_end, labels, qrels_offsets, codes, cutoffs, rels):
    """Per-query values, shape (queries, measures); query ``q`` reads ``ranked[run_start[q]:run_end[q]]``."""
    n_queries = len(run_start)
    n_measures = len(codes)
    out = np.zeros((n_queries, n_measures))
    for q in prange(n_queries):
        r = ranked[run_start[q] : run_end[q]]
        j = labels[qrels_offsets[q] : qrels_offsets[q + 1]]
        for m in range(n_measures):
            out[q, m] = _score_one(codes[m], r, j, cutoffs[m], rels[m])
    return out
