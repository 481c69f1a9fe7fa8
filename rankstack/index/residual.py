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
        packed = np.asarray(packed, np.uint8)
        if self.bits == 8:
            buckets = packed
        else:
            bits = np.unpackbits(packed, axis=1, count=dim * self.bits).reshape(len(packed), dim, self.bits)
            weights = (1 << np.arange(self.bits - 1, -1, -1)).astype(np.uint8)
            buckets = (bits * weights).sum(axis=2, dtype=np.uint8)
        out = centroids + self.weights[buckets]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)
