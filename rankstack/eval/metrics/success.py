"""Success at k (trec_eval ``success_k``): 1 if any relevant document is in the top k, else 0.

Some papers call this "Recall@k"; here, as in TREC, ``R@k`` is the share of relevant documents found.
"""

from __future__ import annotations

from rankstack.eval.metrics._base import Family, depth
from rankstack.jit import njit

FAMILY = Family("Success", 7, cutoff="required", uses_rel=True, aliases=("hits",), summary="any relevant in top k")


@njit(nogil=True)
def success(ranked, judged, k: int, rel: int) -> float:
    for i in range(depth(len(ranked), k)):
        if ranked[i] >= rel:
            return 1.0
    return 0.0
