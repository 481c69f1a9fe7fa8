"""Rank fusion: pure functions from several Rankings to one.

Reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009), CombSUM / CombMNZ (Fox & Shaw, TREC-2
1994) and normalised linear combination. The pipeline operators ``|`` and ``+`` call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from rankstack.types import Ranking

Norm = Literal["minmax", "zscore", "none"]
Method = Literal["rrf", "combsum", "combmnz"]
METHODS: tuple[Method, ...] = ("rrf", "combsum", "combmnz")
NORMS: tuple[Norm, ...] = ("minmax", "zscore", "none")


def normalize(ranking: Ranking, method: Norm = "minmax") -> Ranking:
    """Rescale each query's scores: min-max to [0, 1], or z-score; a constant block maps to 0 (min-max: 1)."""
    if method == "none" or len(ranking) == 0:
        return ranking
    score = ranking.score.copy()
    for _, sl in ranking.groups():
        block = score[sl]
        if method == "minmax":
            lo, hi = block.min(), block.max()
            score[sl] = (block - lo) / (hi - lo) if hi > lo else 1.0
        elif method == "zscore":
            sd = block.std()
            score[sl] = (block - block.mean()) / sd if sd > 0 else 0.0
        else:
            raise ValueError(f"unknown normalisation {method!r}; use one of {', '.join(NORMS)}")
    return Ranking(ranking.qid, ranking.docid, score, ranking.rank, queries=ranking.queries, presorted=True)


def _combine(rankings: Sequence[Ranking], values: Sequence[np.ndarray], mnz: bool = False) -> Ranking:
    """Sum per-(qid, docid) values across rankings; with ``mnz``, multiply by how many rankings had the doc."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "qid": np.concatenate([r.qid for r in rankings]),
            "docid": np.concatenate([r.docid for r in rankings]),
            "v": np.concatenate(values),
        }
    )
    grouped = frame.groupby(["qid", "docid"], sort=False)["v"]
    out = grouped.agg(["sum", "count"]).reset_index()
    score = out["sum"].to_numpy() * (out["count"].to_numpy() if mnz else 1)
    queries = next((r.queries for r in rankings if r.queries is not None), None)
    return Ranking(out["qid"].to_numpy(), out["docid"].to_numpy(), score, queries=queries)


def _weights(rankings: Sequence[Ranking], weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    return list(weights)


def rrf(rankings: Sequence[Ranking], k: int = 60, weights: Sequence[float] | None = None) -> Ranking:
    """Reciprocal-rank fusion: score(d) = sum_i w_i / (k + rank_i(d)). k=60 as in the original paper."""
    ws = _weights(rankings, weights)
    return _combine(rankings, [w / (k + r.rank) for r, w in zip(rankings, ws, strict=True)])


def combsum(rankings: Sequence[Ranking], weights: Sequence[float] | None = None, norm: Norm = "minmax") -> Ranking:
    """Weighted sum of per-query normalised scores (a document missing from a ranking contributes 0)."""
    ws = _weights(rankings, weights)
    normed = [normalize(r, norm) for r in rankings]
    return _combine(normed, [w * r.score for r, w in zip(normed, ws, strict=True)])


def combmnz(rankings: Sequence[Ranking], weights: Sequence[float] | None = None, norm: Norm = "minmax") -> Ranking:
    """CombSUM times the number of rankings that retrieved the document."""
    ws = _weights(rankings, weights)
    normed = [normalize(r, norm) for r in rankings]
    return _combine(normed, [w * r.score for r, w in zip(normed, ws, strict=True)], mnz=True)


def fuse(
    rankings: Sequence[Ranking],
    method: Method = "rrf",
    weights: Sequence[float] | None = None,
    norm: Norm = "minmax",
    k: int = 60,
) -> Ranking:
    """One entry point for every method: ``rrf`` (uses ``k``, ignores ``norm``), ``combsum``, ``combmnz``."""
    check_options(method, norm, k)
    if method == "rrf":
        return rrf(rankings, k=k, weights=weights)
    if method == "combsum":
        return combsum(rankings, weights=weights, norm=norm)
    return combmnz(rankings, weights=weights, norm=norm)


def check_options(method: str, norm: str, k: int = 60) -> None:
    """Refuse an unknown method or normalisation (naming the ones that exist) or a bad RRF ``k`` up front."""
    if method not in METHODS:
        raise ValueError(f"unknown fusion method {method!r}; use one of {', '.join(METHODS)}")
    if norm not in NORMS:
        raise ValueError(f"unknown normalisation {norm!r}; use one of {', '.join(NORMS)}")
    if int(k) < 1:
        raise ValueError(f"RRF's k must be a positive integer (60 in the paper), got {k!r}")
