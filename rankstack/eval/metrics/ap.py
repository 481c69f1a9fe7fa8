"""Average precision (MAP when averaged), optionally cut at ``k`` (trec_eval ``map`` / ``map_cut_k``).

AP = (1/R) * sum over relevant retrieved documents at rank i <= k of precision@i, where R counts *all*
relevant documents in the qrels (not min(R, k)): that is trec_eval's definition, so AP@k of a perfect
ranking is below 1 when R > k. Buckley & Voorhees, "Evaluating evaluation measure stability", SIGIR 2000.
"""

from __future__ import annotations

from rankstack.eval.metrics._base import Family, count_relevant, depth
from rankstack.jit import njit

FAMILY = Family("AP", 0, cutoff="optional", uses_rel=True, aliases=("map",), summary="average precision (MAP)")


@njit(nogil=True)
def average_precision(ranked, judged, k: int, rel: int) -> float:
    num_rel = count_relevant(judged, rel)
    if num_rel == 0:
        return 0.0
    hits = 0
    total = 0.0
    for i in range(depth(len(ranked), k)):
        if ranked[i] >= rel:
            hits += 1
            total += hits / (i + 1.0)
    return total / num_rel
