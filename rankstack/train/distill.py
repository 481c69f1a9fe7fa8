"""Reader-to-retriever distillation (Izacard & Grave, 2021): train a retriever without relevance judgments.

A stronger, slower scorer (the "reader": a cross-encoder, a ColBERT re-ranker, any re-ranking stage) scores
each training query's first-stage candidates; the retriever learns to reproduce that relevance signal:
at each step a query's ``group_size`` candidates (a (seed, step) draw from its top ``depth``) are scored by
the retriever, and the loss is ``KL(softmax(teacher / T) || softmax(retriever scores))``. No qrels are read, so
any set of queries over the collection (logged queries, generated ones) can train a dense retriever.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankstack.dense.encoder import BiEncoder
from rankstack.pipeline import Stage
from rankstack.train import _views
from rankstack.train.api import _bm25_index, _documents
from rankstack.train.examples import DocSource, Example, TrainingSet, doc_texts
from rankstack.train.losses import kl_distillation
from rankstack.train.rerank import teacher_scores
from rankstack.train.trainer import TrainConfig, TrainingLoop
from rankstack.types import Queries


class DistillationTrainer(TrainingLoop):
    """Train a ``BiEncoder`` on teacher scores of candidate groups (``data.teacher``: qid -> docid -> score).

    ``config.num_negatives + 1`` candidates per query and step (the group), ``config.scale`` multiplies the
    retriever's inner products, ``temperature`` divides the teacher's scores.
    """

    def __init__(self, encoder: BiEncoder, data: TrainingSet, config: TrainConfig, output_dir: str | os.PathLike[str],
                 temperature: float = 1.0):  # fmt: skip
        if not data.teacher:
            raise ValueError("distillation needs teacher scores for every query's candidates (TrainingSet.teacher)")
        self.encoder, self.temperature = encoder, float(temperature)
        self._query = _views.with_max_length(encoder.query, config.query_max_length)
        self._doc = _views.with_max_length(encoder.doc, config.doc_max_length)
        models = [encoder.query.model] if encoder.shared else [encoder.query.model, encoder.doc.model]
        super().__init__(encoder, models, data, config, Path(output_dir))

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.config.seed, step, 1])
        teacher = self.data.teacher or {}
        size = self.config.num_negatives + 1
        groups = []
        for e in examples:
            pool = list(teacher[e.qid])
            picks = rng.choice(len(pool), size=min(size, len(pool)), replace=False)
            groups.append([pool[i] for i in sorted(picks.tolist())])
        width = max(len(g) for g in groups)
        q = self._query.embed(**_views.features(self._query, [e.query for e in examples]))
        flat = [d for g in groups for d in g]
        docs = self._doc.embed(**_views.features(self._doc, [self.data.texts[d] for d in flat]))
        student = q.new_zeros((len(groups), width))
        target = torch.zeros((len(groups), width), dtype=q.dtype)
        valid = torch.zeros((len(groups), width), dtype=torch.bool)
        at = 0
        for row, (e, g) in enumerate(zip(examples, groups, strict=True)):
            student[row, : len(g)] = docs[at : at + len(g)] @ q[row] * self.config.scale
            target[row, : len(g)] = torch.tensor([teacher[e.qid][d] for d in g]) / self.temperature
            valid[row, : len(g)] = True
            at += len(g)
        return kl_distillation(student, target, valid)


def distill_retriever(
    model: str | os.PathLike[str] | BiEncoder,
    queries: Queries,
    corpus: DocSource,
    teacher: Stage,
    output_dir: str | os.PathLike[str],
    *,
    config: TrainConfig | None = None,
    first_stage: Stage | None = None,
    depth: int = 20,
    temperature: float = 1.0,
    bm25_index: Any = None,
    resume: bool = False,
) -> Path:
    """Train a dense retriever from ``teacher``'s scores of each query's top ``depth`` first-stage candidates
    (default first stage: BM25 over ``bm25_index``, built from ``corpus`` when not given); returns the final
    model directory. ``config.num_negatives + 1`` candidates form each query's group per step."""
    config = config or TrainConfig(num_negatives=7)
    encoder = model if isinstance(model, BiEncoder) else BiEncoder(model)
    output_dir = Path(output_dir)
    docs = _documents(corpus)
    texts = doc_texts(docs)
    if first_stage is None:
        index = _bm25_index(bm25_index if bm25_index is not None else (corpus if hasattr(corpus, "bm25") else None),
                            docs, output_dir / "bm25-index")  # fmt: skip
        first_stage = index.bm25(k=depth)
    run = (first_stage % depth)(queries)
    candidates = {q: [d for d in ds if d in texts] for q, ds in run.to_dict().items()}
    candidates = {q: ds for q, ds in candidates.items() if len(ds) >= 2}
    qtext = queries.to_dict()
    examples = [Example(q, qtext[q], ds[0]) for q, ds in candidates.items()]
    if not examples:
        raise ValueError("the first stage returned fewer than two candidates for every query: nothing to distil")
    data = TrainingSet(examples, texts, {q: frozenset() for q in candidates})
    data.teacher = teacher_scores(teacher, {q: qtext[q] for q in candidates}, candidates)
    with _views.quiet_truncation():
        return DistillationTrainer(encoder, data, config, output_dir, temperature).train(resume=resume)
