"""Text encoders: a transformer, pooling and normalisation, run on PyTorch (CPU or CUDA) or ONNX Runtime.

``TextEncoder`` turns texts into vectors. Encoding tokenises everything first, then sorts the inputs by
token count and batches neighbours together, so a batch is padded only to the length of its own longest
text (length bucketing; on a typical corpus this alone removes a third of the work). ``BiEncoder`` pairs a
query encoder with a document encoder: the same object for one shared model (sentence-transformers,
ANCE, RepBERT), two for DPR-style separate towers.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.model_dir import POOLINGS, ModelDirectoryError, ModelSettings, Pooling
from rankstack.types import Corpus, Document

log = logging.getLogger(__name__)

Backend = Literal["torch", "onnx"]
_DEFAULT_MAX_LENGTH = 512


def _progress(total: int | None, desc: str, show: bool) -> Any:
    return lazy.progress(total, desc, show)


class TextEncoder:
    """One transformer tower: ``encode(texts) -> float32 [n, dim]``.

    ``model`` is a local directory or a Hugging Face Hub id (downloaded once into the HF cache). Pooling,
    normalisation, maximum length and prompts default to what the directory's sentence-transformers
    configs say (mean pooling, no normalisation, 512 tokens when it has none); arguments override them.
    ``prefix`` is prepended to every text (e5's ``"query: "``, a bge instruction). ``backend="onnx"``
    runs ``onnx/model_qint8.onnx`` (or ``onnx/model.onnx`` with ``quantized=False``) made by
    ``rankstack.models.onnx.export_onnx``. ``batch_size`` defaults to 32 (PyTorch) or 8 (ONNX).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        pooling: Pooling | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        prefix: str = "",
        backend: Backend = "torch",
        quantized: bool = True,
        device: str | None = None,
        batch_size: int | None = None,
        revision: str | None = None,
    ):
        self.name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path, need_weights=backend == "torch")
        settings = model_dir.read_settings(self.path)
        if pooling is not None and pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.settings = ModelSettings(
            pooling=pooling or settings.pooling,
            normalize=settings.normalize if normalize is None else normalize,
            max_length=max_length or settings.max_length or _DEFAULT_MAX_LENGTH,
            prompts=settings.prompts,
        )
        self.prefix = prefix
        # int8 ONNX runs fastest on small batches (measured: 8 beats 32 by ~1.5x on all-MiniLM-L6-v2)
        self.batch_size = batch_size or (8 if backend == "onnx" else 32)
        self.backend: Backend = backend
        self.tokenizer = lazy.transformers().AutoTokenizer.from_pretrained(self.path)
        self.max_length = min(int(self.settings.max_length or _DEFAULT_MAX_LENGTH), self._model_max_length())
        self._warned_truncation = False
        if backend == "torch":
            torch = lazy.torch()
            self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            self.model = lazy.transformers().AutoModel.from_pretrained(self.path).to(self.device).eval()
            self._session = None
        elif backend == "onnx":
            from rankstack.models.onnx import open_session

            self.device = "cpu"
            self.model = None
            self._session = open_session(self.path, quantized=quantized)
        else:
            raise ValueError(f"backend must be 'torch' or 'onnx', not {backend!r}")

    def _model_max_length(self) -> int:
        cfg = model_dir._read_json(self.path / "config.json")
        limit = cfg.get("max_position_embeddings") or _DEFAULT_MAX_LENGTH
        tok_limit = getattr(self.tokenizer, "model_max_length", limit) or limit
        return int(min(limit, tok_limit))

    @property
    def dim(self) -> int:
        cfg = model_dir._read_json(self.path / "config.json")
        return int(cfg.get("hidden_size") or cfg.get("d_model") or cfg["dim"])

    @property
    def fingerprint(self) -> str:
        return model_dir.fingerprint(self.path)

    def __repr__(self) -> str:
        extra = f", prefix={self.prefix!r}" if self.prefix else ""
        extra += f", backend={self.backend!r}" if self.backend != "torch" else ""
        return f"TextEncoder({self.name!r}{extra})"

    # ------------------------------------------------------------------------------------ tokenising
    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to ``max_length`` (warned once per encoder)."""
        texts = [self.prefix + t for t in texts]
        ids: list[list[int]] = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        full = [i for i, x in enumerate(ids) if len(x) >= self.max_length]
        if full and not self._warned_truncation:  # a text exactly at the limit may just fit: count for sure
            lengths = self.tokenizer([texts[i] for i in full], truncation=False, verbose=False)["input_ids"]
            cut = sum(len(x) > self.max_length for x in lengths)
            if cut:
                self._warned_truncation = True
                warnings.warn(
                    f"{self.name}: {cut} of {len(texts)} texts are longer than max_length={self.max_length} "
                    "tokens and were truncated (shown once; pass max_length= to change the limit)",
                    stacklevel=3,
                )
        return ids

    def _pad(self, batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(x) for x in batch)
        pad_id = self.tokenizer.pad_token_id or 0
        ids = np.full((len(batch), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        for row, x in enumerate(batch):
            if left:
                ids[row, width - len(x) :], mask[row, width - len(x) :] = x, 1
            else:
                ids[row, : len(x)], mask[row, : len(x)] = x, 1
        return ids, mask

    # ------------------------------------------------------------------------------------ encoding
    def encode(self, texts: Sequence[str], show_progress: bool = False, desc: str = "encoding") -> np.ndarray:
        """Vectors for ``texts`` in their order, float32 ``[len(texts), dim]``."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        empty = sum(1 for t in texts if not t or not t.strip())
        if empty:
            warnings.warn(
                f"{empty} of {len(texts)} texts are empty; each is encoded as the model's empty input "
                "(special tokens only), which matches nothing in particular",
                stacklevel=2,
            )
        ids = self.tokenize(texts)
        order = np.argsort([-len(x) for x in ids], kind="stable")  # longest first: memory peaks early
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with _progress(len(texts), desc, show_progress) as bar:
            for lo in range(0, len(texts), self.batch_size):
                rows = order[lo : lo + self.batch_size]
                input_ids, mask = self._pad([ids[i] for i in rows])
                out[rows] = self._forward(input_ids, mask)
                bar.update(len(rows))
        return out

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._session is not None:
            hidden = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
            return pool_numpy(hidden, mask, self.settings.pooling, self.settings.normalize)
        torch = lazy.torch()
        with torch.inference_mode():
            t_ids = torch.from_numpy(input_ids).to(self.device)
            t_mask = torch.from_numpy(mask).to(self.device)
            return self.embed(t_ids, t_mask).float().cpu().numpy()

    def embed(self, input_ids: Any, attention_mask: Any) -> Any:
        """Pooled (and normalised) torch embeddings with gradients: what training calls."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool_torch(hidden, attention_mask, self.settings.pooling, self.settings.normalize)

    def features(self, texts: Sequence[str]) -> dict[str, Any]:
        """A padded torch batch for ``texts`` (prefix added, truncated) on the model's device."""
        torch = lazy.torch()
        input_ids, mask = self._pad(self.tokenize(texts))
        return {
            "input_ids": torch.from_numpy(input_ids).to(self.device),
            "attention_mask": torch.from_numpy(mask).to(self.device),
        }

    # ------------------------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        """An ordinary Hugging Face directory plus sentence-transformers' configs (loads in both)."""
        if self.model is None:
            raise ValueError("an ONNX encoder cannot be saved as a trainable model; save the PyTorch encoder")
        out = model_dir.save_pretrained(path, self.model, self.tokenizer)
        prompts = self.settings.prompts
        model_dir.write_settings(
            out,
            ModelSettings(self.settings.pooling, self.settings.normalize, self.max_length),
            self.dim,
            prompts.get("query", ""),
            prompts.get("document", ""),
        )
        return out


def pool_torch(hidden: Any, mask: Any, pooling: Pooling, normalize: bool) -> Any:
    torch = lazy.torch()
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    elif pooling == "cls":
        vec = hidden[:, 0]
    else:  # last non-padding token, wherever padding sits
        last = mask.shape[1] - 1 - mask.flip(1).argmax(1)
        vec = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return torch.nn.functional.normalize(vec, dim=-1) if normalize else vec


def pool_numpy(hidden: np.ndarray, mask: np.ndarray, pooling: Pooling, normalize: bool) -> np.ndarray:
    hidden = hidden.astype(np.float32, copy=False)
    if pooling == "mean":
        m = mask[..., None].astype(np.float32)
        vec = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    elif pooling == "cls":
        vec = hidden[:, 0]
    else:
        last = mask.shape[1] - 1 - mask[:, ::-1].argmax(1)
        vec = hidden[np.arange(len(hidden)), last]
    if normalize:
        vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    return vec.astype(np.float32, copy=False)


class BiEncoder:
    """A query encoder and a document encoder (the same object when the model is shared).

    ``BiEncoder("sentence-transformers/all-MiniLM-L6-v2")`` shares one model; ``query_prefix`` and
    ``doc_prefix`` default to the model's own prompts (``config_sentence_transformers.json``).
    ``doc_model=`` gives DPR-style separate towers. Other keyword arguments go to ``TextEncoder``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        doc_model: str | os.PathLike[str] | None = None,
        *,
        query_prefix: str | None = None,
        doc_prefix: str | None = None,
        query_max_length: int | None = None,
        max_length: int | None = None,
        **kwargs: Any,
    ):
        base = TextEncoder(model, max_length=max_length, **kwargs)
        prompts = base.settings.prompts
        query_prefix = prompts.get("query", "") if query_prefix is None else query_prefix
        doc_prefix = prompts.get("document", prompts.get("passage", "")) if doc_prefix is None else doc_prefix
        self.query = _sharing(base, query_prefix, query_max_length)
        if doc_model is None:
            self.doc = _sharing(base, doc_prefix)
        else:
            self.doc = TextEncoder(doc_model, max_length=max_length, **kwargs)
            self.doc.prefix = doc_prefix
        self.shared = doc_model is None

    def __repr__(self) -> str:
        if self.shared:
            return f"BiEncoder({self.query.name!r})"
        return f"BiEncoder({self.query.name!r}, doc_model={self.doc.name!r})"

    @property
    def dim(self) -> int:
        if self.query.dim != self.doc.dim:
            raise ModelDirectoryError(
                f"query ({self.query.dim}) and document ({self.doc.dim}) encoders differ in dimension"
            )
        return self.doc.dim

    def identity(self) -> dict[str, Any]:
        """What a dense index records about the model that built it."""
        return {
            "model": self.doc.name,
            "query_model": self.query.name,
            "revision": self.doc.revision,
            "fingerprint": self.doc.fingerprint,
            "query_fingerprint": self.query.fingerprint,
            "dim": self.dim,
            "pooling": self.doc.settings.pooling,
            "normalize": self.doc.settings.normalize,
            "query_prefix": self.query.prefix,
            "doc_prefix": self.doc.prefix,
            "max_length": self.doc.max_length,
            "query_max_length": self.query.max_length,
        }

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self.query.encode(texts, show_progress, desc="encoding queries")

    def encode_docs(self, docs: Iterable[Document | str], show_progress: bool = False) -> np.ndarray:
        texts = [d if isinstance(d, str) else d.contents() for d in docs]
        return self.doc.encode(texts, show_progress, desc="encoding documents")

    def stream_docs(
        self, corpus: Corpus | Iterable[Document], chunk_size: int = 4096, show_progress: bool = True
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """(docids, vectors) chunk by chunk: the corpus is never all in memory, and each chunk is
        length-bucketed on its own."""
        total = corpus._size if isinstance(corpus, Corpus) else None
        with _progress(total, "encoding documents", show_progress) as bar:
            chunk: list[Document] = []
            for doc in corpus:
                chunk.append(doc)
                if len(chunk) >= chunk_size:
                    yield [d.docid for d in chunk], self.encode_docs(chunk)
                    bar.update(len(chunk))
                    chunk = []
            if chunk:
                yield [d.docid for d in chunk], self.encode_docs(chunk)
                bar.update(len(chunk))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save a shared model as one directory; separate towers as ``query/`` and ``doc/`` inside it."""
        out = Path(path)
        if self.shared:  # saved through the document view: its length limit is the model's max_seq_length
            self.doc.settings.prompts = {"query": self.query.prefix, "document": self.doc.prefix}
            return self.doc.save(out)
        self.query.save(out / "query")
        self.doc.save(out / "doc")
        return out


def _sharing(encoder: TextEncoder, prefix: str, max_length: int | None = None) -> TextEncoder:
    """The same model and tokenizer under another prefix or length limit (no second copy of the weights)."""
    clone = object.__new__(TextEncoder)
    clone.__dict__.update(encoder.__dict__)
    clone.prefix = prefix
    if max_length:
        clone.max_length = min(max_length, encoder._model_max_length())
    return clone
