"""Flat arrays every index format writes: a streamed ``.npy`` matrix, and external docids as utf-8 bytes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class NpyAppender:
    """Write an ``.npy`` matrix row block by row block without knowing the row count in advance: the
    header is written with room to spare and rewritten with the final shape at the end."""

    _HEADER = 128

    def __init__(self, path: Path, dim: int, dtype: np.dtype | str):
        self.path, self.dim, self.dtype, self.rows = path, dim, np.dtype(dtype), 0
        self._fh = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._fh.write(b"\0" * self._HEADER)

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got shape {block.shape}")
        self._fh.write(block.tobytes())
        self.rows += len(block)

    def close(self) -> None:
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.rows, self.dim),
        }
        text = repr(header).encode("latin1")
        magic = np.lib.format.magic(1, 0)
        pad = self._HEADER - len(magic) - 2 - len(text) - 1
        self._fh.seek(0)
        self._fh.write(magic + (self._HEADER - len(magic) - 2).to_bytes(2, "little") + text + b" " * pad + b"\n")
        self._fh.close()


def save_docids(directory: Path, docids: Sequence[str]) -> None:
    """``docid_offsets.npy`` (int64 ``[n + 1]``) and ``docid_bytes.npy`` (the utf-8 ids, concatenated)."""
    encoded = [s.encode("utf-8") for s in docids]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    np.save(directory / "docid_offsets.npy", offsets)
    np.save(directory / "docid_bytes.npy", np.frombuffer(b"".join(encoded), dtype=np.uint8))


def load_docids(directory: Path) -> np.ndarray:
    """The docids ``save_docids`` wrote, as an object array."""
    raw = bytes(np.load(directory / "docid_bytes.npy"))
    offs = np.load(directory / "docid_offsets.npy")
    return np.array([raw[offs[i] : offs[i + 1]].decode("utf-8") for i in range(len(offs) - 1)], dtype=object)


def concat_ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(starts[i], stops[i])`` for all i, without a Python loop."""
    lengths = np.asarray(stops, np.int64) - np.asarray(starts, np.int64)
    keep = lengths > 0
    starts, lengths = np.asarray(starts, np.int64)[keep], lengths[keep]
    if not len(lengths):
        return np.zeros(0, dtype=np.int64)
    heads = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=heads[1:])
    steps = np.ones(int(lengths.sum()), dtype=np.int64)
    steps[0] = starts[0]
    steps[heads[1:]] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)  # jump from a range's last row to the next start
    return np.cumsum(steps)
