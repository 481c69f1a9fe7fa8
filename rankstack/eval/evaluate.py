"""``evaluate``: a Ranking and Qrels in, trec_eval-exact numbers out."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from rankstack.eval.encode import EncodedQrels, encode_qrels, encode_run
from rankstack.eval.measure import Measure, parse_measure
from rankstack.eval.metrics._dispatch import score_queries
from rankstack.types import Qrels, Ranking

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_METRICS: tuple[str, ...] = ("AP", "nDCG@10", "P@10", "R@100", "RR")


@overload
def evaluate(
    run: Ranking,
    qrels: Qrels | EncodedQrels,
    metrics: Iterable[str | Measure] | str | Measure = ...,
    per_query: Literal[False] = ...,
) -> dict[str, float]: ...


@overload
def evaluate(
    run: Ranking,
    qrels: Qrels | EncodedQrels,
    metrics: Iterable[str | Measure] | str | Measure = ...,
    *,
    per_query: Literal[True],
) -> pd.DataFrame: ...


def evaluate(
    run: Ranking,
    qrels: Qrels | EncodedQrels,
    metrics: Iterable[str | Measure] | str | Measure = DEFAULT_METRICS,
    per_query: bool = False,
) -> dict[str, float] | pd.DataFrame:
    """Score ``run`` against ``qrels`` with trec_eval's definitions and conventions.

    ``metrics`` are ir_measures-style names (``"nDCG@10"``, ``"P(rel=2)@10"``, ``"AP@1000"``, ``"Bpref"``)
    or ``Measure`` objects. The mean is taken over every query in the qrels: judged queries the run does not
    answer count as 0 and run queries without judgments are ignored — the same set ir_measures averages over
    (its evaluators fill in 0 for missing queries), whereas bare ``trec_eval`` without ``-c`` would skip them.

    Returns ``{name: mean}`` keyed by the names as given, or with ``per_query=True`` a long DataFrame with
    columns ``qid, measure, value`` (one row per judged query and measure).
    """
    names, measures = _measures(metrics)
    enc = encode_qrels(qrels)
    values = per_query_values(run, enc, measures)
    if per_query:
        import pandas as pd

        return pd.DataFrame(
            {
                "qid": np.tile(enc.qids, len(names)),
                "measure": np.repeat(np.asarray(names, dtype=object), enc.n_queries),
                "value": values.T.reshape(-1),
            }
        )
    if enc.n_queries == 0:
        warnings.warn("the qrels are empty: every measure is undefined (NaN)", stacklevel=2)
        return {name: float("nan") for name in names}
    means = values.mean(axis=0)
    return {name: float(v) for name, v in zip(names, means)}


def per_query_values(run: Ranking, qrels: Qrels | EncodedQrels, measures: Sequence[Measure]) -> np.ndarray:
    """The raw matrix behind ``evaluate``: shape (judged queries, measures), queries in qrels order."""
    enc = encode_qrels(qrels)
    if enc.n_queries == 0 or len(measures) == 0:
        return np.zeros((enc.n_queries, len(measures)))
    out = np.zeros((enc.n_queries, len(measures)))
    # ir_measures computes RR@k with MS MARCO's script and Judged@k with its own code: both order tied
    # scores by docid ascending, where trec_eval (everything else) orders them descending
    msmarco = np.array([(m.spec.name == "RR" and bool(m.cutoff)) or m.spec.name == "Judged" for m in measures])
    for ties, which in (("trec_eval", ~msmarco), ("msmarco", msmarco)):
        if not which.any():
            continue
        encoded = encode_run(run, enc, ties)
        group = [m for m, w in zip(measures, which, strict=True) if w]
        codes = np.array([m.spec.code for m in group], dtype=np.int64)
        cutoffs = np.array([m.cutoff or 0 for m in group], dtype=np.int64)
        rels = np.array([m.rel for m in group], dtype=np.int64)
        out[:, which] = score_queries(
            encoded.ranked, encoded.start, encoded.end, enc.labels, enc.offsets, codes, cutoffs, rels
        )
    return out


def _measures(metrics: Iterable[str | Measure] | str | Measure) -> tuple[list[str], list[Measure]]:
    if isinstance(metrics, str | Measure):
        metrics = [metrics]
    names: list[str] = []
    measures: list[Measure] = []
    for m in metrics:
        name = m if isinstance(m, str) else str(m)
        if name in names:
            continue
        names.append(name)
        measures.append(parse_measure(m))
    return names, measures
