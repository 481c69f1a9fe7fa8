"""Sparse document vectors (``{token: weight}``): the input of an impact index, from an encoder or a file.

Files follow Anserini's ``JsonVectorCollection``: one JSON object a line, ``{"id": …, "contents": …,
"vector": {token: weight}}`` (``.jsonl`` or ``.jsonl.gz``; ``_id``/``docid`` are accepted for ``id``), so
vectors made with Pyserini's or SPLADE's own scripts index here unchanged. A token is any non-empty string
without whitespace (queries name tokens separated by spaces); a weight is a finite number >= 0 (zeros are
dropped). Every damaged line is reported with its file and line number.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.data.readers import _jsonl_records  # one JSON-lines parser, one set of line errors
from rankstack.errors import InputFormatError

_ID_KEYS = ("id", "_id", "docid")


@dataclass(frozen=True)
class SparseVector:
    """One document as an impact index stores it: its docid, its token weights, and optional text."""

    docid: str
    weights: dict[str, float]
    contents: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


def clean_weights(weights: Mapping[str, Any]) -> dict[str, float]:
    """``weights`` checked and without zeros; raises ``ValueError`` saying which token is wrong and why."""
    if not isinstance(weights, Mapping):
        raise ValueError(f"a vector is a mapping of token to weight, not {type(weights).__name__}")
    out: dict[str, float] = {}
    for token, weight in weights.items():
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError(f"token {token!r} must be a non-empty string without whitespace")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"token {token!r} has weight {weight!r:.40}; weights are numbers")
        w = float(weight)
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"token {token!r} has weight {w}; weights must be finite and >= 0")
        if w > 0:
            out[token] = w
    return out


def read_json_vectors(path: str | os.PathLike[str]) -> Iterator[SparseVector]:
    """The vectors of a JsonVectorCollection file, in file order (errors name the file and line)."""
    for lineno, record in _jsonl_records(path):
        key = next((k for k in _ID_KEYS if k in record), None)
        docid = record.get(key) if key else None
        if isinstance(docid, bool) or not isinstance(docid, str | int) or not str(docid).strip():
            raise InputFormatError(path, lineno, f"each line needs a non-empty string id ('id'), got {docid!r:.40}")
        if "vector" not in record:
            raise InputFormatError(path, lineno, "no 'vector' field ({token: weight}, JsonVectorCollection)")
        try:
            weights = clean_weights(record["vector"])
        except ValueError as exc:
            raise InputFormatError(path, lineno, str(exc)) from None
        contents = record.get("contents") or ""
        if not isinstance(contents, str):
            raise InputFormatError(path, lineno, f"'contents' must be a string, got {type(contents).__name__}")
        rest = {k: v for k, v in record.items() if k not in (key, "vector", "contents")}
        yield SparseVector(str(docid), weights, contents, rest)


def write_json_vectors(vectors: Iterable[SparseVector], path: str | os.PathLike[str]) -> Path:
    """Write ``vectors`` as a JsonVectorCollection file (gzip when the name ends in ``.gz``)."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:  # type: ignore[operator]
        for v in vectors:
            fh.write(json.dumps({"id": v.docid, "contents": v.contents, "vector": v.weights}, ensure_ascii=False))
            fh.write("\n")
    return path


__all__ = ["SparseVector", "clean_weights", "read_json_vectors", "write_json_vectors"]
