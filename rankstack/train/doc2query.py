"""Training doc2query: a sequence-to-sequence model learns to write the queries a document answers (Nogueira et
al., 2019, "Document Expansion by Query Prediction"), from judged (query, document) pairs: the document (after
``prefix``) is the input, the query the target, teacher-forced cross-entropy. The result is a Hugging Face
directory that ``rankstack.sparse.Doc2Query`` samples from.

No doc2query weights are reachable offline: ``seq2seq_from_encoder`` warm-starts a BERT2BERT from an encoder
such as the packaged all-MiniLM-L6-v2, and this trains it. The loop (AdamW, schedule, seeding, checkpoints,
resume) is the one every trainable stage shares.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rankstack.errors import MissingExtraError
from rankstack.models import lazy, model_dir
from rankstack.train.api import _documents
from rankstack.train.examples import DocSource, Example, TrainingSet, doc_texts
from rankstack.train.losses import generation_loss
from rankstack.train.trainer import LoopSettings, TrainingLoop
from rankstack.types import Qrels, Queries

try:
    import torch
except ImportError:  # pragma: no cover - the [neural] extra brings torch
    raise MissingExtraError("torch", "neural") from None


@dataclass(frozen=True)
class Doc2QueryConfig(LoopSettings):
    """``max_length``: document tokens the model reads; ``query_max_length``: target tokens (longer queries are
    cut); ``prefix``: put before every document, as some published models were trained (keep it the same when
    sampling with ``Doc2Query(prefix=...)``)."""

    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 1e-4
    max_length: int = 256
    query_max_length: int = 32
    prefix: str = ""
    seed: int = 42
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.max_length < 8 or self.query_max_length < 2:
            raise ValueError("max_length must be at least 8 tokens and query_max_length at least 2")


class Seq2SeqModel:
    """A sequence-to-sequence model and its tokenizer, loaded from a directory or Hub id; what the loop trains
    and saves (an ordinary Hugging Face directory)."""

    def __init__(self, model: str | os.PathLike[str], device: str | None = None):
        transformers = lazy.transformers()
        self.name = str(model)
        self.path, _ = model_dir.resolve(model)
        model_dir.check_directory(self.path)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.model, _ = lazy.from_pretrained_quietly(transformers.AutoModelForSeq2SeqLM, self.path)
        self.model.to(lazy.default_device(device))

    def save(self, path: str | os.PathLike[str]) -> Path:
        return model_dir.save_pretrained(path, self.model, self.tokenizer)


class Doc2QueryTrainer(TrainingLoop):
    """Fine-tune ``model`` in place to generate each example's query from its positive's text."""

    def __init__(self, model: Seq2SeqModel, data: TrainingSet, config: Doc2QueryConfig, output_dir: str | os.PathLike[str]):
        if not data.examples:
            raise ValueError("doc2query training needs at least one judged (query, document) pair")
        self.seq2seq = model
        super().__init__(model, [model.model], data, config, output_dir)

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        cfg = self.config
        return generation_loss(self.seq2seq.model, self.seq2seq.tokenizer,
                               [cfg.prefix + self.data.texts[e.positive] for e in examples], [e.query for e in examples],
                               cfg.max_length, cfg.query_max_length)  # fmt: skip


def train_doc2query(
    model: str | os.PathLike[str] | Seq2SeqModel,
    queries: Queries,
    qrels: Qrels,
    corpus: DocSource,
    output_dir: str | os.PathLike[str],
    *,
    config: Doc2QueryConfig | None = None,
    resume: bool = False,
) -> Path:
    """Train a doc2query model on the judged pairs of ``qrels`` (one example per relevant judgment); returns the
    final model directory, ready for ``Doc2Query(directory)``."""
    config = config or Doc2QueryConfig()
    seq2seq = model if isinstance(model, Seq2SeqModel) else Seq2SeqModel(model)
    data = TrainingSet.from_qrels(queries, qrels, doc_texts(_documents(corpus)))
    return Doc2QueryTrainer(seq2seq, data, config, output_dir).train(resume=resume)


__all__ = ["Doc2QueryConfig", "Doc2QueryTrainer", "Seq2SeqModel", "train_doc2query"]
