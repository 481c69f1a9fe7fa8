"""Compiled kernels that are compiled once per installation, not once per process.

Every numba kernel in rankstack is declared with ``njit`` from here: numba's on-disk cache is always on,
so a new process loads machine code instead of spending ~25 s compiling the search kernels. Numba keeps
the cache in ``__pycache__`` beside the source when that is writable, else in the user's cache directory
(``~/.cache/numba``), or wherever ``NUMBA_CACHE_DIR`` points; where no directory is writable at all, the
kernels still work and are compiled in each process. ``announce`` says once on stderr that a compile is
coming, so a first search does not look hung; ``rankstack warmup`` (run by ``make setup``) compiles
everything ahead of time.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

_announced = False
_dispatchers: list[Any] = []  # every kernel declared here, so ``started`` can ask them


def njit(**options: Any) -> Callable[[Callable], Any]:
    """``numba.njit`` with the on-disk cache on (numba imported on first use of this decorator)."""
    import numba

    def wrap(fn: Callable) -> Any:
        try:
            dispatcher = numba.njit(cache=True, **options)(fn)
        except RuntimeError as err:  # no writable cache location at all: compile in every process
            warnings.warn(f"numba cannot cache {fn.__qualname__} ({err}); it is compiled in each process", stacklevel=2)
            dispatcher = numba.njit(**options)(fn)
        _dispatchers.append(dispatcher)
        return dispatcher

    return wrap


def started() -> bool:
    """Whether a rankstack kernel has run in this process. The first one costs ~0.3 s more than its own work
    (numba starts its compiler and runtime, even to load cached code); once that is paid, another kernel
    loads from the cache in milliseconds, so callers with a Python alternative can choose by this."""
    return any(d.signatures for d in _dispatchers)


def is_cached(dispatcher: Any) -> bool:
    """Whether numba has an on-disk cache index for this kernel (compiled code may still be missing for a
    new argument type; this is the usual first-use case)."""
    if dispatcher.signatures:
        return True
    try:
        return Path(dispatcher._cache._cache_file._index_path).exists()
    except AttributeError:  # no cache (see njit) or a numba whose internals moved: nothing to say
        return True


def announce(*dispatchers: Any, what: str = "search kernels") -> None:
    """Say once per process, on stderr, that the kernels are about to be compiled."""
    global _announced
    if _announced or all(is_cached(d) for d in dispatchers):
        return
    _announced = True
    print(f"rankstack: compiling {what}, once (later processes load them from numba's cache)", file=sys.stderr)
