"""Training SPLADE: the bi-encoder loop on sparse vectors, plus FLOPS regularisation.

Formal et al. (2021) train SPLADE like a dense bi-encoder (in-batch negatives plus BM25 hard negatives, or
MarginMSE distillation from a cross-encoder teacher) with one addition that keeps the vectors sparse: the
FLOPS regulariser of Paria et al. (2020), ``sum_v (mean over the batch of w_v)^2``, which penalises
vocabulary entries that are active across many texts (they make posting lists long, and search slow).
Its weights (``flops_query``, ``flops_doc``) grow quadratically from 0 over the first ``flops_warmup_ratio``
of the steps, as in SPLADE's training, so the model first learns to rank and then to be sparse.
Scores are raw dot products of the vectors (``scale`` 1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rankstack.sparse.splade import Splade
from rankstack.train import _views
from rankstack.train.api import bm25_training_set
from rankstack.train.examples import DocSource, Example, TrainingSet
from rankstack.train.losses import InBatchContrastiveLoss, MarginMSELoss
from rankstack.train.scoring import PairModel, Scorer, score_pools
from rankstack.train.trainer import TrainConfig, Trainer, TrainingLoop, _check_teacher
from rankstack.types import Qrels, Queries


@dataclass(frozen=True)
class SpladeConfig(TrainConfig):
    """``TrainConfig`` plus the FLOPS regulariser's weights and ramp (module docstring), and the learning rate of
    an inference-free encoder's query weight table (``query_mode="tokens"``; same schedule)."""

    scale: float = 1.0
    flops_query: float = 3e-4
    flops_doc: float = 1e-4
    flops_warmup_ratio: float = 0.3
    query_table_learning_rate: float = 1e-2

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.flops_query, self.flops_doc) < 0 or not 0.0 <= self.flops_warmup_ratio <= 1.0:
            raise ValueError("flops_query and flops_doc must be >= 0 and flops_warmup_ratio in [0, 1]")


def flops(weights: torch.Tensor) -> torch.Tensor:
    """The FLOPS regulariser of a batch of vectors ``[B, V]``: ``sum_v (mean_i |w_iv|)^2``."""
    return (weights.abs().mean(dim=0) ** 2).sum()


class SpladeTrainer(Trainer):
    """Fine-tune a ``Splade`` encoder in place (``Trainer``'s loop and losses on its vectors, plus FLOPS)."""

    def __init__(self, encoder: Splade, data: TrainingSet, config: SpladeConfig, output_dir: str | os.PathLike[str]):
        if config.loss == "margin_mse":
            _check_teacher(data)
        self.encoder = encoder
        self._query, self._doc = "query", "doc"  # type: ignore[assignment]
        self.loss_fn = InBatchContrastiveLoss(config.scale) if config.loss == "contrastive" else MarginMSELoss()
        self._reps: dict[str, list[torch.Tensor]] = {"query": [], "doc": []}
        # inference-free (query_mode="tokens"): queries are their tokens weighted by a learned table, trained
        # with the document encoder at its own rate; its cost is fixed, so FLOPS regularises documents only
        self.inference_free = getattr(encoder, "query_mode", "model") == "tokens"
        models = [encoder.model]
        if self.inference_free:
            holder = torch.nn.Module()
            holder.register_parameter("query_table", encoder.query_table_parameter())
            models.append(holder)
        TrainingLoop.__init__(self, encoder, models, data, config, output_dir)

    def _parameter_groups(self) -> list[dict[str, Any]]:
        groups = super()._parameter_groups()
        if not self.inference_free:
            return groups
        return self.split_fresh(groups, [self.encoder.query_table_parameter()], self.config.query_table_learning_rate)

    def _embed(self, encoder: Any, texts: Sequence[str]) -> torch.Tensor:
        limit = self.config.query_max_length if encoder == "query" else self.config.doc_max_length
        if encoder == "query" and self.inference_free:
            return self.encoder.token_query_vectors(texts, limit)
        reps = self.encoder.forward(self.encoder.features(texts, limit)).float()
        self._reps[encoder].append(reps)
        return reps

    def flops_weight(self, step: int) -> float:
        """The regulariser's ramp at ``step``: ``(step / warm-up steps)^2`` up to 1."""
        ramp = max(1, round(self.config.flops_warmup_ratio * self.total_steps))
        return min(1.0, (step + 1) / ramp) ** 2

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        self._reps = {"query": [], "doc": []}
        ranking = super().loss(examples, step)
        ramp = self.flops_weight(step)
        reg = sum(
            (weight * ramp * flops(torch.cat(self._reps[side])) for side, weight in
             (("query", self.config.flops_query), ("doc", self.config.flops_doc)) if self._reps[side]),
            torch.zeros((), dtype=ranking.dtype),
        )  # fmt: skip
        return ranking + reg


def train_splade(
    model: str | os.PathLike[str] | Splade,
    queries: Queries,
    qrels: Qrels,
    corpus: DocSource,
    output_dir: str | os.PathLike[str],
    *,
    config: SpladeConfig | None = None,
    negatives: bool = True,
    bm25_index: Any = None,
    teacher: Scorer | PairModel | None = None,
    resume: bool = False,
) -> Path:
    """Fine-tune a SPLADE encoder on ``qrels`` and return the directory of the final model.

    ``model``: a masked-LM directory or Hub id, or an encoder trained in place: a ``Splade``, or any encoder
    with ``features`` / ``forward`` / ``save`` such as ``UniCoil`` (give it ``flops_doc=flops_query=0``). ``negatives``: add each
    query's BM25 hard negatives (``config.num_negatives`` drawn from the top ``config.negative_depth``) to the
    in-batch ones. ``teacher``: a scorer (``rankstack.train.scoring``) or a pair model such as a ``CrossEncoder``,
    whose score margins are distilled with MarginMSE (``config.loss="margin_mse"``). ``resume`` continues an
    interrupted run in ``output_dir``.
    """
    config = config or SpladeConfig()
    if (teacher is None) != (config.loss != "margin_mse"):
        raise ValueError("a teacher is needed exactly when config.loss='margin_mse'")
    if teacher is not None and not negatives:
        raise ValueError("MarginMSE distils margins against hard negatives; keep negatives=True")
    encoder = Splade(model) if isinstance(model, str | os.PathLike) else model  # a Splade, UniCoil, ...
    output_dir = Path(output_dir)
    data = bm25_training_set(queries, qrels, corpus, output_dir, negatives=negatives, depth=config.negative_depth,
                             bm25_index=bm25_index)  # fmt: skip
    if teacher is not None:
        data.teacher = score_pools(data.query_texts(), data.positives, data.negatives, data.texts, teacher)
    with _views.quiet_truncation():
        return SpladeTrainer(encoder, data, config, output_dir).train(resume=resume)
