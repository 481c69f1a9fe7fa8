"""Training a phrase encoder: start / end token vectors that find an answer span for a question.

Each step takes ``batch_size`` (question, passage, answer) triples. The answer's first occurrence in its
passage gives a gold start token and a gold end token; every usable token of every passage in the batch
is a candidate (in-batch negatives, as DensePhrases trains), and the loss is the mean of the cross-entropies
of the start and of the end over those candidates. Triples whose answer is not in the (truncated) passage
are dropped before training, and counted in the log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rankstack.late.phrases import PhraseEncoder
from rankstack.train.examples import Example, TrainingSet
from rankstack.train.trainer import TrainConfig, TrainingLoop

log = logging.getLogger(__name__)


class PhraseTrainer(TrainingLoop):
    """Train a ``PhraseEncoder`` in place; ``answers`` maps each example's qid to its answer text."""

    def __init__(self, encoder: PhraseEncoder, data: TrainingSet, answers: Mapping[str, str], config: TrainConfig,
                 output_dir: str | os.PathLike[str], head_learning_rate: float | None = 1e-3):  # fmt: skip
        self.encoder, self.answers, self.head_learning_rate = encoder, dict(answers), head_learning_rate
        super().__init__(encoder, [encoder.model], data, config, Path(output_dir))

    def _parameter_groups(self) -> list[dict[str, Any]]:
        groups = super()._parameter_groups()  # TrainConfig has no head rate: this trainer carries its own
        return self.split_fresh(groups, self.fresh_parameters(), self.head_learning_rate)

    def fresh_parameters(self) -> list[torch.nn.Parameter]:
        """New start / end heads train at ``head_learning_rate`` (``train_phrases``)."""
        if not self.encoder.fresh_head:
            return []
        return [p for name, p in self.encoder.model.named_parameters() if not name.startswith("encoder.")]

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        texts = [self.data.texts[e.positive] for e in examples]
        start, end, usable, offsets = self.encoder.passage_vectors(texts)
        q_start, q_end = self.encoder.question_vectors([e.query for e in examples])
        b, length, _ = start.shape
        gold = [_answer_tokens(t, self.answers[e.qid], offsets[r], usable[r])
                for r, (t, e) in enumerate(zip(texts, examples, strict=True))]  # fmt: skip
        rows = [r for r, g in enumerate(gold) if g is not None]
        if not rows:
            return self.no_op_loss()
        flat_usable = usable.reshape(-1)
        losses = []
        for query, vectors, which in ((q_start, start, 0), (q_end, end, 1)):
            logits = query[rows] @ vectors.reshape(b * length, -1).T
            logits = logits.masked_fill(~flat_usable[None, :], float("-inf"))
            target = torch.tensor([r * length + gold[r][which] for r in rows], device=logits.device)  # type: ignore[index]
            losses.append(torch.nn.functional.cross_entropy(logits, target))
        return (losses[0] + losses[1]) / 2


def _answer_tokens(text: str, answer: str, offsets: torch.Tensor, usable: torch.Tensor) -> tuple[int, int] | None:
    """The tokens holding the first character and the last character of ``answer``'s first occurrence."""
    at = text.find(answer)
    if at < 0 or not answer:
        return None
    last = at + len(answer) - 1
    spans = offsets.tolist()
    ok = usable.tolist()
    first_token = next((t for t, (s, e) in enumerate(spans) if ok[t] and s <= at < e), None)
    last_token = next((t for t, (s, e) in enumerate(spans) if ok[t] and s <= last < e), None)
    if first_token is None or last_token is None or last_token < first_token:
        return None
    return first_token, last_token


def train_phrases(
    encoder: str | os.PathLike[str] | PhraseEncoder,
    triples: Sequence[tuple[str, str, str]],
    texts: Mapping[str, str],
    output_dir: str | os.PathLike[str],
    *,
    config: TrainConfig | None = None,
    head_learning_rate: float | None = 1e-3,
    resume: bool = False,
) -> Path:
    """Train a phrase encoder on ``(question, docid, answer)`` triples over passages ``texts`` (docid -> text);
    e.g. ``rankstack.late.phrases.cloze_pairs(corpus)``. Fresh start / end heads train at ``head_learning_rate``
    (None: the encoder's rate). Returns the final model directory."""
    config = config or TrainConfig(batch_size=16, learning_rate=5e-5)
    encoder = encoder if isinstance(encoder, PhraseEncoder) else PhraseEncoder(encoder)
    examples, answers = [], {}
    for i, (question, docid, answer) in enumerate(triples):
        if docid in texts and answer and answer in texts[docid]:
            examples.append(Example(f"p{i}", question, docid))
            answers[f"p{i}"] = answer
    if not examples:
        raise ValueError("no (question, docid, answer) triple has its answer in its passage's text")
    if len(examples) < len(triples):
        log.info("phrase training: %d of %d triples kept (the others' answers are not in their passages)",
                 len(examples), len(triples))  # fmt: skip
    data = TrainingSet(examples, dict(texts), {e.qid: frozenset() for e in examples})
    trainer = PhraseTrainer(encoder, data, answers, config, output_dir, head_learning_rate=head_learning_rate)
    return trainer.train(resume=resume)
