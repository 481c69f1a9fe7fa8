"""CEDR (MacAvaney et al., 2019, "Contextualized Embeddings for Document Ranking"): interaction heads over a
cross-encoder's per-layer query-document similarity matrices, plus its [CLS] vector.

The pair goes through BERT as ``[CLS] query [SEP] window [SEP]``; a document longer than one window is split
into consecutive windows of ``max_length - len(query) - 3`` tokens (at most ``max_windows``; the rest is cut,
with one warning), each read with the query. For every layer's output (and the embedding layer's) the cosine
similarity of each query token to each document token gives one channel of a ``[layers + 1, Lq, Ld]`` stack,
the windows' document tokens laid end to end and the query's states taken from the first window; the [CLS]
vectors of the last layer are averaged over the pair's windows. The heads (``head=``):

- ``"knrm"`` (CEDR-KNRM): K-NRM's kernel pooling (11 kernels; soft-TF as ``log(tf + 1e-6)``, as CEDR's code
  has it) on every channel, concatenated with [CLS], one linear layer;
- ``"drmm"`` (CEDR-DRMM): an 11-bin log-count matching histogram per query token and channel, concatenated with
  [CLS], a feed-forward layer per query token (ReLU), summed over the query tokens;
- ``"pacrr"`` (CEDR-PACRR): n x n convolutions (n = 1..3, 32 filters) reading all channels at once, max over
  filters, the top-2 over document positions per query token, for ``query_terms`` query tokens (zero rows
  beyond a shorter query; the default equals ``query_max_length``), concatenated with [CLS], two ReLU layers
  and a linear one;
- ``"vanilla"`` (CEDR's "Vanilla BERT"): a linear layer on the averaged [CLS] vector.

One departure from the authors' code: padding never counts (masks, rather than zeros in the matrices, keep
padded positions out of kernels, histograms, convolutions and top-k), so a pair scores the same alone or in
a batch. A checkpoint is the BERT directory plus ``cedr.json`` and ``cedr.safetensors`` (the head).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.batching import longest_first, pad_rows
from rankstack.rerank.base import Missing, PointwiseReranker
from rankstack.rerank.settings import merged_settings
from rankstack.rerank.texts import DocSource

CONFIG_FILE = "cedr.json"
WEIGHTS_FILE = "cedr.safetensors"
FORMAT_VERSION = 1
HEADS: tuple[str, ...] = ("knrm", "drmm", "pacrr", "vanilla")
DEFAULTS: dict[str, dict[str, Any]] = {
    "knrm": {"kernels": 11, "sigma": 0.1, "exact_sigma": 0.001},
    "drmm": {"bins": 11, "hidden": 5},
    "pacrr": {"filters": 32, "max_ngram": 3, "k": 2, "query_terms": 20, "hidden": 32},
    "vanilla": {},
}


def _build_head(head: str, channels: int, hidden: int, settings: dict[str, Any]) -> Any:
    torch = lazy.torch()
    nn = torch.nn
    from rankstack.rerank.kernels import kernel_mus, kernel_sigmas

    parts = nn.ModuleDict()
    if head == "knrm":
        n = int(settings["kernels"])
        parts["out"] = nn.Linear(n * channels + hidden, 1)
        parts.register_buffer("mus", torch.tensor(kernel_mus(n)), persistent=False)
        parts.register_buffer("sigmas", torch.tensor(kernel_sigmas(n, settings["sigma"], settings["exact_sigma"])),
                              persistent=False)  # fmt: skip
    elif head == "drmm":
        parts["hidden"] = nn.Linear(int(settings["bins"]) * channels + hidden, int(settings["hidden"]))
        parts["out"] = nn.Linear(int(settings["hidden"]), 1)
    elif head == "pacrr":
        f, grams = int(settings["filters"]), int(settings["max_ngram"])
        parts["convs"] = nn.ModuleList(nn.Conv2d(channels, f, n) for n in range(1, grams + 1))
        width = int(settings["query_terms"]) * grams * int(settings["k"]) + hidden
        h = int(settings["hidden"])
        parts["mlp"] = nn.Sequential(nn.Linear(width, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1))
    else:
        parts["out"] = nn.Linear(hidden, 1)
    return parts


class CEDR(PointwiseReranker):
    """CEDR re-ranker over a BERT-style encoder (module docstring); ``pair_scores`` trains it.

    ``model``: a directory this class saved (head and settings come with it) or an encoder to put a fresh head
    on (``minilm``, the packaged all-MiniLM-L6-v2, or any Hugging Face encoder). ``max_length``: tokens per
    window with the query (default 256); ``query_max_length``: query tokens kept (20); ``max_windows``: windows per
    document (4). A saved model's sizes are its defaults, so it re-ranks with the window it was trained on.
    """

    score_kind = "logit"

    def __init__(
        self,
        model: str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        head: str | None = None,
        max_length: int | None = None,
        query_max_length: int | None = None,
        max_windows: int | None = None,
        batch_size: int = 16,
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
        path = model_dir.resolve(model)[0]
        model_dir.check_directory(path)
        saved = model_dir.read_versioned(path / CONFIG_FILE, FORMAT_VERSION)
        if saved:
            if head is not None and head != saved.get("head"):
                raise ValueError(f"{path} holds a CEDR-{saved.get('head')} model, not CEDR-{head}")
            head = saved.get("head")
        head = head or "knrm"
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not {head!r}")
        self.settings = merged_settings(f"CEDR-{head}", DEFAULTS[head], saved.get("settings", {}), settings)
        self.head, self.path = head, path
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.bert, _ = lazy.from_pretrained_quietly(transformers.AutoModel, path, **model_dir.encoder_kwargs(path))
        limit = int(getattr(self.bert.config, "max_position_embeddings", 512) or 512)
        self.max_length = min(int(max_length or saved.get("max_length") or 256), limit)
        self.query_max_length = int(query_max_length or saved.get("query_max_length") or 20)
        self.max_windows, self.batch_size = int(max_windows or saved.get("max_windows") or 4), int(batch_size)
        if self.query_max_length + 4 > self.max_length or self.max_windows < 1:
            raise ValueError(f"query_max_length={self.query_max_length} leaves no document window in max_length="
                             f"{self.max_length} tokens (or max_windows < 1)")  # fmt: skip
        self.device = lazy.default_device(device)
        config = self.bert.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            parts = _build_head(head, int(config.num_hidden_layers) + 1, int(config.hidden_size), self.settings)
        self.model = torch.nn.ModuleDict({"encoder": self.bert, "head": parts})
        self.model.base_model_prefix = "encoder"  # the trainer gives the head head_learning_rate
        self.fresh_head = not (path / WEIGHTS_FILE).exists()
        if not self.fresh_head:
            from safetensors.torch import load_file

            model_dir.load_exactly(parts, load_file(str(path / WEIGHTS_FILE)), path / WEIGHTS_FILE, f"CEDR-{head}")
        self.model.to(self.device).eval()
        self._warned = False

    # ------------------------------------------------------------------------------------ inputs
    def _windows(self, queries: Sequence[str], docs: Sequence[str]) -> tuple[list[list[int]], list[list[list[int]]]]:
        tok = self.tokenizer
        q_ids = tok(list(queries), add_special_tokens=False, truncation=True, max_length=self.query_max_length,
                    verbose=False)["input_ids"]  # fmt: skip
        d_ids = tok(list(docs), add_special_tokens=False, verbose=False)["input_ids"]
        windows, cut = [], 0
        for q, d in zip(q_ids, d_ids, strict=True):
            size = self.max_length - len(q) - 3
            parts = [d[i : i + size] for i in range(0, len(d), size)] or [[]]
            cut += len(parts) > self.max_windows
            windows.append(parts[: self.max_windows])
        if cut and not self._warned:
            self._warned = True
            warnings.warn(f"{cut} of {len(docs)} documents are longer than max_windows={self.max_windows} windows of "
                          f"up to {self.max_length} tokens and were cut; raise max_windows to read more", stacklevel=4)  # fmt: skip
        return q_ids, windows

    # ------------------------------------------------------------------------------------ the model
    def _states(self, q_ids: Sequence[Sequence[int]], windows: Sequence[Sequence[Sequence[int]]]) -> Any:
        """Per pair: the channel stack's inputs — query states [C, Lq, H], document states [C, Ld, H], [CLS] [H]."""
        torch = lazy.torch()
        tok = self.tokenizer
        rows = [(p, w) for p, ws in enumerate(windows) for w in range(len(ws))]  # a pair's windows are adjacent
        enc = {"input_ids": [[tok.cls_token_id, *q_ids[p], tok.sep_token_id, *windows[p][w], tok.sep_token_id]
                             for p, w in rows],
               "token_type_ids": [[0] * (len(q_ids[p]) + 2) + [1] * (len(windows[p][w]) + 1) for p, w in rows]}  # fmt: skip
        batch = {k: torch.from_numpy(v).to(self.device) for k, v in
                 pad_rows(range(len(rows)), enc, tok.pad_token_id).items()}  # fmt: skip
        if "token_type_ids" not in tok.model_input_names:
            del batch["token_type_ids"]
        out = self.bert(**batch, output_hidden_states=True)
        # one [C, T, H] view per row and one [R, H] [CLS] matrix: indexing the whole [R, C, T, H] stack per pair
        # would make backward build (and add up) a zero tensor of the stack's full size for every slice, which
        # cost most of a CEDR training step on a CPU
        layers = torch.stack(out.hidden_states, dim=1).unbind(0)
        cls_rows = out.last_hidden_state[:, 0]
        per_pair, first = [], 0
        for p, ws in enumerate(windows):
            lq = len(q_ids[p])
            query = layers[first][:, 1 : 1 + lq]
            doc = torch.cat([layers[first + w][:, lq + 2 : lq + 2 + len(text)] for w, text in enumerate(ws)], dim=1)
            cls = cls_rows[first : first + len(ws)].mean(dim=0)
            per_pair.append((query, doc, cls))
            first += len(ws)
        return per_pair

    def _pack(self, per_pair: Sequence[Any]) -> tuple[Any, Any, Any, Any]:
        """Similarity stacks ``[B, C, Lq, Ld]`` (zero where padded), masks, and [CLS] vectors ``[B, H]``."""
        torch = lazy.torch()
        from rankstack.rerank.kernels import cosine_matrix

        b, c = len(per_pair), per_pair[0][0].shape[0]
        lq = max(1, max(q.shape[1] for q, _, _ in per_pair))
        ld = max(1, max(d.shape[1] for _, d, _ in per_pair))
        if self.head == "pacrr":
            ld = max(ld, int(self.settings["k"]), int(self.settings["max_ngram"]))
        dtype = per_pair[0][2].dtype
        q_mask = torch.zeros((b, lq), dtype=dtype, device=self.device)
        d_mask = torch.zeros((b, ld), dtype=dtype, device=self.device)
        blocks = []  # padded and stacked, not written into a zero tensor: its backward stays one slice per pair
        for i, (q, d, _) in enumerate(per_pair):
            if q.shape[1] and d.shape[1]:
                block = cosine_matrix(q, d).to(dtype)
                blocks.append(torch.nn.functional.pad(block, (0, ld - block.shape[-1], 0, lq - block.shape[-2])))
            else:
                blocks.append(torch.zeros((c, lq, ld), dtype=dtype, device=self.device))
            q_mask[i, : q.shape[1]] = 1.0
            d_mask[i, : d.shape[1]] = 1.0
        return torch.stack(blocks), q_mask, d_mask, torch.stack([cls for _, _, cls in per_pair])

    def _score(self, sim: Any, q_mask: Any, d_mask: Any, cls: Any) -> Any:
        torch = lazy.torch()
        from rankstack.rerank.kernels import kernel_pooling, matching_histogram

        parts = self.model["head"]
        c = sim.shape[1]
        if self.head == "vanilla":
            return parts["out"](cls).squeeze(-1)
        if self.head == "knrm":
            feats = [kernel_pooling(sim[:, ch], q_mask, d_mask, parts.mus, parts.sigmas, "cedr") for ch in range(c)]
            return parts["out"](torch.cat([*feats, cls], dim=-1)).squeeze(-1)
        if self.head == "drmm":
            bins = int(self.settings["bins"])
            hist = torch.cat([matching_histogram(sim[:, ch], d_mask, bins) for ch in range(c)], dim=-1)  # [B, Lq, C*bins]
            x = torch.cat([hist, cls[:, None, :].expand(-1, hist.shape[1], -1)], dim=-1)
            z = parts["out"](torch.relu(parts["hidden"](x))).squeeze(-1)
            return (z * q_mask).sum(dim=-1)
        k, terms = int(self.settings["k"]), int(self.settings["query_terms"])
        grid = q_mask[:, :, None] * d_mask[:, None, :]
        masked = sim * grid[:, None]  # [B, C, Lq, Ld]
        pooled = []
        for n, conv in enumerate(parts["convs"], start=1):
            x = torch.relu(conv(torch.nn.functional.pad(masked, (0, n - 1, 0, n - 1)))).max(dim=1).values * grid
            pooled.append(x.topk(k, dim=-1).values)  # [B, Lq, k]
        feats = torch.cat(pooled, dim=-1) * q_mask[..., None]  # [B, Lq, grams * k]
        feats = torch.nn.functional.pad(feats[:, :terms], (0, 0, 0, max(0, terms - feats.shape[1])))
        return parts["mlp"](torch.cat([feats.flatten(1), cls], dim=-1)).squeeze(-1)

    def pair_scores(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        """Logits of (query, document) pairs with gradients ``[B]``: the trainer's entry point."""
        q_ids, windows = self._windows(queries, docs)
        return self._score(*self._pack(self._states(q_ids, windows)))

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        torch = lazy.torch()
        out = np.empty(len(queries), dtype=np.float64)
        if not len(queries):
            return out
        q_ids, windows = self._windows(queries, docs)
        lengths = [sum(len(w) for w in ws) + len(q) for q, ws in zip(q_ids, windows, strict=True)]
        bar = lazy.progress(len(queries), f"CEDR-{self.head} re-ranking", self.show_progress, unit="pair")
        with torch.inference_mode():
            for rows in longest_first(lengths, self.batch_size):
                per_pair = self._states([q_ids[i] for i in rows], [windows[i] for i in rows])
                out[rows] = self._score(*self._pack(per_pair)).float().cpu().numpy()
                bar.update(len(rows))
        bar.close()
        return out

    def __repr__(self) -> str:
        return f"CEDR({self.name!r}, head={self.head!r})"

    # ------------------------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save_file

        out = model_dir.save_pretrained(path, self.bert, self.tokenizer)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model["head"].state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE))
        config = {"head": self.head, "settings": self.settings,
                  "max_length": self.max_length, "query_max_length": self.query_max_length,
                  "max_windows": self.max_windows}  # fmt: skip
        model_dir.write_versioned(out / CONFIG_FILE, FORMAT_VERSION, config)
        return out

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load the weights of a directory this re-ranker saved (training resumes through it)."""
        again = CEDR(path, max_length=self.max_length, query_max_length=self.query_max_length, device=self.device)
        self.model.load_state_dict(again.model.state_dict())


def is_cedr(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` is a saved CEDR directory."""
    return (Path(model) / CONFIG_FILE).is_file()
