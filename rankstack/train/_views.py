"""Training-time views of an encoder: the same weights under another length limit.

Training and negative mining truncate documents harder than inference does (cost grows with length, and
the first 128 tokens carry most of a passage's meaning); a view changes ``max_length`` without touching
the encoder the caller keeps, so what gets saved still records the inference limit.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from rankstack.dense.encoder import TextEncoder


def with_max_length(encoder: TextEncoder, max_length: int | None) -> TextEncoder:
    """``encoder`` sharing its model and tokenizer, truncating at ``max_length`` (never above its own)."""
    view = copy.copy(encoder)
    if max_length:
        view.max_length = min(int(max_length), encoder.max_length)
    return view


def features(encoder: TextEncoder, texts: Sequence[str]) -> dict[str, Any]:
    """``encoder.features(texts)`` without the truncation warning: in training, truncation is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*were truncated")
        return encoder.features(texts)


def encode(encoder: TextEncoder, texts: Sequence[str], show_progress: bool = False, desc: str = "encoding") -> Any:
    """``encoder.encode`` without the truncation warning (see ``features``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*were truncated")
        return encoder.encode(texts, show_progress, desc=desc)


@contextlib.contextmanager
def quiet_truncation() -> Iterator[None]:
    """A context in which truncation warnings are silent (in training, truncation is the intent)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*were truncated")
        yield
