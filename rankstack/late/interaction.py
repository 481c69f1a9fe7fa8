"""MaxSim, ColBERT's late interaction: each query vector finds its best-matching document vector, summed.

``score(q, d) = sum_i max_j <q_i, d_j>`` (Khattab & Zaharia, 2020). Documents are stored packed: every
token vector of every document in one ``[T, dim]`` matrix, document ``i`` owning rows
``offsets[i]:offsets[i + 1]``, so scoring a whole collection is one matrix product per query block and a
segmented maximum (``np.maximum.reduceat``), with no padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_SCORES_PER_BLOCK = 1 << 24  # query-token x document-token products held at once (64 MiB of float32)


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """MaxSim of one query ``[Lq, dim]`` and one document ``[Ld, dim]`` (0 for a document without vectors)."""
    if len(doc) == 0:
        return 0.0
    return float((np.asarray(query, np.float32) @ np.asarray(doc, np.float32).T).max(axis=1).sum())


def pack(docs: Sequence[np.ndarray], dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors [T, dim], offsets int64 [n + 1])`` from one matrix per document."""
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if not len(docs):
        return np.zeros((0, dim or 0), np.float32), offsets
    return np.concatenate([np.asarray(d, np.float32).reshape(-1, d.shape[-1]) for d in docs]), offsets


def maxsim_packed(queries: np.ndarray, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MaxSim of every query ``[nq, Lq, dim]`` against every packed document: float32 ``[nq, n]``.

    Works through the documents in blocks of whole documents so memory stays bounded; a document without
    vectors scores 0.
    """
    queries = np.asarray(queries, np.float32)
    nq, lq, _ = queries.shape
    n = len(offsets) - 1
    out = np.zeros((nq, n), dtype=np.float32)
    flat = queries.reshape(nq * lq, -1)
    budget = max(1, _SCORES_PER_BLOCK // max(nq * lq, 1))
    lo = 0
    while lo < n:
        hi = int(np.searchsorted(offsets, offsets[lo] + budget, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        start, stop = int(offsets[lo]), int(offsets[hi])
        if stop > start:
            sims = flat @ np.asarray(vectors[start:stop], np.float32).T  # [nq*Lq, tokens]
            local = offsets[lo:hi] - start
            nonempty = offsets[lo + 1 : hi + 1] > offsets[lo:hi]
            best = np.maximum.reduceat(sims, np.minimum(local, stop - start - 1), axis=1)  # [nq*Lq, docs]
            best[:, ~nonempty] = 0.0
            out[:, lo:hi] = best.reshape(nq, lq, hi - lo).sum(axis=1)
        lo = hi
    return out


def maxsim_torch(queries: Any, docs: Any, doc_mask: Any) -> Any:
    """Differentiable MaxSim of every query ``[B, Lq, dim]`` with every document ``[N, Ld, dim]`` whose
    vectors count where ``doc_mask [N, Ld]`` is true: ``[B, N]``."""
    sims = queries.unsqueeze(1) @ docs.transpose(1, 2).unsqueeze(0)  # [B, N, Lq, Ld]
    sims = sims.masked_fill(~doc_mask[None, :, None, :], float("-inf"))
    best = sims.max(dim=-1).values
    return best.masked_fill(best.isneginf(), 0.0).sum(dim=-1)
