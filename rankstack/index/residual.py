"""Residual compression of unit-length token vectors (ColBERTv2, Santhanam et al. 2022).

A vector is stored as its nearest centroid's id plus its residual (vector - centroid) quantised per
dimension to ``bits`` bits: each dimension falls into one of ``2**bits`` buckets whose edges are quantiles
of the residual values seen in a sample (``cutoffs``), and decodes to that bucket's representative value,
the quantile in the middle of the bucket (``weights``). Decoding adds the centroid back and renormalises.
At 128 dimensions and 2 bits a token costs 32 bytes of residual plus a 4-byte centroid id, against 256
bytes in float16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rankstack.jit import njit

BITS: tuple[int, ...] = (1, 2, 4, 8)


@dataclass(frozen=True)
class ResidualCodec:
    """Bucket edges (``[2**bits - 1]``) and representative values (``[2**bits]``) for ``bits`` per dimension."""

    bits: int
    cutoffs: np.ndarray
    weights: np.ndarray

    @classmethod
    def fit(cls, residuals: np.ndarray, bits: int) -> ResidualCodec:
        """Quantile buckets of the residual values in ``residuals`` (a sample, ``[n, dim]``)."""
        if bits not in BITS:
            raise ValueError(f"bits must be one of {BITS} (0 stores vectors uncompressed), not {bits}")
        values = np.asarray(residuals, np.float32).ravel()
        buckets = 1 << bits
        cutoffs = np.quantile(values, np.arange(1, buckets) / buckets).astype(np.float32)
        weights = np.quantile(values, (np.arange(buckets) + 0.5) / buckets).astype(np.float32)
        return cls(bits, cutoffs, weights)

    def bytes_per_vector(self, dim: int) -> int:
        return dim * self.bits // 8

    def encode(self, residuals: np.ndarray) -> np.ndarray:
        """Packed bucket ids, uint8 ``[n, dim * bits / 8]`` (most significant bit first)."""
        residuals = np.asarray(residuals, np.float32)
        n, dim = residuals.shape
        if dim * self.bits % 8:
            raise ValueError(f"dim * bits must be a multiple of 8, got {dim} * {self.bits}")
        buckets = np.searchsorted(self.cutoffs, residuals, side="right").astype(np.uint8)
        if self.bits == 8:
            return buckets
        shifts = np.arange(self.bits - 1, -1, -1, dtype=np.uint8)
        bits = (buckets[..., None] >> shifts) & 1  # [n, dim, bits]
        return np.packbits(bits.reshape(n, dim * self.bits), axis=1)

    def decode(self, packed: np.ndarray, centroids: np.ndarray, dim: int) -> np.ndarray:
        """Unit-length float32 vectors ``[n, dim]`` from packed residuals and their centroids' vectors."""
        packed = np.ascontiguousarray(packed, np.uint8)
        centroids = np.ascontiguousarray(centroids, np.float32)
        return _decode(packed, centroids, np.ascontiguousarray(self.weights, np.float32), self.bits, dim)


@njit()
def _decode(packed: np.ndarray, centroids: np.ndarray, weights: np.ndarray, bits: int, dim: int) -> np.ndarray:  # pragma: no cover - compiled
    """Each row: centroid + the bucket values its packed ids name (most significant bits first), normalised."""
    n = packed.shape[0]
    out = np.empty((n, dim), dtype=np.float32)
    per_byte = 8 // bits
    mask = (1 << bits) - 1
    for r in range(n):
        norm = 0.0
        for d in range(dim):
            byte = packed[r, d // per_byte]
            shift = 8 - bits * (d % per_byte + 1)
            value = centroids[r, d] + weights[(byte >> shift) & mask]
            out[r, d] = value
            norm += value * value
        if norm > 0:
            scale = 1.0 / np.sqrt(norm)
            for d in range(dim):
                out[r, d] *= scale
    return out
