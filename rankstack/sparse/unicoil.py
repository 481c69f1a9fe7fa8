"""uniCOIL: one learned weight per document token (Lin & Ma, 2021, "A Few Brief Notes on DeepImpact, COIL,
and a Conceptual Framework for Information Retrieval Techniques").

A BERT-style encoder with a linear head ``tok_proj`` (hidden -> 1) gives every token ``ReLU(tok_proj(h_t))``;
a text's vector has, for each vocabulary entry it contains, the largest weight of its occurrences ([CLS],
[SEP] and padding are left out), as Pyserini's uniCOIL encoders do. Queries use the same head. Documents are
often expanded first (doc2query): pass the expanded text. The checkpoint layout is castorini's
(``bert.*`` plus ``tok_proj.*``), so ``castorini/unicoil-msmarco-passage`` loads by hub id; a bare encoder
(all-MiniLM-L6-v2, SPLADE-tiny's BERT) gets a fresh head to train (``rankstack.train.train_splade`` trains
any encoder with ``forward``/``features``/``save``, this one included, with the FLOPS weights at 0).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.vectors import SparseVector
from rankstack.models import lazy, model_dir
from rankstack.models.batching import longest_first, pad_rows
from rankstack.sparse.impact import encode_corpus
from rankstack.types import Document

log = logging.getLogger(__name__)
_MODEL_CLASS: list[Any] = []


def _unicoil_class() -> Any:
    """``UniCoilModel(BertPreTrainedModel)``: ``bert`` + ``tok_proj``, made on first use (torch is lazy)."""
    if not _MODEL_CLASS:
        torch = lazy.torch()
        transformers = lazy.transformers()

        class UniCoilModel(transformers.BertPreTrainedModel):
            def __init__(self, config: Any):
                super().__init__(config)
                self.bert = transformers.BertModel(config, add_pooling_layer=False)
                self.tok_proj = torch.nn.Linear(config.hidden_size, 1)
                self.post_init()

            def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Any:
                hidden = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
                return torch.relu(self.tok_proj(hidden))[..., 0]  # [B, T]

        _MODEL_CLASS.append(UniCoilModel)
    return _MODEL_CLASS[0]


class UniCoil:
    """A uniCOIL encoder: ``encode_documents`` / ``encode_queries`` -> ``{token: weight}`` per text.

    ``model``: a directory or Hub id holding a uniCOIL checkpoint, or a BERT-style encoder (a fresh
    ``tok_proj`` head, with a warning: train it first). ``max_length`` caps documents (512), queries 64.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        max_length: int = 512,
        query_max_length: int = 64,
        batch_size: int = 32,
        device: str | None = None,
        revision: str | None = None,
    ):
        transformers = lazy.transformers()
        self.name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.model, info = lazy.from_pretrained_quietly(_unicoil_class(), self.path)
        if any(k.startswith("tok_proj") for k in info.get("missing_keys", [])):
            warnings.warn(
                f"{self.name} has no uniCOIL head (tok_proj): a fresh one was made; train it before use",
                stacklevel=2,
            )
        self.device = lazy.default_device(device)
        self.model.to(self.device).eval()
        self.max_length, self.query_max_length, self.batch_size = int(max_length), int(query_max_length), int(batch_size)
        special = {self.tokenizer.cls_token_id, self.tokenizer.sep_token_id, self.tokenizer.pad_token_id}
        self._special = np.array(sorted(i for i in special if i is not None), dtype=np.int64)
        self.vocab_size = int(self.model.config.vocab_size)
        self._vocab: list[str] = self.tokenizer.convert_ids_to_tokens(list(range(self.vocab_size)))

    def describe(self) -> dict[str, Any]:
        return {"kind": "unicoil", "model": self.name, "fingerprint": model_dir.fingerprint(self.path)}

    def __repr__(self) -> str:
        return f"UniCoil({self.name!r})"

    # ------------------------------------------------------------------------------------ encoding
    def encode_documents(self, texts: Sequence[str], show_progress: bool = False) -> list[dict[str, float]]:
        return self._encode(texts, self.max_length, show_progress, "encoding documents")

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> list[dict[str, float]]:
        return self._encode(texts, self.query_max_length, show_progress, "encoding queries")

    def encode_corpus(self, docs: Iterable[Document], show_progress: bool = True, chunk: int = 1024) -> Iterator[SparseVector]:
        """``SparseVector``s of ``docs`` for ``build_impact_index`` (``rankstack.sparse.impact.encode_corpus``)."""
        return encode_corpus(self, docs, show_progress, chunk)

    def _encode(self, texts: Sequence[str], max_length: int, show_progress: bool, desc: str) -> list[dict[str, float]]:
        torch = lazy.torch()
        if not len(texts):
            return []
        ids = self.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        out: list[dict[str, float]] = [{} for _ in ids]
        with lazy.progress(len(ids), desc, show_progress and bool(desc), unit="text") as bar:
            for rows in longest_first([len(x) for x in ids], self.batch_size):
                batch = pad_rows(rows, {"input_ids": ids}, self.tokenizer.pad_token_id)
                with torch.inference_mode():
                    weights = self.model(
                        torch.from_numpy(batch["input_ids"]).to(self.device),
                        attention_mask=torch.from_numpy(batch["attention_mask"]).to(self.device),
                    ).float().cpu().numpy()
                for r, row in enumerate(rows):
                    n = len(ids[row])
                    out[row] = self._token_max(np.asarray(ids[row], dtype=np.int64), weights[r, :n])
                bar.update(len(rows))
        return out

    def _token_max(self, ids: np.ndarray, weights: np.ndarray) -> dict[str, float]:
        """Each distinct non-special token's largest weight, zeros dropped."""
        keep = ~np.isin(ids, self._special) & (weights > 0)
        ids, weights = ids[keep], weights[keep]
        best: dict[int, float] = {}
        for i, w in zip(ids.tolist(), weights.tolist(), strict=True):
            if w > best.get(i, 0.0):
                best[i] = w
        return {self._vocab[i]: w for i, w in best.items()}

    # ------------------------------------------------------------------------------------ training
    def features(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, Any]:
        torch = lazy.torch()
        ids = self.tokenizer(list(texts), truncation=True, max_length=max_length or self.max_length)["input_ids"]
        batch = pad_rows(range(len(ids)), {"input_ids": ids}, self.tokenizer.pad_token_id)
        return {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}

    def forward(self, features: Mapping[str, Any]) -> Any:
        """Vectors ``[B, V]`` (token weights max-pooled into their vocabulary entries), with gradients."""
        torch = lazy.torch()
        ids = features["input_ids"]
        weights = self.model(ids, attention_mask=features["attention_mask"])
        special = torch.from_numpy(self._special).to(ids.device)
        weights = weights * (features["attention_mask"] > 0) * ~torch.isin(ids, special)
        out = torch.zeros((ids.shape[0], self.vocab_size), dtype=weights.dtype, device=weights.device)
        return out.scatter_reduce(1, ids, weights, reduce="amax", include_self=True)

    def save(self, path: str | os.PathLike[str]) -> Path:
        return model_dir.save_pretrained(path, self.model, self.tokenizer)


__all__ = ["UniCoil"]
