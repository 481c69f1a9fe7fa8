"""Binary preference, trec_eval's ``bpref``: robust to incomplete judgments because it ignores unjudged docs.

bpref = (1/R) * sum over retrieved relevant documents r of 1 - min(n_r, R) / min(N, R), where n_r counts
judged non-relevant documents ranked above r, R the relevant and N the judged non-relevant documents in
the qrels. Unjudged documents (absent, or negative labels) are skipped entirely. Buckley & Voorhees,
"Retrieval evaluation with incomplete information", SIGIR 2004; this follows trec_eval's ``m_bpref.c``.
"""

from __future__ import annotations

from rankstack.eval.metrics._base import Family, count_relevant
from rankstack.jit import njit

FAMILY = Family("Bpref", 5, cutoff="none", uses_rel=True, aliases=("bpref",), summary="binary preference")


@njit(nogil=True)
def bpref(ranked, judged, k: int, rel: int) -> float:
    num_rel = count_relevant(judged, rel)
    if num_rel == 0:
        return 0.0
    num_nonrel = 0
    for r in judged:
        if 0 <= r < rel:
            num_nonrel += 1
    denom = min(num_nonrel, num_rel)
    nonrel_above = 0
    total = 0.0
    for r in ranked:
        if r < 0:  # not in the pool, or in it but unjudged
            continue
        if r < rel:
            nonrel_above += 1
        elif nonrel_above > 0:
            total += 1.0 - min(nonrel_above, num_rel) / denom
        else:
            total += 1.0
    return total / num_rel
