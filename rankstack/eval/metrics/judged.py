"""Judgment rate at k: the share of the top k documents that appear in the qrels (any label).

Not a trec_eval measure; it is how ir_measures (after OpenNIR) reports how far a run strays from the judged
pool, which says how much to trust its other numbers. The divisor is min(k, retrieved), as there.
MacAvaney et al., "Streamlining evaluation with ir-measures", ECIR 2022.
"""

from __future__ import annotations

from rankstack.eval.metrics._base import NONPOOL, Family, depth
from rankstack.jit import njit

FAMILY = Family("Judged", 6, cutoff="optional", uses_rel=False, aliases=(), summary="share of top k that is judged")


@njit(nogil=True)
def judged_rate(ranked, judged, k: int, rel: int) -> float:
    n = depth(len(ranked), k)
    if n == 0:
        return 0.0
    found = 0
    for i in range(n):
        if ranked[i] != NONPOOL:
            found += 1
    return found / n
