"""A per-query delta plot: where does a system win or lose against its baseline?

A mean hides whether a gain comes from many small improvements or a few large ones; sorting per-query
differences and drawing them as bars shows it at a glance. matplotlib is an optional extra (``[plot]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rankstack.errors import MissingExtraError

if TYPE_CHECKING:
    import pandas as pd


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
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("matplotlib", "plot") from None
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
