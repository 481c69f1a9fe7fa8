"""Batching of tokenised model inputs, shared by every transformer re-ranker and encoder.

Inputs are sorted longest first and cut into batches, so each batch is padded only to its own longest
input (length bucketing: little padding, and memory peaks on the first batch rather than mid-run).
Pairwise models batch the two orders of a pair together (``symmetric_batches``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

#: the optional per-token inputs that travel with ``input_ids`` when a model reads them
_PER_TOKEN = ("token_type_ids",)


def longest_first(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Row indices of batches over inputs of ``lengths``, longest first (ties keep input order)."""
    order = np.argsort([-int(n) for n in lengths], kind="stable").tolist()
    per = max(1, int(batch_size))
    for lo in range(0, len(order), per):
        yield order[lo : lo + per]


def symmetric_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Row indices of batches over inputs that come in couples ``(2m, 2m + 1)`` = orders (i, j), (j, i).

    A couple never splits (both orders of a pair share a batch, so they see the same padding and are
    computed together); couples are sorted longest first, so a batch is padded only to its own longest input.
    An odd last row (a caller's lone pair) forms a unit of its own.
    """
    units = [list(range(lo, min(lo + 2, len(lengths)))) for lo in range(0, len(lengths), 2)]
    order = np.argsort([-max(lengths[i] for i in u) for u in units], kind="stable").tolist()
    per = max(1, int(batch_size) // 2)
    for lo in range(0, len(order), per):
        yield [i for m in order[lo : lo + per] for i in units[m]]


def pad_rows(
    rows: Sequence[int], enc: Mapping[str, Sequence[Sequence[int]]], pad_id: int | None, min_width: int = 0
) -> dict[str, np.ndarray]:
    """``rows`` of a tokenised batch (``input_ids`` and, when present, ``token_type_ids``) right-padded to
    their longest (at least ``min_width``: a batch of empty texts still has a position to mask), with the
    ``attention_mask``: int64 arrays ``[len(rows), width]``."""
    ids = enc["input_ids"]
    width = max(min_width, max((len(ids[i]) for i in rows), default=0))
    out = {"input_ids": np.full((len(rows), width), pad_id or 0, dtype=np.int64)}
    out["attention_mask"] = np.zeros((len(rows), width), dtype=np.int64)
    extra = [k for k in _PER_TOKEN if k in enc]
    for k in extra:
        out[k] = np.zeros((len(rows), width), dtype=np.int64)
    for r, i in enumerate(rows):
        n = len(ids[i])
        out["input_ids"][r, :n] = ids[i]
        out["attention_mask"][r, :n] = 1
        for k in extra:
            out[k][r, :n] = enc[k][i]
    return out
