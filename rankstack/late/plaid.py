"""PLAID search over a token index (Santhanam et al., 2022, "PLAID: An Efficient Engine for Late Interaction").

Four steps per query, each cheaper per document than the next and run on fewer documents:

1. **Candidates**: score the query's vectors against every centroid (``[C, Lq]``, one small matrix product);
   each query vector's ``nprobe`` best centroids name their documents through the inverted file.
2. **Pruned centroid interaction**: every candidate's MaxSim computed with each token replaced by its
   centroid, skipping tokens whose centroid scores below ``threshold`` for every query vector; the best
   ``ndocs`` go on.
3. **Full centroid interaction**: the same without pruning; the best ``max(ndocs // 4, k)`` go on.
4. **Exact MaxSim** over the survivors' decompressed vectors gives the final scores and top ``k``.

With ``exhaustive=True`` every live document gets step 4, the reference the benchmark compares against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rankstack.index.arrays import concat_ranges
from rankstack.index.tokens import TokenIndex
from rankstack.jit import njit
from rankstack.late.interaction import maxsim_packed


@dataclass(frozen=True)
class PlaidSettings:
    """PLAID's knobs: centroids probed per query vector, the centroid-score pruning threshold, and how many
    candidates survive the pruned centroid interaction (a quarter of them get exact MaxSim). ``for_k`` picks
    them for a cut-off."""

    nprobe: int = 2
    threshold: float = 0.45
    ndocs: int = 1024

    def __post_init__(self) -> None:
        if int(self.nprobe) < 1 or int(self.ndocs) < 1:
            raise ValueError(f"nprobe and ndocs must be at least 1, not {self.nprobe} and {self.ndocs}")
        object.__setattr__(self, "nprobe", int(self.nprobe))
        object.__setattr__(self, "ndocs", int(self.ndocs))
        object.__setattr__(self, "threshold", float(self.threshold))

    @classmethod
    def for_k(cls, k: int) -> PlaidSettings:
        """Settings for a cut-off ``k``. PLAID's paper uses (1, 0.5, 256) / (2, 0.45, 1024) / (4, 0.4, 4096) for
        k = 10 / 100 / 1000; a sweep over a ColBERT trained here (``benchmarks/plaid_sweep.py``) found more
        probes and a lower threshold worth their cost at k <= 10 (top-10 overlap with exhaustive MaxSim over the
        same 2-bit vectors 0.937 -> 0.994 on SciFact at 9.2x its speed, 0.771 -> 0.965 on NFCorpus at 6.2x)."""
        if k <= 10:
            return cls(8, 0.35, 512)
        if k <= 100:
            return cls(4, 0.45, 1024)
        return cls(4, 0.4, max(4096, 4 * k))


@njit()
def _centroid_interaction(
    candidates: np.ndarray, doc_offsets: np.ndarray, codes: np.ndarray, scores: np.ndarray, keep: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """MaxSim of each candidate with its tokens replaced by their centroids; ``scores`` is ``[C, Lq]``;
    tokens whose centroid has ``keep`` false are skipped (a query vector matching none scores 0)."""
    lq = scores.shape[1]
    out = np.zeros(len(candidates), dtype=np.float32)
    best = np.empty(lq, dtype=np.float32)
    for i in range(len(candidates)):
        d = candidates[i]
        best[:] = -np.inf
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            c = codes[t]
            if not keep[c]:
                continue
            for q in range(lq):
                s = scores[c, q]
                if s > best[q]:
                    best[q] = s
        total = np.float32(0.0)
        for q in range(lq):
            if best[q] > -np.inf:
                total += best[q]
        out[i] = total
    return out


def _top(positions: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best (position, score) pairs, best first, ties by the lower position."""
    if len(scores) > n:
        part = np.argpartition(-scores, n - 1)[:n]
        positions, scores = positions[part], scores[part]
    order = np.lexsort((positions, -scores))
    return positions[order], scores[order]


def candidates(index: TokenIndex, centroid_scores: np.ndarray, nprobe: int) -> np.ndarray:
    """Live documents in the cells of each query vector's ``nprobe`` best centroids (ascending positions)."""
    probe = min(max(1, nprobe), len(centroid_scores))
    if probe < len(centroid_scores):
        cells = np.unique(np.argpartition(-centroid_scores, probe - 1, axis=0)[:probe])
    else:
        cells = np.arange(len(centroid_scores))
    starts, stops = index.ivf_offsets[cells], index.ivf_offsets[cells + 1]
    docs = np.unique(np.asarray(index.ivf)[concat_ranges(starts, stops)].astype(np.int64))
    return docs[~index.deleted[docs]]


def search_one(
    index: TokenIndex, query: np.ndarray, k: int, settings: PlaidSettings, exhaustive: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` ``(positions int64, scores float32)`` for one query ``[Lq, dim]``, best first."""
    query = np.ascontiguousarray(query, np.float32)
    if exhaustive:
        pos_parts, score_parts = [], []
        for positions, vectors, offsets in index.iter_documents():
            pos_parts.append(positions)
            score_parts.append(maxsim_packed(query[None], vectors, offsets)[0])
        if not pos_parts:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return _top(np.concatenate(pos_parts), np.concatenate(score_parts), k)
    scores = np.ascontiguousarray(index.centroids @ query.T)  # [C, Lq]
    cand = candidates(index, scores, settings.nprobe)
    codes, doc_offsets = np.asarray(index.codes), index.doc_offsets
    keep = scores.max(axis=1) >= settings.threshold
    if len(cand) > settings.ndocs:
        approx = _centroid_interaction(cand, doc_offsets, codes, scores, keep)
        cand, _ = _top(cand, approx, settings.ndocs)
    survivors = max(settings.ndocs // 4, k)
    if len(cand) > survivors:
        full = _centroid_interaction(cand, doc_offsets, codes, scores, np.ones(len(scores), dtype=np.bool_))
        cand, _ = _top(cand, full, survivors)
    cand = np.sort(cand)
    vectors, offsets = index.doc_vectors(cand)
    exact = maxsim_packed(query[None], vectors, offsets)[0]
    return _top(cand, exact, k)
