"""Training ColBERT: MaxSim scores under in-batch + BM25 hard negatives, or KL distillation from a teacher.

``loss="contrastive"``: each query's MaxSim against its positive, the other queries' positives and every
sampled hard negative, cross-entropy towards its positive (ColBERT's n-way training, with in-batch
negatives as in ColBERTv2). ``loss="kl"``: each query's group (its positive and ``num_negatives`` of its
hard negatives) scored by the student and by a teacher (any stage: a cross-encoder re-ranker, BM25, another
ColBERT), and the KL divergence of the student's softmax from the teacher's (ColBERTv2's distillation).
The projection of a model started from a bare encoder is new, so it trains at ``head_learning_rate``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rankstack.late.colbert import ColBERTEncoder
from rankstack.late.interaction import maxsim_torch
from rankstack.pipeline import Stage
from rankstack.train import _views
from rankstack.train.api import bm25_training_set
from rankstack.train.examples import DocSource, Example, TrainingSet
from rankstack.train.losses import in_batch_cross_entropy, kl_distillation
from rankstack.train.rerank import teacher_scores
from rankstack.train.trainer import LoopSettings, TrainingLoop
from rankstack.types import Qrels, Queries

ColBERTLoss = Literal["contrastive", "kl"]


@dataclass(frozen=True)
class ColBERTConfig(LoopSettings):
    """Every knob of a ColBERT training run (saved into ``trainer_state.json``); the loop's own (schedule,
    checkpoints, precision) come from ``LoopSettings``.

    ``doc_max_length``: documents are cut there in training (the model's ``doc_length`` still rules at
    inference). ``scale`` multiplies MaxSim scores before the softmax (ColBERT uses raw sums of cosines: 1).
    ``temperature`` divides both teacher and student scores under ``loss="kl"``.
    """

    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 3e-5
    head_learning_rate: float | None = 1e-3
    loss: ColBERTLoss = "contrastive"
    scale: float = 1.0
    temperature: float = 1.0
    num_negatives: int = 1
    negative_depth: int = 30
    doc_max_length: int = 180
    seed: int = 42
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.loss not in ("contrastive", "kl"):
            raise ValueError(f"loss must be 'contrastive' or 'kl', not {self.loss!r}")
        if self.loss == "kl" and self.num_negatives < 1:
            raise ValueError("loss='kl' compares a positive with hard negatives: num_negatives must be >= 1")
        if not 0.0 <= self.warmup_ratio < 1.0 or self.temperature <= 0 or self.scale <= 0:
            raise ValueError("warmup_ratio must be in [0, 1) and temperature, scale > 0")
        if min(self.num_negatives, self.negative_depth, self.log_every, self.save_every) < 0:
            raise ValueError("num_negatives, negative_depth, log_every and save_every must be >= 0")


class ColBERTTrainer(TrainingLoop):
    """Fine-tune a ``ColBERTEncoder`` in place (the shared loop: schedule, checkpoints, exact resume)."""

    def __init__(self, encoder: ColBERTEncoder, data: TrainingSet, config: ColBERTConfig, output_dir: str | os.PathLike[str]):
        if config.loss == "kl" and not data.teacher:
            raise ValueError("loss='kl' needs teacher scores (TrainingSet.teacher; train_colbert(teacher=...))")
        self.encoder = encoder
        super().__init__(encoder, [encoder.net], data, config, Path(output_dir))

    def fresh_parameters(self) -> list[torch.nn.Parameter]:
        """The projection of a bare encoder is new: it trains at ``head_learning_rate``."""
        return list(self.encoder.linear.parameters()) if self.encoder.layout == "bare" else []

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.config.seed, step, 1])
        texts, pools = self.data.texts, self.data.negatives
        q = self.encoder.query_embeddings([e.query for e in examples])
        if self.config.loss == "kl":
            return self._kl(examples, q, rng)
        negatives = [n for e in examples for n in self._sample(pools.get(e.qid, ()), rng)]
        columns = [e.positive for e in examples] + negatives
        docs, mask = self.encoder.doc_embeddings([texts[d] for d in columns], self.config.doc_max_length)
        scores = maxsim_torch(q, docs, mask) * self.config.scale
        ignore = torch.tensor([[d in self.data.positives.get(e.qid, ()) for d in columns] for e in examples])
        return in_batch_cross_entropy(scores, ignore)

    def _kl(self, examples: Sequence[Example], q: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        teacher = self.data.teacher or {}
        groups = []
        for e in examples:
            scored = teacher.get(e.qid, {})
            pool = [d for d in self.data.negatives.get(e.qid, ()) if d in scored]
            groups.append([e.positive, *self._sample(pool, rng)])
        width = max(len(g) for g in groups)
        columns = list(dict.fromkeys(d for g in groups for d in g))
        at = {d: i for i, d in enumerate(columns)}
        docs, mask = self.encoder.doc_embeddings([self.data.texts[d] for d in columns], self.config.doc_max_length)
        all_scores = maxsim_torch(q, docs, mask)  # [B, distinct documents]
        index = torch.tensor([[at[g[min(j, len(g) - 1)]] for j in range(width)] for g in groups])
        valid = torch.tensor([[j < len(g) for j in range(width)] for g in groups])
        student = all_scores.gather(1, index) / self.config.temperature
        target = torch.tensor([[teacher[e.qid].get(g[min(j, len(g) - 1)], 0.0) for j in range(width)]
                               for e, g in zip(examples, groups, strict=True)]) / self.config.temperature  # fmt: skip
        return kl_distillation(student, target, valid)


def train_colbert(
    model: str | os.PathLike[str] | ColBERTEncoder,
    queries: Queries,
    qrels: Qrels,
    corpus: DocSource,
    output_dir: str | os.PathLike[str],
    *,
    config: ColBERTConfig | None = None,
    negatives: bool = True,
    bm25_index: Any = None,
    teacher: Stage | None = None,
    resume: bool = False,
) -> Path:
    """Train a ColBERT model on ``qrels`` and return the directory of the final model (a PyLate directory).

    ``model``: a ColBERT checkpoint or a bare encoder (it gets a fresh projection), or a ``ColBERTEncoder``
    (trained in place). ``negatives``: BM25 hard negatives (``config.num_negatives`` per query from the top
    ``config.negative_depth``) beside the in-batch ones. ``teacher``: any stage (a cross-encoder re-ranker over
    the collection's texts, BM25, a fusion) whose scores of each query's positives and pool are distilled with
    ``config.loss="kl"``.
    """
    config = config or ColBERTConfig()
    if (teacher is None) != (config.loss != "kl"):
        raise ValueError("a teacher is needed exactly when config.loss='kl'")
    if teacher is not None and not negatives:
        raise ValueError("KL distillation compares the teacher and student over hard negatives; keep negatives=True")
    encoder = model if isinstance(model, ColBERTEncoder) else ColBERTEncoder(model)
    output_dir = Path(output_dir)
    data = bm25_training_set(queries, qrels, corpus, output_dir, negatives=negatives, depth=config.negative_depth,
                             bm25_index=bm25_index)  # fmt: skip
    if teacher is not None:
        candidates = {q: [*data.positives.get(q, ()), *pool] for q, pool in data.negatives.items()}
        data.teacher = teacher_scores(teacher, data.query_texts(), candidates)
    with _views.quiet_truncation():
        return ColBERTTrainer(encoder, data, config, output_dir).train(resume=resume)
