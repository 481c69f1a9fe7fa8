"""Normalised discounted cumulative gain, trec_eval's ``ndcg`` / ``ndcg_cut_k``.

Gain is the relevance label itself (linear, not 2^rel - 1), the discount is log2(rank + 1), and the ideal
ranking orders *every* judged document by label, so relevant documents the run never retrieved still lower
the score. Labels of 0 or below, and unjudged documents, gain nothing. Järvelin & Kekäläinen, "Cumulated
gain-based evaluation of IR techniques", ACM TOIS 20(4), 2002. ranx's default uses exponential gain; this
one matches trec_eval, pytrec_eval and ir_measures.
"""

from __future__ import annotations

import numpy as np

from rankstack.eval.metrics._base import Family, depth
from rankstack.jit import njit

FAMILY = Family("nDCG", 1, cutoff="optional", uses_rel=False, aliases=("ndcg",), summary="nDCG, linear gain")


@njit(nogil=True)
def ndcg(ranked, judged, k: int, rel: int) -> float:
    gains = np.sort(judged)[::-1]  # ideal ranking: every judged document, best label first
    n_ideal = depth(len(gains), k)
    ideal = 0.0
    for i in range(n_ideal):
        if gains[i] <= 0:
            break
        ideal += gains[i] / np.log2(i + 2.0)
    if ideal <= 0.0:
        return 0.0
    dcg = 0.0
    for i in range(depth(len(ranked), k)):
        if ranked[i] > 0:
            dcg += ranked[i] / np.log2(i + 2.0)
    return dcg / ideal
