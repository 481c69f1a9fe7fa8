"""Precision at k, trec_eval's ``P_k``: relevant documents in the top k, divided by k.

The divisor is k even when fewer than k documents were retrieved, as in trec_eval (a short run is not
rewarded for stopping early).
"""

from __future__ import annotations

from rankstack.eval.metrics._base import Family, depth
from rankstack.jit import njit

FAMILY = Family("P", 2, cutoff="required", uses_rel=True, aliases=("precision",), summary="precision at k")


@njit(nogil=True)
def precision(ranked, judged, k: int, rel: int) -> float:
    hits = 0
    for i in range(depth(len(ranked), k)):
        if ranked[i] >= rel:
            hits += 1
    return hits / k
