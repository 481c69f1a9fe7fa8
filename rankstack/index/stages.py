"""The short forms ``index.bm25()`` and ``index.dense(model)``: stage factories the stage packages register.

An index is storage; the stages that read it live above it (DESIGN.md) and must not be imported from
here. So ``rankstack.sparse`` and ``rankstack.dense`` register their stages with ``register_stage`` when
they are imported, and ``stage_factory`` imports the package that provides a short form the first time it
is asked for (by name, at run time: the storage layer never imports a stage module).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rankstack.errors import RankstackError

_FACTORIES: dict[str, Callable[..., Any]] = {}
#: which package registers each short form
PROVIDERS = {"bm25": "rankstack.sparse", "dense": "rankstack.dense", "colbert": "rankstack.late",
             "multimodal": "rankstack.multimodal"}


def register_stage(name: str, factory: Callable[..., Any]) -> None:
    """Make ``factory(index, *args, **kwargs)`` the stage behind ``index.<name>(...)``."""
    _FACTORIES[name] = factory


def stage_factory(name: str) -> Callable[..., Any]:
    """The registered factory for ``name``, importing its provider package on first use."""
    if name not in _FACTORIES and name in PROVIDERS:
        importlib.import_module(PROVIDERS[name])
    try:
        return _FACTORIES[name]
    except KeyError:
        raise RankstackError(f"no stage is registered as {name!r} (known: {sorted(PROVIDERS)})") from None
