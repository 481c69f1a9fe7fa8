"""Matching features over a query-document similarity matrix, shared by KNRM, Conv-KNRM, DRMM and CEDR.

Every interaction model reads the same object: ``sim[b, i, j]``, the similarity of query token ``i`` and
document token ``j`` of pair ``b`` (cosine, so in [-1, 1]), with float keep-masks over query and document
tokens. Padding must never count, so each function takes the masks rather than trusting zeros in ``sim``.

- **Kernel pooling** (Xiong et al., 2017, K-NRM): RBF kernels ``K_k(i) = Σ_j exp(-(sim_ij - μ_k)² / 2σ_k²)``
  count soft matches per query token at similarity level ``μ_k``; the features are ``φ_k = Σ_i log K_k(i)``.
  As in the authors' code the logarithm is floored at ``1e-10`` and scaled by 0.01, so a query token with no
  match anywhere (an empty document) contributes a finite ``0.01·log(1e-10)`` rather than ``-inf``; or, as
  MatchZoo-py does, ``φ_k = Σ_i log(1 + K_k(i))`` (what the MatchZoo models here use by default), or CEDR's
  ``log(K_k(i) + 1e-6)`` (``kernel_pooling``'s ``soft_tf``).
- **Matching histograms** (Guo et al., 2016, DRMM): per query token, the counts of document tokens whose
  similarity falls in each of ``bins - 1`` equal bins over [-1, 1) plus one bin for exact matches (1.0),
  as ``log(1 + count)`` (the LCH variant). Counting is not differentiable; DRMM does not need it to be.
"""

from __future__ import annotations

from rankstack.models import lazy

#: a cosine at or above this counts as an exact match (the same token embedded twice gives 1 up to rounding)
EXACT = 1.0 - 1e-6


def kernel_mus(n: int) -> list[float]:
    """K-NRM's kernel centres: 1.0 (exact match) and ``n - 1`` soft kernels evenly inside (-1, 1)."""
    if n < 2:
        raise ValueError(f"kernel pooling needs at least 2 kernels (exact match and one soft), not {n}")
    width = 2.0 / (n - 1)
    return [1.0] + [1.0 - width / 2 - k * width for k in range(n - 1)]


def kernel_sigmas(n: int, sigma: float = 0.1, exact_sigma: float = 1e-3) -> list[float]:
    """The kernels' widths: ``exact_sigma`` for the exact-match kernel, ``sigma`` for the others."""
    if sigma <= 0 or exact_sigma <= 0:
        raise ValueError("kernel widths must be positive")
    return [exact_sigma] + [sigma] * (n - 1)


def cosine_matrix(q: object, d: object, eps: float = 1e-8) -> object:
    """``[B, Lq, E] x [B, Ld, E] -> [B, Lq, Ld]`` cosine similarities (a zero vector has similarity 0)."""
    torch = lazy.torch()
    qn = q / q.norm(dim=-1, keepdim=True).clamp_min(eps)  # type: ignore[attr-defined]
    dn = d / d.norm(dim=-1, keepdim=True).clamp_min(eps)  # type: ignore[attr-defined]
    return torch.einsum("bie,bje->bij", qn, dn)


#: how soft-TF becomes a feature: K-NRM's paper code, MatchZoo-py's, CEDR's code
SOFT_TF = ("knrm", "log1p", "cedr")


def kernel_pooling(
    sim: object, q_mask: object, d_mask: object, mus: object, sigmas: object, soft_tf: str = "knrm"
) -> object:
    """K-NRM's soft-TF features ``[B, K]`` (module docstring); ``mus``/``sigmas`` are ``[K]`` tensors.

    ``soft_tf``: ``"knrm"`` takes ``0.01 · log(max(K_k(i), 1e-10))`` (the K-NRM authors' code); ``"log1p"``
    takes ``log(1 + K_k(i))`` (MatchZoo-py: a query token with no soft match adds 0 rather than -0.23, and the
    features are about 100x larger, so a fresh linear layer on top learns in tens rather than thousands of
    steps); ``"cedr"`` takes ``log(K_k(i) + 1e-6)`` (CEDR's code).
    """
    torch = lazy.torch()
    if soft_tf not in SOFT_TF:
        raise ValueError(f"soft_tf must be one of {SOFT_TF}, not {soft_tf!r}")
    diff = sim[..., None] - mus  # type: ignore[index]  # [B, Lq, Ld, K]
    k = torch.exp(-(diff**2) / (2 * sigmas**2)) * d_mask[:, None, :, None]  # type: ignore[index, operator]
    tf = k.sum(dim=2)  # [B, Lq, K]
    if soft_tf == "log1p":
        feats = torch.log1p(tf)
    elif soft_tf == "cedr":
        feats = torch.log(tf + 1e-6)
    else:
        feats = torch.log(tf.clamp_min(1e-10)) * 0.01
    return torch.where(q_mask[..., None] > 0, feats, torch.zeros_like(feats)).sum(dim=1)  # type: ignore[index]


def matching_histogram(sim: object, d_mask: object, bins: int = 30) -> object:
    """DRMM's log-count histograms ``[B, Lq, bins]`` (module docstring); no gradient flows through counts."""
    torch = lazy.torch()
    if bins < 2:
        raise ValueError(f"a matching histogram needs at least 2 bins, not {bins}")
    with torch.no_grad():
        s = sim.detach().clamp(-1.0, 1.0)  # type: ignore[attr-defined]
        idx = ((s + 1.0) / 2.0 * (bins - 1)).floor().long().clamp(0, bins - 2)
        idx = torch.where(s >= EXACT, torch.full_like(idx, bins - 1), idx)
        onehot = torch.nn.functional.one_hot(idx, bins).to(s.dtype) * d_mask[:, None, :, None]  # type: ignore[index]
        return torch.log1p(onehot.sum(dim=2))


def _bins(lengths: object, size: int, parts: int) -> object:
    """``[B, parts, size]`` masks of adaptive pooling's bins over each row's first ``lengths[b]`` positions:
    bin i covers ``floor(i·L/parts) .. ceil((i+1)·L/parts) - 1`` (PyTorch's rule; never empty for L >= 1)."""
    torch = lazy.torch()
    i = torch.arange(parts, device=lengths.device)[None, :]  # type: ignore[attr-defined]
    lengths = lengths[:, None]  # type: ignore[index]
    start = (i * lengths) // parts
    end = -((-(i + 1) * lengths) // parts)
    pos = torch.arange(size, device=start.device)[None, None, :]
    return (pos >= start[..., None]) & (pos < end[..., None])


def dynamic_max_pool(x: object, rows: object, cols: object, grid: tuple[int, int]) -> object:
    """MatchPyramid's dynamic pooling, batched: ``[B, C, H, W]`` -> ``[B, C, grid[0], grid[1]]``, each pair
    pooled over its own extent (the first ``rows[b]`` rows and ``cols[b]`` columns; lengths >= 1) exactly as
    ``adaptive_max_pool2d(x[b, :, :rows[b], :cols[b]], grid)`` would. A max over a rectangle is a max over
    rows then columns, so one masked max per bin replaces a loop over the batch."""
    torch = lazy.torch()
    by_row = _bins(rows, x.shape[2], grid[0])  # type: ignore[attr-defined]
    by_col = _bins(cols, x.shape[3], grid[1])  # type: ignore[attr-defined]
    low = float("-inf")
    pooled_rows = torch.stack(
        [x.masked_fill(~by_row[:, None, i, :, None], low).max(dim=2).values for i in range(grid[0])], dim=2  # type: ignore[attr-defined]
    )  # [B, C, grid[0], W]
    return torch.stack(
        [pooled_rows.masked_fill(~by_col[:, None, None, j, :], low).max(dim=3).values for j in range(grid[1])], dim=3
    )
