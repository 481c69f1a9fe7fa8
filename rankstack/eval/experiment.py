"""``Experiment``: run several pipelines on the same queries and compare them in one table.

Modelled on PyTerrier's ``pt.Experiment``: one row per system, one column per measure, and, given a
baseline, per-measure counts of queries improved and degraded, paired p-values and multiple-comparison
corrected p-values. Every system is scored on the same set of queries (those of the qrels, restricted to the
queries run), so the paired tests compare like with like.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from rankstack.eval.encode import encode_qrels
from rankstack.eval.evaluate import _measures, per_query_values
from rankstack.eval.measure import Measure
from rankstack.eval.significance import Correction, correct, paired_t_test, permutation_test
from rankstack.pipeline import Stage
from rankstack.types import Qrels, Queries, Ranking

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

System = Stage | Ranking


@overload
def Experiment(
    pipelines: Sequence[System] | Mapping[str, System],
    queries: Queries | Mapping[str, str] | pd.DataFrame | None,
    qrels: Qrels,
    metrics: Iterable[str | Measure] | str,
    baseline: int | str | None = ...,
    names: Sequence[str] | None = ...,
    correction: Correction = ...,
    test: Literal["t", "permutation"] = ...,
    per_query: Literal[False] = ...,
    n_resamples: int = ...,
    seed: int = ...,
    show_progress: bool = ...,
) -> pd.DataFrame: ...


@overload
def Experiment(
    pipelines: Sequence[System] | Mapping[str, System],
    queries: Queries | Mapping[str, str] | pd.DataFrame | None,
    qrels: Qrels,
    metrics: Iterable[str | Measure] | str,
    baseline: int | str | None = ...,
    names: Sequence[str] | None = ...,
    correction: Correction = ...,
    test: Literal["t", "permutation"] = ...,
    *,
    per_query: Literal[True],
    n_resamples: int = ...,
    seed: int = ...,
    show_progress: bool = ...,
) -> tuple[pd.DataFrame, pd.DataFrame]: ...


def Experiment(  # capitalised like PyTerrier's pt.Experiment, which users will know
    pipelines: Sequence[System] | Mapping[str, System],
    queries: Queries | Mapping[str, str] | pd.DataFrame | None,
    qrels: Qrels,
    metrics: Iterable[str | Measure] | str,
    baseline: int | str | None = None,
    names: Sequence[str] | None = None,
    correction: Correction = "holm",
    test: Literal["t", "permutation"] = "t",
    per_query: bool = False,
    n_resamples: int = 10_000,
    seed: int = 0,
    show_progress: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate each system on ``queries`` against ``qrels`` and return a comparison table.

    ``pipelines`` are Stages (run on ``queries``) or precomputed Rankings, as a list or a ``{name: system}``
    dict. Names come from ``names``, else the dict keys, else ``repr(stage)`` (``ranking_<i>`` for a
    Ranking). Qrels of queries not in ``queries`` are dropped, as PyTerrier's ``filter_by_topics`` does, so a
    subset of topics is not penalised for the rest; judged queries a system does not answer count as 0.

    With ``baseline`` (a position or a name), each metric ``m`` gains columns ``m +`` / ``m -`` (queries
    improved / degraded against the baseline), ``m p-value`` (paired ``test``: "t" = Student's paired t-test,
    "permutation" = seeded paired randomisation test) and, unless ``correction`` is None,
    ``m p-value (holm)`` corrected across the non-baseline systems. With ``per_query=True`` the per-query
    scores (columns ``name, qid, measure, value``) are returned as a second table.
    """
    import pandas as pd

    systems, labels = _systems(pipelines, names)
    metric_names, measures = _measures(metrics)
    if test not in ("t", "permutation"):
        raise ValueError(f"unknown test {test!r}; use 't' or 'permutation'")
    query_table = Queries.coerce(queries) if queries is not None else None
    if query_table is None and any(isinstance(s, Stage) for s in systems):
        raise ValueError("pipelines that are Stages need queries to run on; pass queries=...")
    if query_table is not None:
        kept = qrels.subset(query_table.qid)
        if len(kept) < len(qrels):
            dropped = set(qrels.qid.tolist()) - set(kept.qid.tolist())
            logger.info("dropping qrels of %d queries that are not in the query table", len(dropped))
        qrels = kept
    encoded = encode_qrels(qrels)

    scores: list[np.ndarray] = []  # per system: (queries, measures)
    for system, label in _progress(list(zip(systems, labels)), show_progress):
        logger.info("running %s", label)
        ranking = system if isinstance(system, Ranking) else system(query_table)  # type: ignore[arg-type]
        scores.append(per_query_values(ranking, encoded, measures))

    table = pd.DataFrame({"name": labels})
    for j, name in enumerate(metric_names):
        table[name] = [s[:, j].mean() if len(s) else np.nan for s in scores]

    if baseline is not None:
        base = _baseline_index(baseline, labels)
        others = [i for i in range(len(systems)) if i != base]
        for j, name in enumerate(metric_names):
            b = scores[base][:, j]
            plus = np.full(len(systems), np.nan)
            minus = np.full(len(systems), np.nan)
            pvals = np.full(len(systems), np.nan)
            for i in others:
                a = scores[i][:, j]
                plus[i], minus[i] = np.sum(a > b), np.sum(a < b)
                if test == "t":
                    pvals[i] = paired_t_test(a, b)
                else:
                    pvals[i] = permutation_test(a, b, n_resamples=n_resamples, seed=seed)
            table[f"{name} +"] = pd.array(plus, dtype="Float64").astype("Int64")  # counts, NA for the baseline
            table[f"{name} -"] = pd.array(minus, dtype="Float64").astype("Int64")
            table[f"{name} p-value"] = pvals
            if correction is not None:
                adjusted = np.full(len(systems), np.nan)
                adjusted[others] = correct(pvals[others], correction)
                table[f"{name} p-value ({correction})"] = adjusted

    if not per_query:
        return table
    long = pd.DataFrame(
        {
            "name": np.repeat(np.asarray(labels, dtype=object), encoded.n_queries * len(metric_names)),
            "qid": np.tile(encoded.qids, len(systems) * len(metric_names)),
            "measure": np.tile(np.repeat(np.asarray(metric_names, dtype=object), encoded.n_queries), len(systems)),
            "value": np.concatenate([s.T.reshape(-1) for s in scores]) if scores else np.zeros(0),
        }
    )
    return table, long


def _systems(pipelines: Sequence[System] | Mapping[str, System], names: Sequence[str] | None):
    if isinstance(pipelines, Mapping):
        systems = list(pipelines.values())
        labels = [str(k) for k in pipelines]
    else:
        systems = list(pipelines)
        labels = [repr(s) if isinstance(s, Stage) else f"ranking_{i}" for i, s in enumerate(systems)]
    for s in systems:
        if not isinstance(s, Stage | Ranking):
            raise TypeError(f"a pipeline must be a Stage or a Ranking, got {type(s).__name__}")
    if names is not None:
        if len(names) != len(systems):
            raise ValueError(f"{len(names)} names for {len(systems)} pipelines")
        labels = [str(n) for n in names]
    if len(set(labels)) != len(labels):
        seen: dict[str, int] = {}
        unique = []
        for label in labels:
            seen[label] = seen.get(label, 0) + 1
            unique.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
        labels = unique
    return systems, labels


def _baseline_index(baseline: int | str, labels: list[str]) -> int:
    if isinstance(baseline, str):
        if baseline not in labels:
            raise ValueError(f"baseline {baseline!r} is not one of the systems: {labels}")
        return labels.index(baseline)
    if not -len(labels) <= baseline < len(labels):
        raise ValueError(f"baseline index {baseline} is out of range for {len(labels)} systems")
    return baseline % len(labels)


def _progress(items, show: bool):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="systems", unit="system")
