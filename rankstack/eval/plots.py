"""Pictures of an experiment: per-query deltas against a baseline, and recall at every depth.

A mean hides whether a gain comes from many small improvements or a few large ones; sorting per-query
differences and drawing them as bars shows it at a glance. A recall-at-depth curve shows how deep a
first stage must go before a re-ranker has the relevant documents to work with. matplotlib is an optional
extra (``[plot]``) and is imported only when a picture is drawn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rankstack.errors import MissingExtraError
from rankstack.eval.encode import encode_qrels
from rankstack.eval.evaluate import per_query_values
from rankstack.eval.experiment import Experiment
from rankstack.eval.measure import parse_measure
from rankstack.types import Qrels, Ranking

if TYPE_CHECKING:
    import pandas as pd

DEPTHS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000)


def per_query_deltas(per_query: pd.DataFrame, system: str, baseline: str, measure: str) -> pd.Series:
    """``system - baseline`` per qid for ``measure``, sorted descending, from Experiment's per-query table."""
    rows = per_query[per_query["measure"] == measure]
    wide = rows.pivot(index="qid", columns="name", values="value")
    for name in (system, baseline):
        if name not in wide.columns:
            raise ValueError(f"system {name!r} is not in the per-query table; it has {list(wide.columns)}")
    return (wide[system] - wide[baseline]).sort_values(ascending=False)


def plot_per_query_delta(
    per_query: pd.DataFrame, system: str, baseline: str, measure: str, ax: Any | None = None
) -> Any:
    """Bar plot of sorted per-query differences ``system - baseline``; returns the matplotlib Axes."""
    plt = _pyplot()
    deltas = per_query_deltas(per_query, system, baseline, measure)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    colors = np.where(deltas.to_numpy() >= 0, "tab:green", "tab:red")
    ax.bar(np.arange(len(deltas)), deltas.to_numpy(), color=colors, width=1.0)
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xlabel("queries (sorted by difference)")
    ax.set_ylabel(f"Δ {measure}")
    ax.set_title(f"{system} vs {baseline}: {int((deltas > 0).sum())} better, {int((deltas < 0).sum())} worse")
    return ax


def recall_at_depth(runs: Mapping[str, Ranking], qrels: Qrels, depths: Sequence[int] = DEPTHS) -> pd.DataFrame:
    """Mean recall (trec_eval's ``recall_d``) of each run at each depth: columns ``name, depth, recall``.

    Every run is scored over the same judged queries, a query it does not answer counting as 0, as in
    ``Experiment``.
    """
    import pandas as pd

    if not depths or min(depths) < 1:
        raise ValueError(f"depths must be positive cut-offs, got {list(depths)}")
    depths = sorted(set(int(d) for d in depths))
    encoded = encode_qrels(qrels)
    measures = [parse_measure(f"R@{d}") for d in depths]
    rows = []
    for name, run in runs.items():
        values = per_query_values(run, encoded, measures)
        means = values.mean(axis=0) if len(values) else np.full(len(depths), np.nan)
        rows += [(name, d, float(m)) for d, m in zip(depths, means)]
    return pd.DataFrame(rows, columns=["name", "depth", "recall"])


def plot_recall_at_depth(curves: pd.DataFrame, ax: Any | None = None) -> Any:
    """One line per system from ``recall_at_depth``'s table, depth on a log axis; returns the Axes."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for name, rows in curves.groupby("name", sort=False):
        ax.plot(rows["depth"], rows["recall"], marker="o", markersize=3, label=str(name))
    ax.set_xscale("log")
    ax.set_xlabel("depth (documents retrieved)")
    ax.set_ylabel("mean recall")
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("recall at depth")
    return ax


def write_experiment_plots(
    runs: Mapping[str, Ranking],
    qrels: Qrels,
    out_dir: str | Path,
    measure: str,
    baseline: str | None = None,
    per_query: pd.DataFrame | None = None,
) -> list[Path]:
    """Write PNGs for an experiment into ``out_dir``; returns their paths.

    One per-query delta plot of ``measure`` per system against ``baseline`` (the first run by default), and
    one recall-at-depth chart with a line per system. ``per_query`` is Experiment's per-query table; it is
    computed here when not given.
    """
    plt = _pyplot()
    if not runs:
        raise ValueError("no runs to plot")
    baseline = baseline if baseline is not None else next(iter(runs))
    if baseline not in runs:
        raise ValueError(f"baseline {baseline!r} is not one of the runs: {list(runs)}")
    if per_query is None:
        _, per_query = Experiment(dict(runs), None, qrels, [measure], per_query=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in runs:
        if name == baseline:
            continue
        fig, ax = plt.subplots(figsize=(8, 3))
        plot_per_query_delta(per_query, name, baseline, measure, ax=ax)
        written.append(_save(fig, out / f"delta-{_slug(measure)}-{_slug(name)}.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_recall_at_depth(recall_at_depth(runs, qrels), ax=ax)
    written.append(_save(fig, out / "recall-at-depth.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def _slug(text: str) -> str:
    """A file-name-safe form of a system or measure name: ``BM25 + RM3`` -> ``BM25_+_RM3``."""
    return re.sub(r"[^A-Za-z0-9_.+@=-]+", "_", text).strip("_") or "system"


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("matplotlib", "plot") from None
    return plt
