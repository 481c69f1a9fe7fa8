"""What every metric family shares: its description for the parser, and the encoding its kernel reads.

A family's kernel scores one query from two plain int64 arrays (numba-friendly, no strings):

* ``ranked``: the relevance of each retrieved document in evaluation order (see ``rankstack.eval.encode``),
  with the trec_eval sentinels ``NONPOOL`` (document absent from the qrels) and ``UNJUDGED`` (listed in the
  qrels with a negative label, which trec_eval reads as "in the pool but not judged");
* ``judged``: every label the qrels give this query, negative ones included.

and two ints: ``k`` (the cut-off; 0 means none) and ``rel`` (the lowest label that counts as relevant).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from rankstack.jit import njit

NONPOOL = -1  # trec_eval RELVALUE_NONPOOL: the document is not in the qrels
UNJUDGED = -2  # trec_eval RELVALUE_UNJUDGED: in the qrels with a negative label


@dataclasses.dataclass(frozen=True)
class Family:
    """A metric family as the measure parser and the dispatcher see it.

    ``code`` selects the kernel in ``_dispatch``; ``cutoff`` says whether ``@k`` is required, optional or
    not allowed (mirroring ir_measures, so the same names parse the same way); ``uses_rel`` says whether the
    family accepts ``rel=``; ``aliases`` are extra lower-case spellings (``map``, ``mrr``, ``recall``...).
    """

    name: str
    code: int
    cutoff: Literal["required", "optional", "none"]
    uses_rel: bool
    aliases: tuple[str, ...] = ()
    summary: str = ""


@njit(nogil=True)
def depth(n: int, k: int) -> int:
    """How many ranked documents a cut-off ``k`` looks at (``k == 0``: all of them)."""
    return n if k <= 0 or k > n else k


@njit(nogil=True)
def count_relevant(judged, rel: int) -> int:
    """Number of judged documents with a label of at least ``rel`` (trec_eval's ``num_rel``)."""
    c = 0
    for r in judged:
        if r >= rel:
            c += 1
    return c
