"""Lazy imports of the heavy neural dependencies, with an error that names the extra to install."""

from __future__ import annotations

from typing import Any

from rankstack.errors import MissingExtraError


def torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "neural") from None
    return torch


def transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise MissingExtraError("transformers", "neural") from None
    return transformers


def progress(total: int | None, desc: str, show: bool, unit: str = "text") -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not show, leave=False)
