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


def default_device(device: str | None) -> str:
    """``device``, or CUDA when torch sees a GPU, else the CPU."""
    return device or ("cuda" if torch().cuda.is_available() else "cpu")


def from_pretrained_quietly(cls: Any, path: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """``cls.from_pretrained(path, **kwargs)`` and its loading info, without transformers' load report and
    warnings: a fresh head is expected when training starts from a bare encoder, and callers that care say
    so themselves (from the info's ``missing_keys``)."""
    import logging
    import warnings

    quiet = logging.getLogger("transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = cls.from_pretrained(path, output_loading_info=True, **kwargs)
    finally:
        quiet.setLevel(level)
    return model, info


def chunked(items: Any, size: int) -> Any:
    """Lists of up to ``size`` consecutive items of an iterable (streams: one chunk in memory at a time)."""
    from itertools import islice

    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
