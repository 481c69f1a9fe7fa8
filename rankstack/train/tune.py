"""Tuning the few weights of score-combining re-rankers by grid search on training queries.

Birch (Yilmaz et al. 2019) has no trainable parameters on the target collection: its sentence model is
trained elsewhere, and the combination ``α · S_doc + (1 − α) · Σ_i w_i · s_i`` is tuned by grid search on
the training folds (α and w_2 … w_n on a 0.1 grid, w_1 = 1; Birch's ``main.py``). The sentence scores
do not depend on the weights, so they are computed once and every grid point is a matrix product.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rankstack.eval import encode_qrels, evaluate, parse_measure
from rankstack.rerank.base import missing_blocks, place_missing
from rankstack.rerank.birch import Birch
from rankstack.types import Qrels, Ranking

if TYPE_CHECKING:
    import pandas as pd

_GRID = tuple(round(0.1 * i, 1) for i in range(11))


@dataclasses.dataclass(frozen=True, eq=False)
class BirchTuning:
    """The outcome of ``tune_birch``: the tuned stage, its setting and every setting tried.

    ``table`` is columnar (``alpha``, ``w1`` … ``wn``, and the metric's name), one row per grid point in
    the order tried; ``to_pandas()`` makes it a DataFrame.
    """

    birch: Birch
    metric: str
    alpha: float
    weights: tuple[float, ...]
    value: float
    table: dict[str, np.ndarray]

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.table)


def tune_birch(
    birch: Birch,
    ranking: Ranking,
    qrels: Qrels,
    metric: str = "nDCG@10",
    alpha_grid: Sequence[float] = _GRID,
    weight_grid: Sequence[float] = _GRID,
) -> BirchTuning:
    """Grid-search Birch's α and w_2 … w_n on a training split; w_1 stays 1 (the scale is α's job).

    ``ranking`` is the first stage's ranking of the training queries (with query texts), the one Birch
    would re-rank; ``qrels`` judge those queries. Sentence scores come from ``birch.sentence_scores``: one
    model call for the pairs not cached yet, none for the grid. For each α in ``alpha_grid`` and each
    (w_2 … w_n) in ``weight_grid``ⁿ⁻¹ the re-ranked scores are ``α·S_doc + (1−α)·E @ w`` (one matrix product
    per α for all weight vectors, ``E`` from ``birch.components``), placed as the stage would place them
    (documents the source lacks, with ``missing="keep"``, below the scored ones), and evaluated with
    ``rankstack.eval.evaluate`` (trec_eval's conventions, the qrels encoded once). The best setting is
    the first maximum in grid order (α ascending, then the weights in lexicographic order).

    Returns a ``BirchTuning`` whose ``birch`` is ``birch.with_params(alpha, weights)``: it shares the
    sentence cache (``cache=True``, the default), so re-ranking the training ranking again costs no model
    calls. The grid has
    ``len(alpha_grid) · len(weight_grid)^(top_n − 1)`` points (1331 for top_n = 3); each costs one
    evaluation, a few milliseconds for a few thousand rows.
    """
    name = str(metric)
    parse_measure(name)  # an unknown measure fails before any model call
    alphas = np.asarray(list(alpha_grid), dtype=np.float64)
    grid = np.asarray(list(weight_grid), dtype=np.float64)
    if alphas.size == 0 or (birch.top_n > 1 and grid.size == 0):
        raise ValueError("alpha_grid and weight_grid need at least one value each")
    if ((alphas < 0) | (alphas > 1)).any():
        raise ValueError(f"alpha_grid values must lie in [0, 1], got {alphas.tolist()}")
    if len(ranking) == 0:
        raise ValueError("tune_birch needs a non-empty ranking of the training queries")

    top = birch.sentence_scores(ranking)
    present = ~np.isnan(top).all(axis=1)  # a document the source has always has a sentence (maybe empty)
    kept = ranking if present.all() else _rows(ranking, present)
    first, evidence = birch.components(kept, top[present])
    rest = list(itertools.product(grid.tolist(), repeat=birch.top_n - 1))
    weights = np.array([(1.0, *r) for r in rest], dtype=np.float64)  # [settings, top_n]
    contribution = evidence @ weights.T  # [rows, settings]

    enc = encode_qrels(qrels)
    blocks = missing_blocks(ranking, present)
    values = np.empty((len(alphas), len(weights)))
    full = np.empty(len(ranking), dtype=np.float64)
    for a, alpha in enumerate(alphas.tolist()):
        scores = alpha * first[:, None] + (1.0 - alpha) * contribution
        for w in range(len(weights)):
            full[present] = scores[:, w]
            place_missing(full, blocks)
            run = Ranking(ranking.qid, ranking.docid, full, ranking.rank, presorted=True)
            values[a, w] = evaluate(run, enc, name)[name]

    flat = values.reshape(-1)
    best = int(np.argmax(flat))  # first maximum in grid order
    best_alpha = float(alphas[best // len(weights)])
    best_weights = tuple(float(x) for x in weights[best % len(weights)])
    table: dict[str, np.ndarray] = {"alpha": np.repeat(alphas, len(weights))}
    for i in range(birch.top_n):
        table[f"w{i + 1}"] = np.tile(weights[:, i], len(alphas))
    table[name] = flat.copy()
    return BirchTuning(
        birch=birch.with_params(alpha=best_alpha, weights=best_weights),
        metric=name,
        alpha=best_alpha,
        weights=best_weights,
        value=float(flat[best]),
        table=table,
    )


def _rows(ranking: Ranking, mask: np.ndarray) -> Ranking:
    return Ranking(
        ranking.qid[mask], ranking.docid[mask], ranking.score[mask], ranking.rank[mask],
        queries=ranking.queries, presorted=True,
    )  # fmt: skip
