"""ColBERT's token-level encoder: one L2-normalised vector per token, compared by MaxSim.

Khattab & Zaharia (2020): a BERT encoder, then a linear projection without bias to ``dim`` (128) and
L2 normalisation of every token vector. Queries start ``[CLS] [Q] ...`` and are padded to a fixed
``query_length`` (32) with ``[MASK]`` tokens ("query augmentation"): the model attends to them only when
``attend_to_expansion`` is set (ColBERTv2's default is not to), but every position, masks included, gives
a query vector. Documents start ``[CLS] [D] ...``, are cut at ``doc_length`` tokens, and their
punctuation tokens (the skiplist) and padding give no vector. The markers are the vocabulary's
``[unused0]`` / ``[unused1]`` when it has them (as ColBERT and PyLate do for BERT vocabularies), else
added tokens ``[Q]`` / ``[D]``.

Checkpoints load from three layouts: a PyLate / sentence-transformers directory (``modules.json`` with a
``1_Dense`` projection; what ``save`` writes, so models trained here load in PyLate), a Stanford ColBERT
checkpoint (``artifact.metadata`` and ``linear.weight`` beside the BERT weights, e.g.
``colbert-ir/colbertv2.0``), or a bare encoder (e.g. all-MiniLM-L6-v2), which gets a fresh projection
seeded by ``seed`` to be trained here.
"""

from __future__ import annotations

import json
import os
import string
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.batching import longest_first, pad_rows
from rankstack.types import Corpus, Document

_DENSE_DIR = "1_Dense"
_STANFORD_METADATA = "artifact.metadata"


@dataclass(frozen=True)
class ColBERTSettings:
    """How a ColBERT model encodes: projection size, lengths, markers, query augmentation, skiplist."""

    dim: int = 128
    query_length: int = 32
    doc_length: int = 180
    query_marker: str = "[unused0]"
    doc_marker: str = "[unused1]"
    attend_to_expansion: bool = False
    skiplist: tuple[str, ...] = field(default_factory=lambda: tuple(string.punctuation))

    def __post_init__(self) -> None:
        if self.dim < 1 or self.query_length < 3 or self.doc_length < 3:
            raise ValueError("dim must be >= 1 and query_length, doc_length >= 3 (CLS, marker, SEP)")


def read_colbert_settings(path: Path) -> tuple[ColBERTSettings | None, str]:
    """What a directory says about ColBERT encoding, and its layout: ``"pylate"``, ``"stanford"`` or ``"bare"``."""
    dense = path / _DENSE_DIR / "config.json"
    if dense.exists():
        st = model_dir.read_json_object(path / "config_sentence_transformers.json")
        dense_cfg = model_dir.read_json_object(dense)
        settings = ColBERTSettings(
            dim=int(dense_cfg["out_features"]),
            query_length=int(st.get("query_length") or 32),
            doc_length=int(st.get("document_length") or 180),
            query_marker=str(st.get("query_prefix") or "[unused0]").strip(),
            doc_marker=str(st.get("document_prefix") or "[unused1]").strip(),
            attend_to_expansion=bool(st.get("attend_to_expansion_tokens", False)),
            skiplist=tuple(st.get("skiplist_words") or string.punctuation),
        )
        return settings, "pylate"
    meta = path / _STANFORD_METADATA
    if meta.exists():
        m = model_dir.read_json_object(meta)
        settings = ColBERTSettings(
            dim=int(m.get("dim", 128)),
            query_length=int(m.get("query_maxlen", 32)),
            doc_length=int(m.get("doc_maxlen", 180)),
            query_marker=str(m.get("query_token_id", "[unused0]")),
            doc_marker=str(m.get("doc_token_id", "[unused1]")),
            attend_to_expansion=bool(m.get("attend_to_mask_tokens", False)),
            skiplist=tuple(string.punctuation) if m.get("mask_punctuation", True) else (),
        )
        return settings, "stanford"
    return None, "bare"


class ColBERTEncoder:
    """Token vectors for queries (``[n, query_length, dim]``) and documents (one ``[tokens, dim]`` each).

    ``model``: a local directory or Hub id in any of the three layouts (module docstring). Keyword
    arguments override the directory's settings (``dim`` only for a bare encoder, whose projection is new).
    ``batch_size`` texts per forward pass, longest first so a batch carries little padding.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        dim: int | None = None,
        query_length: int | None = None,
        doc_length: int | None = None,
        attend_to_expansion: bool | None = None,
        device: str | None = None,
        batch_size: int = 32,
        seed: int = 0,
        revision: str | None = None,
    ):
        torch, transformers = lazy.torch(), lazy.transformers()
        self.name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path)
        found, self.layout = read_colbert_settings(self.path)
        if found is not None and dim is not None and dim != found.dim:
            raise ValueError(f"{self.name} projects to {found.dim} dimensions; dim={dim} applies to a bare encoder only")
        settings = found or ColBERTSettings(dim=dim or 128)
        changes = {"query_length": query_length, "doc_length": doc_length, "attend_to_expansion": attend_to_expansion}
        self.settings = replace(settings, **{k: v for k, v in changes.items() if v is not None})
        self.device = lazy.default_device(device)
        self.batch_size = int(batch_size)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self._load_kwargs = model_dir.encoder_kwargs(self.path)
        self.model, _ = lazy.from_pretrained_quietly(transformers.AutoModel, self.path, **self._load_kwargs)
        self.settings = self._markers(self.settings)
        hidden = int(self.model.config.hidden_size)
        self.linear = torch.nn.Linear(hidden, self.settings.dim, bias=False)
        if self.layout == "bare":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.linear.reset_parameters()
        else:
            self.linear.weight.data.copy_(self._load_projection(hidden))
        self.model.to(self.device).eval()
        self.linear.to(self.device).eval()
        self.net = torch.nn.ModuleDict({"encoder": self.model, "linear": self.linear})
        limit = int(getattr(self.model.config, "max_position_embeddings", 512) or 512)
        if doc_length is None and self.settings.doc_length > limit:  # a default longer than this model reads
            self.settings = replace(self.settings, doc_length=limit)
        if self.settings.doc_length > limit or self.settings.query_length > limit:
            raise ValueError(f"{self.name} reads at most {limit} tokens; doc_length and query_length must not exceed it")
        self._skip_ids = self._skiplist_ids()
        self._warned_truncation = False

    # ------------------------------------------------------------------------------------ loading
    def _markers(self, settings: ColBERTSettings) -> ColBERTSettings:
        """Marker tokens that exist in the vocabulary: ``[unused0/1]`` when present, else added ``[Q]``/``[D]``."""
        vocab = self.tokenizer.get_vocab()
        q, d = settings.query_marker, settings.doc_marker
        if q in vocab and d in vocab:
            return settings
        if self.layout != "bare":
            raise ValueError(f"{self.name}: its marker tokens {q!r} / {d!r} are not in its tokenizer's vocabulary")
        self.tokenizer.add_tokens(["[Q]", "[D]"], special_tokens=True)
        self.model.resize_token_embeddings(len(self.tokenizer))
        return replace(settings, query_marker="[Q]", doc_marker="[D]")

    def _load_projection(self, hidden: int) -> Any:
        from safetensors.torch import load_file

        torch = lazy.torch()
        if self.layout == "pylate":
            files = [self.path / _DENSE_DIR / f for f in ("model.safetensors", "pytorch_model.bin")]
        else:
            files = [self.path / f for f in ("model.safetensors", "pytorch_model.bin")]
        for f in files:
            if f.exists():
                state = load_file(f) if f.suffix == ".safetensors" else torch.load(f, map_location="cpu", weights_only=True)
                weight = state.get("linear.weight")
                if weight is not None:
                    if tuple(weight.shape) != (self.settings.dim, hidden):
                        raise ValueError(f"{f}: linear.weight has shape {tuple(weight.shape)}, expected "
                                         f"({self.settings.dim}, {hidden})")  # fmt: skip
                    return weight
        raise model_dir.ModelDirectoryError(
            f"{self.path} is a {self.layout} ColBERT checkpoint without its projection (linear.weight in "
            f"{', '.join(str(f.relative_to(self.path)) for f in files)}); re-download or re-save it."
        )

    def _skiplist_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        for word in self.settings.skiplist:
            ids.update(self.tokenizer(word, add_special_tokens=False)["input_ids"])
        return frozenset(ids)

    @property
    def dim(self) -> int:
        return self.settings.dim

    @property
    def fingerprint(self) -> str:
        """The transformer's weight fingerprint combined with the projection's bytes and the settings."""
        return model_dir.fingerprint_with(self.path, [self.linear.weight], asdict(self.settings))

    def identity(self) -> dict[str, Any]:
        """What a token index records about the encoder that built it (compared on open)."""
        s = self.settings
        return {"model": self.name, "revision": self.revision, "fingerprint": self.fingerprint, "dim": s.dim,
                "query_length": s.query_length, "doc_length": s.doc_length,
                "attend_to_expansion": s.attend_to_expansion}  # fmt: skip

    def __repr__(self) -> str:
        return f"ColBERTEncoder({self.name!r})"

    # ------------------------------------------------------------------------------------ tokenising
    def tokenize_queries(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)`` int64 ``[n, query_length]``: ``[CLS] [Q] text [SEP]`` then ``[MASK]``s."""
        blank = [i for i, t in enumerate(texts) if not t or not t.strip()]
        if blank:
            raise ValueError(f"{len(blank)} empty queries (first at position {blank[0]}); give every query some text")
        ids = self._ids(texts, self.settings.query_length, self.settings.query_marker, warn=False)
        n, width = len(ids), self.settings.query_length
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            raise ValueError(f"{self.name}'s tokenizer has no [MASK] token, which ColBERT's query augmentation needs")
        out = np.full((n, width), mask_id, dtype=np.int64)
        attention = np.zeros((n, width), dtype=np.int64)
        for row, x in enumerate(ids):
            out[row, : len(x)] = x
            attention[row, : len(x)] = 1
        if self.settings.attend_to_expansion:
            attention[:] = 1
        return out, attention

    def tokenize_docs(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Token ids per document: ``[CLS] [D] text [SEP]``, at most ``doc_length`` (or ``max_length``) tokens."""
        limit = min(int(max_length or self.settings.doc_length), self.settings.doc_length)
        return self._ids(texts, limit, self.settings.doc_marker, warn=max_length is None)

    def _ids(self, texts: Sequence[str], limit: int, marker: str, warn: bool) -> list[list[int]]:
        marker_id = self.tokenizer.convert_tokens_to_ids(marker)
        enc = self.tokenizer(list(texts), truncation=True, max_length=limit - 1, verbose=False)["input_ids"]
        if warn and not self._warned_truncation and any(len(x) >= limit - 1 for x in enc):
            self._warned_truncation = True
            warnings.warn(
                f"{self.name}: documents longer than doc_length={self.settings.doc_length} tokens are cut there "
                "(ColBERT's documented truncation; shown once). Split long documents into passages first "
                "(rankstack.rerank.passages) or pass doc_length= up to the model's limit.",
                stacklevel=4,
            )
        return [[x[0], marker_id, *x[1:]] for x in enc]

    def doc_mask(self, ids: np.ndarray, attention: np.ndarray) -> np.ndarray:
        """Which document positions give a vector: attended, and not a skiplist (punctuation) token."""
        keep = attention.astype(bool)
        if self._skip_ids:
            keep &= ~np.isin(ids, np.fromiter(self._skip_ids, dtype=np.int64))
        return keep

    # ------------------------------------------------------------------------------------ torch
    def _project(self, input_ids: Any, attention_mask: Any) -> Any:
        torch = lazy.torch()
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return torch.nn.functional.normalize(self.linear(hidden), p=2, dim=-1)

    def query_embeddings(self, texts: Sequence[str]) -> Any:
        """Query token vectors with gradients, torch ``[n, query_length, dim]``: what training calls."""
        torch = lazy.torch()
        ids, attention = self.tokenize_queries(texts)
        return self._project(torch.from_numpy(ids).to(self.device), torch.from_numpy(attention).to(self.device))

    def doc_embeddings(self, texts: Sequence[str], max_length: int | None = None) -> tuple[Any, Any]:
        """Document token vectors with gradients and which of them count: torch ``[n, L, dim]``, bool ``[n, L]``."""
        torch = lazy.torch()
        ids, attention = _pad(self.tokenize_docs(texts, max_length), self.tokenizer.pad_token_id)
        keep = torch.from_numpy(self.doc_mask(ids, attention)).to(self.device)
        vecs = self._project(torch.from_numpy(ids).to(self.device), torch.from_numpy(attention).to(self.device))
        return vecs * keep.unsqueeze(-1), keep

    # ------------------------------------------------------------------------------------ inference
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), query_length, dim]``."""
        torch = lazy.torch()
        texts = list(texts)
        out = np.empty((len(texts), self.settings.query_length, self.dim), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(texts), self.batch_size):
                out[lo : lo + self.batch_size] = self.query_embeddings(texts[lo : lo + self.batch_size]).float().cpu().numpy()
        return out

    def encode_docs(self, texts: Sequence[str], show_progress: bool = False) -> list[np.ndarray]:
        """One float32 ``[tokens, dim]`` matrix per document (skiplist and padding removed), in input order."""
        torch = lazy.torch()
        ids = self.tokenize_docs(list(texts))
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(ids)
        pad_id = self.tokenizer.pad_token_id
        with torch.inference_mode(), lazy.progress(len(ids), "encoding documents", show_progress) as bar:
            for rows in longest_first([len(x) for x in ids], self.batch_size):
                input_ids, attention = _pad([ids[i] for i in rows], pad_id)
                keep = self.doc_mask(input_ids, attention)
                vecs = self._project(torch.from_numpy(input_ids).to(self.device),
                                     torch.from_numpy(attention).to(self.device)).float().cpu().numpy()  # fmt: skip
                for r, i in enumerate(rows):
                    out[i] = np.ascontiguousarray(vecs[r][keep[r]])
                bar.update(len(rows))
        return out

    def stream_docs(
        self, docs: Corpus | Iterable[Document], chunk_size: int = 1024, show_progress: bool = True
    ) -> Iterator[tuple[list[str], list[np.ndarray]]]:
        """``(docids, token matrices)`` blocks over a corpus, one block in memory at a time."""
        with lazy.progress(None, "encoding documents", show_progress, unit="doc") as bar:
            for chunk in lazy.chunked(docs, chunk_size):
                yield [d.docid for d in chunk], self.encode_docs([d.contents() for d in chunk])
                bar.update(len(chunk))

    # ------------------------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        """A PyLate / sentence-transformers directory: the transformer, ``1_Dense`` with the projection, and
        ColBERT's settings in ``config_sentence_transformers.json`` (loads here and in PyLate)."""
        from safetensors.torch import save_file

        out = model_dir.save_pretrained(path, self.model, self.tokenizer)
        s = self.settings
        dense = out / _DENSE_DIR
        dense.mkdir(exist_ok=True)
        save_file({"linear.weight": self.linear.weight.detach().cpu().contiguous()}, str(dense / "model.safetensors"))
        _write(dense / "config.json", {"in_features": int(self.linear.in_features), "out_features": s.dim, "bias": False,
                                        "activation_function": "torch.nn.modules.linear.Identity"})  # fmt: skip
        _write(out / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": _DENSE_DIR, "type": "pylate.models.Dense.Dense"},
        ])  # fmt: skip
        _write(out / "sentence_bert_config.json", {"max_seq_length": s.doc_length, "do_lower_case": False})
        _write(out / "config_sentence_transformers.json", {
            "query_prefix": s.query_marker, "document_prefix": s.doc_marker, "query_length": s.query_length,
            "document_length": s.doc_length, "attend_to_expansion_tokens": s.attend_to_expansion,
            "skiplist_words": list(s.skiplist), "similarity_fn_name": "MaxSim", "do_query_expansion": True,
            "prompts": {}, "default_prompt_name": None,
        })  # fmt: skip
        return out

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load the weights of a directory this encoder saved (training resumes through it)."""
        from safetensors.torch import load_file

        saved, _ = lazy.from_pretrained_quietly(type(self.model), path, **self._load_kwargs)
        self.model.load_state_dict(saved.state_dict())
        self.linear.weight.data.copy_(load_file(str(Path(path) / _DENSE_DIR / "model.safetensors"))["linear.weight"])


def _pad(ids: Sequence[Sequence[int]], pad_id: int | None) -> tuple[np.ndarray, np.ndarray]:
    batch = pad_rows(range(len(ids)), {"input_ids": ids}, pad_id)
    return batch["input_ids"], batch["attention_mask"]


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")

