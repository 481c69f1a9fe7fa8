"""Cross-encoders (monoBERT): the query and a document read together by one transformer, one score per pair.

Nogueira & Cho (2019), "Passage Re-ranking with BERT": ``[CLS] query [SEP] document [SEP]`` through BERT,
a classification head on top. Two head shapes are in use and both are read here:

- one logit (sentence-transformers' ``CrossEncoder`` checkpoints, e.g. cross-encoder/ms-marco-MiniLM-L-6-v2):
  the score is the logit;
- two classes (the original monoBERT, castorini/monobert-large-msmarco): the score is
  ``log_softmax(logits)[1]``, the log-probability of "relevant".

Truncation keeps the query whole (up to ``query_max_length`` tokens) and cuts the document to fit
``max_length``. Pairs are tokenised once, sorted by length and batched with their neighbours, so a batch
is padded only to its own longest pair. ``backend="onnx"`` runs an export made by ``export_onnx(...,
head="logits")`` (``CrossEncoder.export_onnx``), int8 by default.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.batching import longest_first, pad_rows
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.rerank.base import Missing, PointwiseReranker
from rankstack.rerank.prompts import cut_to_tokens
from rankstack.rerank.settings import load_classifier, read_reranker_config, write_reranker_config
from rankstack.rerank.texts import DocSource

log = logging.getLogger(__name__)

Head = Literal["auto", "logit", "two-class"]
FAMILY = "monoBERT"
Backend = Literal["torch", "onnx"]
_DEFAULT_MAX_LENGTH = 512


class CrossEncoder(PointwiseReranker):
    """monoBERT-style re-ranker over ``AutoModelForSequenceClassification``.

    ``model``: a local directory or a Hugging Face Hub id (cross-encoder/ms-marco-MiniLM-L-6-v2). A directory
    holding a bare encoder (no classification head, e.g. all-MiniLM-L6-v2) gets a freshly initialised head
    of ``num_labels`` outputs (1 by default), with a warning: it must be trained before it ranks anything.
    ``head``: ``"auto"`` reads the checkpoint's number of labels; ``"logit"`` / ``"two-class"`` insist on one.
    ``max_length`` defaults to what the directory was saved with, else the checkpoint's limit (at most 512);
    ``query_max_length`` caps the query (default: saved, else 64 or half of ``max_length``). ``require_head``
    refuses a bare encoder instead of warning (the CLI sets it: a random head writes a random ranking).
    ``threads``: ONNX Runtime's intra-op threads (default: every core; PyTorch follows ``torch.set_num_threads``).
    ``save`` writes ``rankstack_reranker.json`` (family ``monoBERT``, lengths) beside the Hugging Face files, so
    a duoBERT or monoT5 directory is refused here rather than read as something it is not.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        head: Head = "auto",
        num_labels: int | None = None,
        max_length: int | None = None,
        query_max_length: int | None = None,
        backend: Backend = "torch",
        quantized: bool = True,
        device: str | None = None,
        batch_size: int | None = None,
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
        revision: str | None = None,
        require_head: bool = False,
        threads: int | None = None,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress, cache=cache)
        if head not in ("auto", "logit", "two-class"):
            raise ValueError(f"head must be 'auto', 'logit' or 'two-class', not {head!r}")
        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', not {backend!r}")
        self.model_name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path, need_weights=backend == "torch")
        transformers = lazy.transformers()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        config = transformers.AutoConfig.from_pretrained(self.path)
        if getattr(config, "is_encoder_decoder", False):
            raise ModelDirectoryError(
                f"{self.path} is a sequence-to-sequence model ({config.model_type}); re-rank with it through "
                "rankstack.rerank.MonoT5 (or QueryLikelihood), not a cross-encoder's classification head"
            )
        saved = read_reranker_config(self.path, FAMILY)  # refuses a duoBERT or monoT5 directory
        has_head = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
        if not has_head and require_head:
            raise ModelDirectoryError(
                f"{self.path} has no trained classification head (it is a bare {config.model_type} encoder), so "
                "its scores would be random; train one first (rankstack train --reranker, or "
                "rankstack.train.train_reranker) or pass a cross-encoder checkpoint"
            )
        self.fresh_head = not has_head
        labels = int(config.num_labels) if has_head else int(num_labels or (2 if head == "two-class" else 1))
        if has_head and num_labels is not None and num_labels != labels:
            raise ModelDirectoryError(
                f"{self.path} already has a {labels}-label classification head; num_labels={num_labels} "
                "only applies when a fresh head is made for a bare encoder"
            )
        self.head: Head = head
        self.num_labels = labels
        _check_head(self.path, head, labels)
        limit = min(int(getattr(config, "max_position_embeddings", _DEFAULT_MAX_LENGTH) or _DEFAULT_MAX_LENGTH), 512)
        self.max_length = min(int(max_length or saved.get("max_length") or limit), limit)
        query_max_length = query_max_length or saved.get("query_max_length")
        self.query_max_length = int(query_max_length or min(64, self.max_length // 2))
        if self.query_max_length >= self.max_length - 3:
            raise ValueError(
                f"query_max_length ({self.query_max_length}) must leave room for the document within "
                f"max_length ({self.max_length})"
            )
        self.backend: Backend = backend
        self.quantized = quantized
        self.batch_size = batch_size or (8 if backend == "onnx" else 32)
        self._token_types = "token_type_ids" in self.tokenizer.model_input_names and getattr(
            config, "type_vocab_size", 0
        ) not in (0, None)
        self._warned_truncation = False
        if backend == "torch":
            self.model, self.device = load_classifier(self.path, self.model_name, labels, has_head, device)
            self._session = None
        else:
            from rankstack.models.onnx import FP32, INT8, open_session

            if not has_head:
                raise ModelDirectoryError(f"{self.path} has no classification head to run with ONNX Runtime")
            # the generic advice (`rankstack.dense.export_onnx`) exports the bare encoder, whose hidden states
            # this class cannot score: say how to export a cross-encoder with its head
            name = INT8 if quantized else FP32
            if not (self.path / "onnx" / name).exists():
                other = (
                    " (or pass quantized=False to run onnx/model.onnx)" if (self.path / "onnx" / FP32).exists() else ""
                )
                raise ModelDirectoryError(
                    f"{self.path} has no onnx/{name}{other}; export the cross-encoder with its head first: "
                    f"`rankstack.rerank.CrossEncoder({str(self.path)!r}).export_onnx()` or "
                    "`rankstack export-onnx MODEL_DIR`"
                )
            self.device = "cpu"
            self.model = None
            self._session = open_session(self.path, quantized=quantized, threads=threads)
            self._onnx_inputs = [i.name for i in self._session.get_inputs()]
            output = self._session.get_outputs()[0]
            if len(output.shape) != 2:
                raise ModelDirectoryError(
                    f"{self.path / 'onnx' / name} outputs {output.name!r} of shape {output.shape}, not a "
                    "classification head's logits [batch, labels]: it is an encoder export; export the cross-encoder "
                    "from its PyTorch directory with `rankstack.rerank.CrossEncoder(MODEL_DIR).export_onnx(OUT)`"
                )

    # ------------------------------------------------------------------------------------ identity
    @property
    def cache_key(self) -> Hashable:
        return (self.model_name, self.backend, self.quantized, self.head, self.max_length, self.query_max_length)

    def __repr__(self) -> str:
        extra = f", backend={self.backend!r}" if self.backend != "torch" else ""
        extra += f", max_length={self.max_length}" if self.max_length != _DEFAULT_MAX_LENGTH else ""
        docs = f", docs={self.docs!r}" if self.docs is not None else ""
        return f"CrossEncoder({self.model_name!r}{docs}{extra})"

    @property
    def scores_are_log_probs(self) -> bool:
        """Two-class heads score log p(relevant); one-logit heads a logit (the pointwise loss needs to know)."""
        return self.num_labels == 2

    # ------------------------------------------------------------------------------------ tokenising
    def encode_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> dict[str, list[list[int]]]:
        """Token ids (and segment ids) of each pair: query whole, document cut to fit ``max_length``."""
        queries = cut_to_tokens(self.tokenizer, queries, self.query_max_length)
        enc = self.tokenizer(
            list(queries),
            list(docs),
            truncation="only_second",
            max_length=self.max_length,
            return_token_type_ids=self._token_types,
            verbose=False,
        )
        full = sum(len(x) >= self.max_length for x in enc["input_ids"])
        if full and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{self.model_name}: {full} of {len(docs)} (query, document) pairs reach max_length="
                f"{self.max_length} tokens; their documents were cut (shown once; pass max_length= or score "
                "passages with rankstack.rerank.PassageReranker)",
                stacklevel=4,
            )
        return {k: enc[k] for k in ("input_ids", "token_type_ids") if k in enc}

    def features(self, queries: Sequence[str], docs: Sequence[str]) -> dict[str, Any]:
        """A padded torch batch of pairs on the model's device: what training feeds ``logits``."""
        torch = lazy.torch()
        enc = self.encode_pairs(queries, docs)
        batch = pad_rows(range(len(queries)), enc, self.tokenizer.pad_token_id)
        return {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}

    # ------------------------------------------------------------------------------------ scoring
    def logits(self, features: dict[str, Any]) -> Any:
        """The head's raw logits ``[B, num_labels]`` with gradients (training calls this)."""
        return self.model(**features).logits

    def scores_from_logits(self, logits: Any) -> Any:
        """Relevance score per pair: the logit (one-label head) or log-softmax of class 1 (two classes)."""
        if logits.shape[-1] == 1:
            return logits[..., 0]
        if self.num_labels == 2:
            return logits.log_softmax(-1)[..., 1]
        raise ModelDirectoryError(f"{self.path}: a {self.num_labels}-label head is neither 'logit' nor 'two-class'")

    def pair_scores(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        """Scores of a batch of pairs as a torch tensor ``[B]`` with gradients: the trainer's entry point."""
        return self.scores_from_logits(self.logits(self.features(queries, docs)))

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        """Scores of (query, document) pairs, in their order; longest pairs are batched first."""
        if not len(queries):
            return np.zeros(0, dtype=np.float64)
        enc = self.encode_pairs(queries, docs)
        out = np.empty(len(queries), dtype=np.float64)
        with lazy.progress(len(queries), "re-ranking", self.show_progress, unit="pair") as bar:
            for rows in longest_first([len(x) for x in enc["input_ids"]], self.batch_size):
                out[rows] = self._forward(pad_rows(rows, enc, self.tokenizer.pad_token_id))
                bar.update(len(rows))
        return out

    def _forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        if self._session is not None:
            logits = self._session.run(None, {k: batch[k] for k in self._onnx_inputs})[0]
            if logits.shape[-1] == 1:
                return logits[:, 0].astype(np.float64)
            shifted = logits - logits.max(-1, keepdims=True)
            return (shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)))[:, 1].astype(np.float64)
        torch = lazy.torch()
        with torch.inference_mode():
            feats = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
            return self.scores_from_logits(self.logits(feats)).double().cpu().numpy()

    # ------------------------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        """An ordinary Hugging Face directory: loads here, in transformers and in sentence-transformers'
        ``CrossEncoder`` (whose ``predict`` applies a sigmoid to a one-logit head: same order)."""
        if self.model is None:
            raise ValueError("an ONNX cross-encoder cannot be saved as a trainable model; save the PyTorch one")
        self.model.config.architectures = [type(self.model).__name__]
        out = model_dir.save_pretrained(path, self.model, self.tokenizer)
        write_reranker_config(out, FAMILY, {"max_length": self.max_length, "query_max_length": self.query_max_length})
        return out

    def export_onnx(self, out: str | os.PathLike[str] | None = None, quantize: bool = True) -> Path:
        """Export this checkpoint with its head to ONNX (fp32 and, with ``quantize``, int8)."""
        from rankstack.models.onnx import export_onnx

        return export_onnx(self.path, out, quantize=quantize, head="logits")


def _check_head(path: Path, head: Head, labels: int) -> None:
    want = {"logit": 1, "two-class": 2}.get(head)
    if want is not None and want != labels:
        raise ModelDirectoryError(
            f"{path} has a {labels}-label classification head, but head={head!r} needs {want}; "
            f"use head='auto' (or head={'logit' if labels == 1 else 'two-class'!r})"
        )
    if head == "auto" and labels not in (1, 2):
        raise ModelDirectoryError(
            f"{path} has a {labels}-label head; a relevance score needs one logit or two classes (not relevant, "
            "relevant)"
        )
