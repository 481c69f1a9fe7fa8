"""Recall at k, trec_eval's ``recall_k``: the share of *all* relevant documents found in the top k.

This is the TREC meaning of R@k; "any relevant document in the top k" is ``Success@k``. Queries with no
relevant document score 0, as in trec_eval.
"""

from __future__ import annotations

from rankstack.eval.metrics._base import Family, count_relevant, depth
from rankstack.jit import njit

FAMILY = Family("R", 3, cutoff="required", uses_rel=True, aliases=("recall",), summary="recall at k")


@njit(nogil=True)
def recall(ranked, judged, k: int, rel: int) -> float:
    num_rel = count_relevant(judged, rel)
    if num_rel == 0:
        return 0.0
    hits = 0
    for i in range(depth(len(ranked), k)):
        if ranked[i] >= rel:
            hits += 1
    return hits / num_rel
