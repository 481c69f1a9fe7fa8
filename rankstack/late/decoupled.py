"""Re-rankers whose document side is computed once and cached: PreTTR, DC-BERT, the poly-encoder and MORES.

All four split a cross-encoder's work so that the part that reads only the document runs ahead of time,
and only a cheaper query-dependent part runs per query:

- **PreTTR** (MacAvaney et al., 2020): a BERT cross-encoder whose first ``layer`` layers see the query and
  the document separately; the document's token states after those layers are stored (float16, or the
  token index's residual compression), and the upper layers join them with the query at query time.
- **DC-BERT** (Zhang et al., 2020): query and document each through the whole BERT, then ``interaction_layers``
  joint transformer layers (initialised from BERT's top layers) over both sequences, then a head on [CLS].
- **Poly-encoder** (Humeau et al., 2020): ``codes`` learned vectors attend over the query's token states,
  giving ``codes`` query vectors; the document's [CLS] vector attends over those, and the score is its dot
  product with the result. The document side is one cached vector.
- **MORES** (Gao et al., 2020): document and query representation modules (BERT), then ``interaction_layers``
  blocks in which the query attends to itself and cross-attends to the cached document states; self- and
  cross-attention start from BERT's top layers' self-attention, as in the paper.

Each is a ``PointwiseReranker`` (scores cached by query and docid) with ``pair_scores`` for
``rankstack.train.train_reranker``. A checkpoint is the BERT directory plus ``late_reranker.json`` (family and
settings) and ``late_reranker.safetensors`` (the parts BERT lacks); a bare encoder gets fresh parts.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.batching import longest_first, pad_rows
from rankstack.models.layers import additive_mask, run_layers
from rankstack.rerank.base import Missing, PointwiseReranker, text_digest
from rankstack.rerank.settings import merged_settings
from rankstack.rerank.texts import DocSource

CONFIG_FILE = "late_reranker.json"
WEIGHTS_FILE = "late_reranker.safetensors"


class DecoupledReranker(PointwiseReranker):
    """What the four families share: loading, tokenising, the document-state cache, batching and saving.

    A family says how to build its extra modules (``_build``), the document side (``_doc_states``), the
    query side (``_query_states``) and the interaction (``_interact``), all torch with gradients.
    """

    family: ClassVar[str] = ""
    score_kind: ClassVar[str] = "logit"  # a relevance logit: trains with every re-ranker loss
    defaults: ClassVar[dict[str, Any]] = {}
    vector_doc: ClassVar[bool] = False  # one vector per document (the poly-encoder) rather than token states

    def __init__(
        self,
        model: str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        max_length: int = 256,
        query_max_length: int = 32,
        batch_size: int = 32,
        device: str | None = None,
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
        seed: int = 0,
        **settings: Any,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress, cache=cache)
        torch, transformers = lazy.torch(), lazy.transformers()
        self.name = str(model)
        self.path, self.revision = model_dir.resolve(model)
        model_dir.check_directory(self.path)
        saved = model_dir.read_json_object(self.path / CONFIG_FILE)
        if saved and saved.get("family") != self.family:
            raise ValueError(f"{self.path} holds a {saved.get('family')} re-ranker, not {self.family}")
        self.settings = merged_settings(type(self).__name__, self.defaults, saved.get("settings", {}), settings)
        self.max_length, self.query_max_length = int(max_length), int(query_max_length)
        self.batch_size = int(batch_size)
        self.device = lazy.default_device(device)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.bert, _ = lazy.from_pretrained_quietly(transformers.AutoModel, self.path, **model_dir.encoder_kwargs(self.path))
        limit = int(getattr(self.bert.config, "max_position_embeddings", 512) or 512)
        self.max_length = min(self.max_length, limit)
        if self.query_max_length + 3 > self.max_length:
            raise ValueError(f"query_max_length={self.query_max_length} leaves no room for documents in {self.max_length} tokens")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            parts = self._build(self.bert.config)
        self.model = torch.nn.ModuleDict({"encoder": self.bert, **parts})
        self.model.base_model_prefix = "encoder"  # the trainer gives the other parts the head learning rate
        self.fresh_head = not (self.path / WEIGHTS_FILE).exists()
        if not self.fresh_head:
            from safetensors.torch import load_file

            state = load_file(str(self.path / WEIGHTS_FILE))
            encoder = {f"encoder.{k}": v for k, v in self.bert.state_dict().items()}
            model_dir.load_exactly(self.model, {**encoder, **state}, self.path / WEIGHTS_FILE, self.family)
        self.model.to(self.device).eval()
        self._states: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------ family parts
    def _build(self, config: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _top_layers(self, config: Any) -> list[Any]:
        """BERT's top ``interaction_layers`` layers (checked), which DC-BERT and MORES start their interaction from."""
        k = int(self.settings["interaction_layers"])
        if not 1 <= k <= config.num_hidden_layers:
            raise ValueError(f"interaction_layers must be in [1, {config.num_hidden_layers}]")
        return list(self.bert.encoder.layer[-k:])

    def _doc_states(self, ids: Any, mask: Any) -> Any:
        raise NotImplementedError

    def _query_states(self, ids: Any, mask: Any) -> Any:
        raise NotImplementedError

    def _interact(self, q: Any, q_mask: Any, d: Any, d_mask: Any) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ inputs
    def _doc_budget(self) -> int:
        return self.max_length - self.query_max_length

    def _tokens(self, texts: Sequence[str], limit: int, cls: bool) -> list[list[int]]:
        """``[CLS] text [SEP]`` (or ``text [SEP]`` without ``cls``), at most ``limit`` tokens."""
        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max(1, limit - 2),
                             verbose=False)["input_ids"]  # fmt: skip
        head = [self.tokenizer.cls_token_id] if cls else []
        return [[*head, *x, self.tokenizer.sep_token_id] for x in ids]

    def query_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self._tokens(texts, self.query_max_length, cls=True)

    def doc_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self._tokens(texts, self._doc_budget(), cls=True)

    def _pad(self, ids: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        torch = lazy.torch()
        batch = pad_rows(range(len(ids)), {"input_ids": ids}, self.tokenizer.pad_token_id)
        return (torch.from_numpy(batch["input_ids"]).to(self.device),
                torch.from_numpy(batch["attention_mask"]).to(self.device))  # fmt: skip

    # ------------------------------------------------------------------------------------ scoring
    def pair_scores(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        """Scores of (query, document) pairs with gradients ``[B]``: the trainer's entry point."""
        q_ids, q_mask = self._pad(self.query_ids(queries))
        d_ids, d_mask = self._pad(self.doc_ids(docs))
        return self._interact(self._query_states(q_ids, q_mask), q_mask, self._doc_states(d_ids, d_mask), d_mask)

    def doc_states(self, texts: Sequence[str]) -> list[Any]:
        """The cached document side of each text (computed for those not cached yet), float16 on the CPU."""
        torch = lazy.torch()
        keys = [text_digest(t) for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in self._states))
        if todo:
            text_of = dict(zip(keys, texts, strict=True))
            ids = self.doc_ids([text_of[k] for k in todo])
            with torch.inference_mode():
                for rows in longest_first([len(x) for x in ids], self.batch_size):
                    d_ids, d_mask = self._pad([ids[i] for i in rows])
                    states = self._doc_states(d_ids, d_mask)
                    for r, i in enumerate(rows):
                        n = int(d_mask[r].sum())
                        self._states[todo[i]] = (states[r, :n] if states.dim() == 3 else states[r]).half().cpu()
        return [self._states[k] for k in keys]

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        """Scores from cached document states: each query's side is computed once per call."""
        torch = lazy.torch()
        if not len(queries):
            return np.zeros(0, dtype=np.float64)
        states = self.doc_states(docs)
        out = np.empty(len(queries), dtype=np.float64)
        distinct = list(dict.fromkeys(queries))
        number = {q: i for i, q in enumerate(distinct)}
        of = np.array([number[q] for q in queries])
        with torch.inference_mode():
            q_ids, q_mask = self._pad(self.query_ids(distinct))
            q_states = self._query_states(q_ids, q_mask)
            for i in range(len(distinct)):
                rows = np.flatnonzero(of == i)
                for lo in range(0, len(rows), self.batch_size):
                    part = rows[lo : lo + self.batch_size]
                    d, d_mask = self._stack([states[r] for r in part])
                    n = len(part)
                    q = q_states[i : i + 1].expand(n, *q_states.shape[1:])
                    out[part] = self._interact(q, q_mask[i : i + 1].expand(n, -1), d, d_mask).float().cpu().numpy()
        return out

    def _stack(self, states: Sequence[Any]) -> tuple[Any, Any]:
        torch = lazy.torch()
        if states[0].dim() == 1:  # one vector per document
            return torch.stack(states).float().to(self.device), None
        width = max(len(s) for s in states)
        out = torch.zeros((len(states), width, states[0].shape[-1]), dtype=torch.float32)
        mask = torch.zeros((len(states), width), dtype=torch.long)
        for row, s in enumerate(states):
            out[row, : len(s)] = s.float()
            mask[row, : len(s)] = 1
        return out.to(self.device), mask.to(self.device)

    # ------------------------------------------------------------------------------------ stored states
    def fingerprint(self) -> str:
        """The weights (BERT's files and the extra parts) and settings the document states depend on."""
        extra = [t for name, t in sorted(self.model.state_dict().items()) if not name.startswith("encoder.")]
        settings = {"family": self.family, **self.settings, "q": self.query_max_length}
        return model_dir.fingerprint_with(self.path, extra, settings)

    def store(self, corpus: Any, path: str | os.PathLike[str], bits: int = 0, overwrite: bool = False) -> Any:
        """Precompute every document's states into a token index (float16; or ``bits`` 1/2/4/8 of residual
        compression), which ``use_store`` serves them from later: PreTTR's storage, for any family."""
        from rankstack.index.tokens import build_token_index

        def blocks():
            for chunk in lazy.chunked(corpus, 256):
                states = self.doc_states([d.contents() for d in chunk])
                yield [d.docid for d in chunk], [s.float().reshape(-1, s.shape[-1]).numpy() for s in states]

        identity = {"model": self.name, "fingerprint": self.fingerprint(), "dim": int(self.bert.config.hidden_size),
                    "family": self.family, **self.settings}  # fmt: skip
        return build_token_index(path, blocks(), identity, bits=bits, num_centroids=1 if not bits else None,
                                 overwrite=overwrite)  # fmt: skip

    def use_store(self, index: Any) -> None:
        """Serve the document states of the documents ``index`` holds from it (refused if another model wrote it)."""
        if index.model.get("fingerprint") != self.fingerprint():
            raise ValueError(f"{index.path} holds document states of another model ({index.model.get('model')!r}, "
                             f"{index.model.get('family')}); rebuild it with this model's store()")  # fmt: skip
        self._store = index

    def rescore(self, ranking: Any, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        store = getattr(self, "_store", None)
        if store is not None:  # stored states go into the text-keyed cache before scoring
            torch = lazy.torch()
            for docid, text in zip(ranking.docid.tolist(), texts, strict=True):
                key = text_digest(text)
                position = store._positions.get(docid)
                if key not in self._states and position is not None:
                    vectors = torch.from_numpy(store.doc_vectors([position])[0]).half()
                    self._states[key] = vectors[0] if self.vector_doc else vectors
        return super().rescore(ranking, queries, texts)

    @property
    def cache_key(self) -> Hashable:
        return (self.family, id(self.model))

    def clear_cache(self) -> None:
        super().clear_cache()
        self._states.clear()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ------------------------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save_file

        out = model_dir.save_pretrained(path, self.bert, self.tokenizer)
        extra = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items() if not k.startswith("encoder.")}
        save_file(extra, str(out / WEIGHTS_FILE))
        (out / CONFIG_FILE).write_text(json.dumps({"family": self.family, "settings": self.settings}, indent=2))
        return out

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load a directory this re-ranker saved (training resumes through it)."""
        again = type(self)(path, max_length=self.max_length, query_max_length=self.query_max_length, device=self.device)
        self.model.load_state_dict(again.model.state_dict())


def _head(config: Any) -> Any:
    torch = lazy.torch()
    head = torch.nn.Linear(config.hidden_size, 1)
    torch.nn.init.normal_(head.weight, std=config.initializer_range)
    torch.nn.init.zeros_(head.bias)
    return head


# ---------------------------------------------------------------------------------------------- PreTTR
class PreTTR(DecoupledReranker):
    """A cross-encoder split at ``layer``: the document's states after it are precomputed (module docstring).

    Document positions start at ``query_max_length`` whatever the query's length, so the stored states do not
    depend on the query.
    """

    family = "prettr"
    defaults: ClassVar[dict[str, Any]] = {"layer": 3}

    def _build(self, config: Any) -> dict[str, Any]:
        layer = int(self.settings["layer"])
        if not 0 <= layer < config.num_hidden_layers:
            raise ValueError(f"layer must be in [0, {config.num_hidden_layers}) for this {config.num_hidden_layers}-layer model")
        return {"head": _head(config)}

    def doc_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self._tokens(texts, self._doc_budget() + 1, cls=False)  # "text [SEP]": the [CLS] is the query's

    def _doc_states(self, ids: Any, mask: Any) -> Any:
        torch = lazy.torch()
        positions = self.query_max_length + torch.arange(ids.shape[1], device=ids.device)[None].expand_as(ids)
        hidden = self.bert.embeddings(input_ids=ids, token_type_ids=torch.ones_like(ids), position_ids=positions)
        return run_layers(self.bert.encoder.layer[: self.settings["layer"]], hidden, mask)

    def _query_states(self, ids: Any, mask: Any) -> Any:
        torch = lazy.torch()
        hidden = self.bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        return run_layers(self.bert.encoder.layer[: self.settings["layer"]], hidden, mask)

    def _interact(self, q: Any, q_mask: Any, d: Any, d_mask: Any) -> Any:
        torch = lazy.torch()
        joint = run_layers(self.bert.encoder.layer[self.settings["layer"] :], torch.cat([q, d.to(q.dtype)], 1),
                           torch.cat([q_mask, d_mask], 1))  # fmt: skip
        return self.model["head"](joint[:, 0]).squeeze(-1)


# ---------------------------------------------------------------------------------------------- DC-BERT
class DCBert(DecoupledReranker):
    """Whole-BERT query and document encodings, joined by ``interaction_layers`` transformer layers."""

    family = "dcbert"
    defaults: ClassVar[dict[str, Any]] = {"interaction_layers": 1}

    def _build(self, config: Any) -> dict[str, Any]:
        torch = lazy.torch()
        layers = torch.nn.ModuleList(copy.deepcopy(layer) for layer in self._top_layers(config))
        segments = torch.nn.Embedding(2, config.hidden_size)
        torch.nn.init.normal_(segments.weight, std=config.initializer_range)
        return {"interaction": layers, "segments": segments, "head": _head(config)}

    def _encode(self, ids: Any, mask: Any) -> Any:
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state

    _doc_states = _encode
    _query_states = _encode

    def _interact(self, q: Any, q_mask: Any, d: Any, d_mask: Any) -> Any:
        torch = lazy.torch()
        seg = self.model["segments"].weight
        joint = torch.cat([q + seg[0], d.to(q.dtype) + seg[1]], 1)
        out = run_layers(self.model["interaction"], joint, torch.cat([q_mask, d_mask], 1))
        return self.model["head"](out[:, 0]).squeeze(-1)


# ---------------------------------------------------------------------------------------------- poly-encoder
def poly_score(query_states: Any, query_mask: Any, codes: Any, doc_vectors: Any) -> Any:
    """The poly-encoder's score: ``codes [m, h]`` attend over the query's states ``[B, L, h]`` (padding
    masked), giving m query vectors; the document vector ``[B, h]`` attends over those; score = its dot product
    with the attended query vector. Dot-product attention without scaling, as in Humeau et al."""
    torch = lazy.torch()
    weights = torch.einsum("mh,blh->bml", codes, query_states)
    weights = weights.masked_fill(~query_mask.bool()[:, None, :], float("-inf")).softmax(dim=-1)
    poly = torch.einsum("bml,blh->bmh", weights, query_states)  # [B, m, h]
    attend = torch.einsum("bh,bmh->bm", doc_vectors, poly).softmax(dim=-1)
    query = torch.einsum("bm,bmh->bh", attend, poly)
    return (query * doc_vectors).sum(-1)


class PolyEncoder(DecoupledReranker):
    """``codes`` learned codes over the query's tokens; the document is one cached [CLS] vector."""

    family = "poly"
    defaults: ClassVar[dict[str, Any]] = {"codes": 16}
    vector_doc = True

    def _build(self, config: Any) -> dict[str, Any]:
        torch = lazy.torch()
        codes = torch.nn.Embedding(int(self.settings["codes"]), config.hidden_size)
        torch.nn.init.normal_(codes.weight, std=config.hidden_size**-0.5)
        return {"codes": codes}

    def _doc_states(self, ids: Any, mask: Any) -> Any:
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]

    def _query_states(self, ids: Any, mask: Any) -> Any:
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state

    def _interact(self, q: Any, q_mask: Any, d: Any, d_mask: Any) -> Any:
        return poly_score(q, q_mask, self.model["codes"].weight, d.to(q.dtype))


# ---------------------------------------------------------------------------------------------- MORES
def _attend(x: Any, memory: Any, mask: Any, p: Any, prefix: str, heads: int) -> Any:
    """Multi-head attention of ``x`` over ``memory`` (keys where ``mask``), residual and LayerNorm: BERT's
    attention sub-layer written out, so the same weights serve self- and cross-attention."""
    b, n, h = x.shape
    size = h // heads

    def split(t: Any) -> Any:
        return t.view(b, -1, heads, size).transpose(1, 2)

    q, k, v = split(p[prefix + "q"](x)), split(p[prefix + "k"](memory)), split(p[prefix + "v"](memory))
    scores = q @ k.transpose(-1, -2) / size**0.5 + additive_mask(mask, x.dtype)
    out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, h)
    return p[prefix + "norm"](x + p[prefix + "out"](out))


def _interaction_block(layer: Any) -> Any:
    """A MORES interaction block from a BERT layer: its self-attention (twice: self and cross) and its FFN."""
    torch = lazy.torch()
    att, out = layer.attention, layer.output
    parts = {}
    for prefix in ("self_", "cross_"):
        parts |= {prefix + "q": att.self.query, prefix + "k": att.self.key, prefix + "v": att.self.value,
                  prefix + "out": att.output.dense, prefix + "norm": att.output.LayerNorm}  # fmt: skip
    parts |= {"ff1": layer.intermediate.dense, "ff2": out.dense, "ff_norm": out.LayerNorm}
    return torch.nn.ModuleDict({k: copy.deepcopy(v) for k, v in parts.items()})


class Mores(DecoupledReranker):
    """MORES: cached document states; ``interaction_layers`` blocks of query self-attention, query-to-document
    cross-attention and a feed-forward layer, initialised from BERT's top layers."""

    family = "mores"
    defaults: ClassVar[dict[str, Any]] = {"interaction_layers": 1}

    def _build(self, config: Any) -> dict[str, Any]:
        torch = lazy.torch()
        blocks = torch.nn.ModuleList(_interaction_block(layer) for layer in self._top_layers(config))
        return {"interaction": blocks, "head": _head(config)}

    def _encode(self, ids: Any, mask: Any) -> Any:
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state

    _doc_states = _encode
    _query_states = _encode

    def _interact(self, q: Any, q_mask: Any, d: Any, d_mask: Any) -> Any:
        torch = lazy.torch()
        heads = int(self.bert.config.num_attention_heads)
        d = d.to(q.dtype)
        for block in self.model["interaction"]:
            q = _attend(q, q, q_mask, block, "self_", heads)
            q = _attend(q, d, d_mask, block, "cross_", heads)
            q = block["ff_norm"](q + block["ff2"](torch.nn.functional.gelu(block["ff1"](q))))
        return self.model["head"](q[:, 0]).squeeze(-1)


FAMILIES: dict[str, type[DecoupledReranker]] = {"prettr": PreTTR, "dcbert": DCBert, "poly": PolyEncoder, "mores": Mores}


def load_decoupled(model: str | os.PathLike[str], family: str | None = None, **kwargs: Any) -> DecoupledReranker:
    """The re-ranker a directory holds (its ``late_reranker.json`` names the family), or ``family`` built on a
    bare encoder (fresh parts, to be trained)."""
    path, _ = model_dir.resolve(model)
    saved = model_dir.read_json_object(path / CONFIG_FILE).get("family")
    name = family or saved
    if name not in FAMILIES:
        raise ValueError(f"{model} names no late-interaction re-ranker family; pass one of {sorted(FAMILIES)}")
    return FAMILIES[name](path, **kwargs)


def is_decoupled(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` is a local directory holding one of these re-rankers."""
    return (Path(model) / CONFIG_FILE).exists()
