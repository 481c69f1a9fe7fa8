"""Spherical k-means for the token index's centroids (numpy, deterministic given the seed).

ColBERTv2 clusters a sample of the collection's token vectors, which are unit-length, so similarity is
the inner product and centroids are renormalised after each update. Assignment runs in blocks so memory
stays at ``block x k`` scores; an emptied centroid is re-seeded with the sample point its centroid fits
worst, so all ``k`` cells stay in use.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

_BLOCK_SCORES = 1 << 24


def assign(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest centroid (largest inner product) of each vector and that inner product."""
    n = len(vectors)
    codes = np.empty(n, dtype=np.int32)
    best = np.empty(n, dtype=np.float32)
    rows = max(1, _BLOCK_SCORES // max(len(centroids), 1))
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    for lo in range(0, n, rows):
        scores = np.asarray(vectors[lo : lo + rows], np.float32) @ c.T
        codes[lo : lo + rows] = scores.argmax(axis=1)
        best[lo : lo + rows] = scores[np.arange(len(scores)), codes[lo : lo + rows]]
    return codes, best


def spherical_kmeans(sample: np.ndarray, k: int, iterations: int = 10, seed: int = 0) -> np.ndarray:
    """``k`` unit-length centroids (float32 ``[k, dim]``) of ``sample`` (``[n, dim]``, ``n >= k``)."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    n = len(sample)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= {n} sample vectors, got k={k}")
    rng = np.random.default_rng(seed)
    centroids = sample[np.sort(rng.choice(n, size=k, replace=False))].copy()
    for _ in range(iterations):
        codes, fit = assign(sample, centroids)
        members = scipy.sparse.csr_matrix((np.ones(n, np.float32), (codes, np.arange(n))), shape=(k, n))
        sums = np.asarray(members @ sample, dtype=np.float64)
        counts = np.bincount(codes, minlength=k)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            worst = np.argsort(fit, kind="stable")[: len(empty)]
            sums[empty] = sample[worst]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return centroids
