"""The MatchZoo family: small neural ranking models over token embeddings, as ``torch.nn.Module`` s.

Every model takes ``(q_ids, q_mask, d_ids, d_mask)`` (``[B, Lq]`` / ``[B, Ld]`` token ids and float keep-masks)
and returns one relevance logit per pair ``[B]``. Padding never changes a score: masks zero it out of every
sum, convolution and pooling, so a pair scores the same alone or in a batch (tested). An empty query or
document (all-zero mask) gives a finite score.

- ``KNRM`` (Xiong et al., 2017): cosine translation matrix, kernel pooling (``log1p``: MatchZoo-py's
  ``log(1 + soft-TF)``, default; False: the paper's ``0.01 · log soft-TF``), a linear layer.
- ``ConvKNRM`` (Dai et al., 2018): 1..``max_ngram``-gram convolutions of both texts, kernel pooling of every
  (query n-gram, document m-gram) cross-match, a linear layer.
- ``DRMM`` (Guo et al., 2016): a log-count matching histogram per query token, a feed-forward network on each,
  combined by a term gating softmax over the query tokens' embeddings.
- ``MatchPyramid`` (Pang et al., 2016): the cosine matrix as an image, 2-D convolutions, dynamic pooling to a
  fixed grid over each pair's own extent, a linear layer.
- ``Duet`` (Mitra et al., 2017): a local model on the exact-match matrix (convolution along the document,
  max over positions, mean over query tokens) plus a distributed model (convolutional representations of
  both texts, their element-wise product); score = local + distributed. Departures from the paper: token
  embeddings instead of character-trigram hashing, and the document representation pooled over the whole
  text rather than windows of 100 words.
- ``DSSM`` (Huang et al., 2013), the representation baseline: a feed-forward tower per side over the mean of
  the token embeddings, cosine of the two, times a learned scale (DSSM's smoothing factor gamma).
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from rankstack.errors import MissingExtraError
from rankstack.rerank.kernels import (
    cosine_matrix,
    dynamic_max_pool,
    kernel_mus,
    kernel_pooling,
    kernel_sigmas,
    matching_histogram,
)
from rankstack.rerank.settings import merged_settings

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - the [neural] extra brings torch
    raise MissingExtraError("torch", "neural") from None


class InteractionModel(nn.Module):
    """An embedding table plus a model-specific scorer; ``settings`` rebuild the same shapes from a checkpoint."""

    defaults: ClassVar[dict[str, Any]] = {}
    #: models whose score cannot pass gradients into the embeddings (histogram counts) freeze them
    trains_embeddings: ClassVar[bool] = True

    def __init__(self, vocab_size: int, dim: int, **settings: Any):
        super().__init__()
        self.settings = merged_settings(type(self).__name__, self.defaults, {}, settings)
        self.embedding = nn.Embedding(vocab_size, dim)
        self.dim = dim

    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids) * mask[..., None]

    def forward(self, q_ids: torch.Tensor, q_mask: torch.Tensor, d_ids: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _Kernels(nn.Module):
    def __init__(self, n: int, sigma: float, exact_sigma: float, log1p: bool = True):
        super().__init__()
        self.soft_tf = "log1p" if log1p else "knrm"
        self.register_buffer("mus", torch.tensor(kernel_mus(n)), persistent=False)
        self.register_buffer("sigmas", torch.tensor(kernel_sigmas(n, sigma, exact_sigma)), persistent=False)

    def forward(self, sim: torch.Tensor, q_mask: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
        return kernel_pooling(sim, q_mask, d_mask, self.mus, self.sigmas, self.soft_tf)  # type: ignore[return-value]


class KNRM(InteractionModel):
    defaults: ClassVar[dict[str, Any]] = {"kernels": 11, "sigma": 0.1, "exact_sigma": 0.001, "log1p": True}

    def __init__(self, vocab_size: int, dim: int, **settings: Any):
        super().__init__(vocab_size, dim, **settings)
        s = self.settings
        self.kernels = _Kernels(int(s["kernels"]), float(s["sigma"]), float(s["exact_sigma"]), bool(s["log1p"]))
        self.out = nn.Linear(int(s["kernels"]), 1)

    def forward(self, q_ids, q_mask, d_ids, d_mask):  # type: ignore[no-untyped-def]
        sim = cosine_matrix(self.embed(q_ids, q_mask), self.embed(d_ids, d_mask))
        return self.out(self.kernels(sim, q_mask, d_mask)).squeeze(-1)


def ngram_mask(mask: torch.Tensor, n: int) -> torch.Tensor:
    """Keep-mask of the n-grams starting at each position (valid when all n tokens are): ``[B, L - n + 1]``."""
    return mask.unfold(1, n, 1).min(dim=-1).values


class ConvKNRM(InteractionModel):
    defaults: ClassVar[dict[str, Any]] = {"kernels": 11, "sigma": 0.1, "exact_sigma": 0.001, "log1p": True,
                                          "filters": 128, "max_ngram": 3, "cross_match": True}  # fmt: skip

    def __init__(self, vocab_size: int, dim: int, **settings: Any):
        super().__init__(vocab_size, dim, **settings)
        s = self.settings
        self.max_ngram, filters = int(s["max_ngram"]), int(s["filters"])
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, n) for n in range(1, self.max_ngram + 1))
        self.kernels = _Kernels(int(s["kernels"]), float(s["sigma"]), float(s["exact_sigma"]), bool(s["log1p"]))
        matches = self.max_ngram**2 if s["cross_match"] else self.max_ngram
        self.out = nn.Linear(matches * int(s["kernels"]), 1)

    def _grams(self, ids: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        short = self.max_ngram - ids.shape[1]
        if short > 0:  # every n-gram size needs at least one (masked) position
            ids = nn.functional.pad(ids, (0, short))
            mask = nn.functional.pad(mask, (0, short))
        x = self.embed(ids, mask).transpose(1, 2)  # [B, E, L]
        out = []
        for n, conv in enumerate(self.convs, start=1):
            m = ngram_mask(mask, n)
            out.append((torch.relu(conv(x)).transpose(1, 2) * m[..., None], m))
        return out

    def forward(self, q_ids, q_mask, d_ids, d_mask):  # type: ignore[no-untyped-def]
        qs, ds = self._grams(q_ids, q_mask), self._grams(d_ids, d_mask)
        pairs = [(a, b) for a in qs for b in ds] if self.settings["cross_match"] else list(zip(qs, ds, strict=True))
        feats = [self.kernels(cosine_matrix(q, d), qm, dm) for (q, qm), (d, dm) in pairs]
        return self.out(torch.cat(feats, dim=-1)).squeeze(-1)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the kept positions of each row; an all-masked row gives zeros, not NaN."""
    filled = logits.masked_fill(mask <= 0, float("-inf"))
    top = filled.max(dim=-1, keepdim=True).values.clamp_min(-1e30)
    e = torch.exp(filled - top) * (mask > 0)
    return e / e.sum(dim=-1, keepdim=True).clamp_min(1e-30)


class DRMM(InteractionModel):
    defaults: ClassVar[dict[str, Any]] = {"bins": 30, "hidden": 5}
    trains_embeddings: ClassVar[bool] = False  # counts pass no gradient; only the gate would move them

    def __init__(self, vocab_size: int, dim: int, **settings: Any):
        super().__init__(vocab_size, dim, **settings)
        bins, hidden = int(self.settings["bins"]), int(self.settings["hidden"])
        self.ffn = nn.Sequential(nn.Linear(bins, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.gate = nn.Linear(dim, 1, bias=False)

    def forward(self, q_ids, q_mask, d_ids, d_mask):  # type: ignore[no-untyped-def]
        q = self.embed(q_ids, q_mask)
        hist = matching_histogram(cosine_matrix(q, self.embed(d_ids, d_mask)), d_mask, int(self.settings["bins"]))
        z = self.ffn(hist).squeeze(-1)  # [B, Lq]
        g = masked_softmax(self.gate(q).squeeze(-1), q_mask)
        return (g * z).sum(dim=-1)


class MatchPyramid(InteractionModel):
    defaults: ClassVar[dict[str, Any]] = {"channels": [8, 16], "kernel_size": 3, "pool": [3, 10]}

    def __init__(self, vocab_size: int, dim: int, **settings: Any):
        super().__init__(vocab_size, dim, **settings)
        channels, k = [int(c) for c in self.settings["channels"]], int(self.settings["kernel_size"])
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-size convolutions), not {k}")
        ins = [1, *channels[:-1]]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, k, padding=k // 2) for a, b in zip(ins, channels, strict=True))
        self.pool = tuple(int(p) for p in self.settings["pool"])
        self.out = nn.Linear(channels[-1] * self.pool[0] * self.pool[1], 1)

    def forward(self, q_ids, q_mask, d_ids, d_mask):  # type: ignore[no-untyped-def]
        grid = (q_mask[:, :, None] * d_mask[:, None, :])[:, None]  # [B, 1, Lq, Ld]
        x = cosine_matrix(self.embed(q_ids, q_mask), self.embed(d_ids, d_mask))[:, None] * grid
        for conv in self.convs:  # zero the padding after each layer: it then equals the convolution's own padding
            x = torch.relu(conv(x)) * grid
        lq, ld = q_mask.sum(-1).long().clamp_min(1), d_mask.sum(-1).long().clamp_min(1)
        return self.out(dynamic_max_pool(x, lq, ld, self.pool).flatten(1)).squeeze(-1)


class Duet(InteractionModel):
    defaults: ClassVar[dict[str, Any]] = {"filters": 64, "window": 3, "hidden": 64}

    def __init__(self, vocab_size: int, dim: int, **settings: Any):
        super().__init__(vocab_size, dim, **settings)
        f, w, h = int(self.settings["filters"]), int(self.settings["window"]), int(self.settings["hidden"])
        if w % 2 == 0:
            raise ValueError(f"window must be odd, not {w}")
        self.local_conv = nn.Conv1d(1, f, w, padding=w // 2)
        self.local_out = nn.Sequential(nn.Linear(f, h), nn.ReLU(), nn.Linear(h, 1))
        self.q_conv = nn.Conv1d(dim, f, w, padding=w // 2)
        self.d_conv = nn.Conv1d(dim, f, w, padding=w // 2)
        self.dist_out = nn.Sequential(nn.Linear(f, h), nn.ReLU(), nn.Linear(h, 1))

    @staticmethod
    def _max_over(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Max over the kept positions (last axis) of ``x`` ``[..., F, L]``; nothing kept gives zeros."""
        keep = mask[..., None, :] > 0
        top = x.masked_fill(~keep, float("-inf")).max(dim=-1).values
        return torch.where(keep.any(dim=-1), top, torch.zeros_like(top))

    def forward(self, q_ids, q_mask, d_ids, d_mask):  # type: ignore[no-untyped-def]
        b, lq = q_ids.shape
        exact = (q_ids[:, :, None] == d_ids[:, None, :]).float() * q_mask[:, :, None] * d_mask[:, None, :]
        rows = torch.relu(self.local_conv(exact.reshape(b * lq, 1, -1)))  # [B*Lq, F, Ld]
        per_token = self._max_over(rows, d_mask.repeat_interleave(lq, dim=0)).reshape(b, lq, -1)
        local = (per_token * q_mask[..., None]).sum(1) / q_mask.sum(1, keepdim=True).clamp_min(1.0)
        q = self._max_over(torch.relu(self.q_conv(self.embed(q_ids, q_mask).transpose(1, 2))), q_mask)
        d = self._max_over(torch.relu(self.d_conv(self.embed(d_ids, d_mask).transpose(1, 2))), d_mask)
        return (self.local_out(local) + self.dist_out(q * d)).squeeze(-1)


class DSSM(InteractionModel):
    defaults: ClassVar[dict[str, Any]] = {"hidden": [300, 128]}

    def __init__(self, vocab_size: int, dim: int, **settings: Any):
        super().__init__(vocab_size, dim, **settings)
        sizes = [dim, *(int(h) for h in self.settings["hidden"])]

        def tower() -> nn.Sequential:
            layers: list[nn.Module] = []
            for a, b in itertools.pairwise(sizes):
                layers += [nn.Linear(a, b), nn.Tanh()]
            return nn.Sequential(*layers)

        self.q_tower, self.d_tower = tower(), tower()
        self.gamma = nn.Parameter(torch.tensor(10.0))

    def _mean(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.embed(ids, mask).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)

    def forward(self, q_ids, q_mask, d_ids, d_mask):  # type: ignore[no-untyped-def]
        q = self.q_tower(self._mean(q_ids, q_mask))
        d = self.d_tower(self._mean(d_ids, d_mask))
        return self.gamma * nn.functional.cosine_similarity(q, d, dim=-1, eps=1e-8)
