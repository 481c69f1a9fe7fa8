"""TKL, the Transformer-Kernel model for long text (Hofstätter et al., SIGIR 2020), over token embeddings.

1. **Contextualisation.** Query tokens go through ``layers`` transformer encoder layers (full self-attention);
   the document is cut into chunks of ``chunk`` tokens, each read with ``overlap`` tokens of context on either
   side by the same layers (local self-attention: cost linear in document length), and the chunks' centres are
   laid end to end again. Each token's vector is ``mixer · embedding + (1 − mixer) · contextualised`` (a learned
   mixer), with fixed sinusoidal positions added before the layers (query positions from 0; document positions
   from 0 in each extended chunk).
2. **Kernel pooling per region.** Cosine matrix and RBF kernels as in K-NRM; soft-TF is summed over sliding
   regions of ``region`` document tokens (stride ``region_stride``) instead of the whole document.
3. **Saturation** ("embedding" saturation of the paper): per query token and region, ``a · tf^(1/b) − c``, where
   ``a``, ``b``, ``c`` are linear in the layer-normalised pair (a learned projection of the query token's
   vector, the region's length), ``b`` kept >= 1 so the exponent saturates (it starts at 1/100, which makes
   the function ≈ log tf): a region full of one term saturates, a short region is not punished.
   Summed over query tokens and combined by a linear layer over kernels, each region gets a score.
4. **Top-region selection.** The ``top_regions`` best non-overlapping regions are picked greedily (a pick
   suppresses every region sharing a token with it: starts less than ``region`` tokens away), each with its two
   neighbours on either side, and a learned weighted sum of those ``5 · top_regions`` region scores is the
   document's score.

Masks keep padding out of every step (regions that hold no document token are never picked, neighbours stop
at the pair's own last region), so a pair scores the same alone or in a batch. Departure from the authors'
code: learned positional features are replaced by fixed sinusoidal ones, and the idf-conditioned saturation
variant (which needs collection statistics) is not offered.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from rankstack.errors import MissingExtraError
from rankstack.rerank.kernels import cosine_matrix, kernel_mus, kernel_sigmas
from rankstack.rerank.matchzoo import InteractionModel

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - the [neural] extra brings torch
    raise MissingExtraError("torch", "neural") from None

NEIGHBOURS = (0, -1, 1, -2, 2)


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal position features ``[length, dim]`` (Vaswani et al.)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / max(dim, 2)))
    out = torch.zeros(length, dim)
    out[:, 0::2] = torch.sin(position * rate)
    out[:, 1::2] = torch.cos(position * rate)[:, : dim // 2]
    return out


def chunk_document(x: torch.Tensor, mask: torch.Tensor, chunk: int, overlap: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, L, E]`` -> ``[B, n, chunk + 2·overlap, E]`` extended chunks (and their masks), chunk i covering
    tokens ``[i·chunk − overlap, (i + 1)·chunk + overlap)``; positions outside the text are masked padding."""
    length = x.shape[1]
    n = max(1, math.ceil(length / chunk))
    right = n * chunk - length + overlap
    xp = nn.functional.pad(x, (0, 0, overlap, right))
    mp = nn.functional.pad(mask, (overlap, right))
    size = chunk + 2 * overlap
    return xp.unfold(1, size, chunk).transpose(-1, -2), mp.unfold(1, size, chunk)


class TKL(InteractionModel):
    defaults: ClassVar[dict[str, Any]] = {
        "kernels": 11, "sigma": 0.1, "exact_sigma": 0.001, "layers": 2, "heads": 4, "feedforward": 256,
        "chunk": 40, "overlap": 5, "region": 30, "region_stride": 2, "top_regions": 3,
    }  # fmt: skip

    def __init__(self, vocab_size: int, dim: int, **settings: Any):
        super().__init__(vocab_size, dim, **settings)
        s = self.settings
        if dim % int(s["heads"]):
            raise ValueError(f"heads={s['heads']} must divide the embedding size {dim}")
        if int(s["region"]) < 1 or int(s["region_stride"]) < 1 or int(s["chunk"]) < 1 or int(s["overlap"]) < 0:
            raise ValueError("chunk, region and region_stride must be positive and overlap non-negative")
        layer = nn.TransformerEncoderLayer(dim, int(s["heads"]), int(s["feedforward"]), dropout=0.0, batch_first=True)
        self.contextualizer = nn.TransformerEncoder(layer, int(s["layers"]), enable_nested_tensor=False)
        self.mixer = nn.Parameter(torch.tensor(0.5))
        n = int(s["kernels"])
        self.register_buffer("mus", torch.tensor(kernel_mus(n)), persistent=False)
        self.register_buffer("sigmas", torch.tensor(kernel_sigmas(n, s["sigma"], s["exact_sigma"])), persistent=False)
        self.sat_query = nn.Linear(dim, 1, bias=False)
        self.sat_norm = nn.LayerNorm(2)
        self.sat = nn.Linear(2, 3)  # a, b, c of a · tf^(1/b) − c
        nn.init.uniform_(self.sat.weight, -0.014, 0.014)
        nn.init.constant_(self.sat.bias, 100.0)  # 100 · tf^(1/100) − 100 ≈ log tf: saturation starts as a logarithm
        self.kernel_out = nn.Linear(n, 1, bias=False)
        nn.init.uniform_(self.kernel_out.weight, -0.014, 0.014)
        self.region_weights = nn.Parameter(torch.ones(int(s["top_regions"]) * len(NEIGHBOURS)))

    def contextualise(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pos = sinusoids(x.shape[1], x.shape[2]).to(x)
        keep = mask > 0
        ctx = self.contextualizer(x + pos, src_key_padding_mask=~keep)
        ctx = torch.nan_to_num(ctx) * mask[..., None]  # an all-padding row attends to nothing
        return (self.mixer * x + (1 - self.mixer) * ctx) * mask[..., None]

    def _document(self, d: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
        chunk, overlap = int(self.settings["chunk"]), int(self.settings["overlap"])
        chunks, masks = chunk_document(d, d_mask, chunk, overlap)  # [B, n, C, E], [B, n, C]
        b, n, size, dim = chunks.shape
        flat, flat_mask = chunks.reshape(b * n, size, dim), masks.reshape(b * n, size)
        out = torch.zeros_like(flat)
        busy = flat_mask[:, overlap : overlap + chunk].sum(-1) > 0  # chunks holding text of their own
        if busy.any():
            out[busy] = self.contextualise(flat[busy], flat_mask[busy])
        centre = out.reshape(b, n, size, dim)[:, :, overlap : overlap + chunk].reshape(b, n * chunk, dim)
        return centre[:, : d.shape[1]]

    def forward(self, q_ids, q_mask, d_ids, d_mask):  # type: ignore[no-untyped-def]
        s = self.settings
        region, stride = int(s["region"]), int(s["region_stride"])
        q = self.contextualise(self.embed(q_ids, q_mask), q_mask)
        d = self._document(self.embed(d_ids, d_mask), d_mask)
        # every start (a multiple of the stride) before the end gets a whole region, so the regions over a
        # text's tail are the same however far a batch pads it
        need = (math.ceil(d.shape[1] / stride) - 1) * stride + region - d.shape[1]
        if need > 0:
            d = nn.functional.pad(d, (0, 0, 0, need))
            d_mask = nn.functional.pad(d_mask, (0, need))
        sim = cosine_matrix(q, d)  # [B, Lq, Ld]
        k = torch.exp(-((sim[..., None] - self.mus) ** 2) / (2 * self.sigmas**2)) * d_mask[:, None, :, None]
        windows = k.unfold(2, region, stride)  # [B, Lq, R, K, region]
        tf = windows.sum(-1)  # [B, Lq, R, K]
        lengths = d_mask.unfold(1, region, stride).sum(-1)  # [B, R]
        valid = lengths > 0
        influence = torch.stack(torch.broadcast_tensors(self.sat_query(q), lengths[:, None, :]), dim=-1)  # [B, Lq, R, 2]
        a, b_, c = self.sat(self.sat_norm(influence)).unbind(-1)  # each [B, Lq, R]
        # saturation means an exponent 1/b <= 1 (b starts at 100: tf^0.01); b < 1 would let tf^(1/b) overflow
        sat = a[..., None] * tf.clamp_min(1e-10) ** (1.0 / b_.clamp_min(1.0))[..., None] - c[..., None]
        keep = (q_mask[:, :, None] > 0) & valid[:, None, :]
        sat = torch.where(keep[..., None], sat, torch.zeros_like(sat))
        region_scores = self.kernel_out(sat.sum(1)).squeeze(-1)  # [B, R]
        return self._top_regions(region_scores, valid)

    def _top_regions(self, scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Greedy non-overlapping top regions with their neighbours, weighted (module docstring, step 4)."""
        region, stride = int(self.settings["region"]), int(self.settings["region_stride"])
        r = scores.shape[1]
        picks = scores.detach().masked_fill(~valid, float("-inf"))
        last = (valid.long().cumsum(-1).argmax(-1)).clamp_min(0)  # the pair's last region with text
        positions = torch.arange(r, device=scores.device)
        chosen = []
        for _ in range(int(self.settings["top_regions"])):
            best = picks.argmax(-1)
            ok = torch.isfinite(picks.gather(1, best[:, None]).squeeze(1))
            chosen.append((best, ok))
            near = (positions[None, :] - best[:, None]).abs() * stride < region  # regions sharing a token
            picks = picks.masked_fill(near, float("-inf"))
        values = []
        for offset in NEIGHBOURS:
            for best, ok in chosen:
                idx = torch.minimum((best + offset).clamp_min(0), last)
                v = scores.gather(1, idx[:, None]).squeeze(1) * valid.gather(1, idx[:, None]).squeeze(1)
                values.append(v * ok)
        return (torch.stack(values, dim=-1) * self.region_weights).sum(-1)
