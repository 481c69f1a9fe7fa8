"""Training DeepCT: regress each document word's query term recall (``rankstack.sparse.deepct``).

Each training example is a judged document; the loss is the mean squared error between the prediction at
each word's first subword and the word's target (its index term's query term recall, 0 for terms no
relevant query uses), as in Dai & Callan (2020). The loop (AdamW, schedule, seeding, checkpoints, resume)
is the one every trainable stage shares.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rankstack.sparse.deepct import DeepCT, query_term_recall
from rankstack.text.analysis import Analyzer
from rankstack.train.api import _documents
from rankstack.train.examples import DocSource, Example, TrainingSet, doc_texts
from rankstack.train.trainer import TrainConfig, TrainingLoop
from rankstack.types import Qrels, Queries


class DeepCTTrainer(TrainingLoop):
    """Fine-tune ``deepct`` in place on ``targets`` (docid -> term -> query term recall) over ``texts``."""

    def __init__(
        self,
        deepct: DeepCT,
        targets: Mapping[str, Mapping[str, float]],
        texts: Mapping[str, str],
        config: TrainConfig,
        output_dir: str | os.PathLike[str],
    ):
        docids = sorted(d for d in targets if d in texts)
        if not docids:
            raise ValueError("no judged document of the targets is in the corpus")
        data = TrainingSet([Example(d, "", d) for d in docids], texts, {})
        self.deepct, self.targets = deepct, targets
        super().__init__(deepct, [deepct.model], data, config, output_dir)

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        batch, words = self.deepct.features([self.data.texts[e.positive] for e in examples])
        pred = self.deepct.predictions(batch)
        rows, cols, want = [], [], []
        for r, (e, pairs) in enumerate(zip(examples, words, strict=True)):
            target = self.targets[e.positive]
            for pos, term in pairs:
                rows.append(r)
                cols.append(pos)
                want.append(target.get(term, 0.0))
        if not rows:
            return pred.sum() * 0.0
        got = pred[torch.tensor(rows), torch.tensor(cols)]
        return torch.nn.functional.mse_loss(got, torch.tensor(want, dtype=got.dtype, device=got.device))


def train_deepct(
    model: str | os.PathLike[str] | DeepCT,
    queries: Queries,
    qrels: Qrels,
    corpus: DocSource,
    output_dir: str | os.PathLike[str],
    *,
    config: TrainConfig | None = None,
    analyzer: Analyzer | None = None,
    resume: bool = False,
) -> Path:
    """Fine-tune DeepCT on the judged documents of ``qrels`` (targets from ``query_term_recall``); returns the
    final model directory. ``analyzer`` must be the one of the BM25 index the weights will go into."""
    config = config or TrainConfig(learning_rate=2e-5, batch_size=16)
    deepct = model if isinstance(model, DeepCT) else DeepCT(model, analyzer=analyzer)
    targets = query_term_recall(queries, qrels, deepct.analyzer)
    texts = doc_texts(_documents(corpus))
    return DeepCTTrainer(deepct, targets, texts, config, output_dir).train(resume=resume)
