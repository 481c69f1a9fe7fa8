"""Reciprocal rank of the first relevant document (MRR when averaged), optionally within the top k.

trec_eval's ``recip_rank``; with a cut-off it is MS MARCO's MRR@10 (0 when nothing relevant is in the top
k), with that script's order for tied scores (docid ascending), as ir_measures computes it. Voorhees, "The TREC-8 question answering track report", TREC 1999.
"""

from __future__ import annotations

from rankstack.eval.metrics._base import Family, depth
from rankstack.jit import njit

FAMILY = Family("RR", 4, cutoff="optional", uses_rel=True, aliases=("mrr", "recip_rank"), summary="reciprocal rank")


@njit(nogil=True)
def reciprocal_rank(ranked, judged, k: int, rel: int) -> float:
    for i in range(depth(len(ranked), k)):
        if ranked[i] >= rel:
            return 1.0 / (i + 1.0)
    return 0.0
