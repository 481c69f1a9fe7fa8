"""Error types. Each message says what went wrong *and* what to do next."""

from __future__ import annotations

from pathlib import Path


class RankstackError(Exception):
    """Base class for every error rankstack raises on purpose."""


class InputFormatError(RankstackError, ValueError):
    """A malformed input file; names the file and the 1-based line so the user can fix it."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class IndexFormatError(RankstackError):
    """An index directory that is missing, of the wrong version, or fails its checksums."""


class MissingExtraError(RankstackError, ImportError):
    """An optional dependency is not installed; names the extra that brings it."""

    def __init__(self, package: str, extra: str):
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package} is needed for this feature but is not installed. "
            f'Install it with: pip install "rankstack[{extra}]"'
        )


class UnknownCollectionError(RankstackError, KeyError):
    """A collection name that is not registered; lists the known names."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown collection {name!r}; known collections: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would quote the whole message otherwise
        return self.args[0]
