"""Line reading shared by every text reader (corpora, queries, topics, qrels, runs): exact 1-based line
numbers, gzip by suffix, strict UTF-8, and any damage reported as an ``InputFormatError`` naming the line."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rankstack.errors import InputFormatError


def open_binary(path: str | Path) -> BinaryIO:
    """Open a file for reading bytes, decompressing ``.gz`` transparently."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(lineno, line)`` without the line ending, 1-based.

    Lines are decoded one at a time (not in 8 KiB chunks as a text wrapper does), so a bad UTF-8 byte is
    reported on the line that holds it. CRLF and CR-only files (common in old test collections) read like LF
    files, and a UTF-8 byte-order mark at the start is dropped.
    """
    with open_binary(path) as fh:
        lineno = 0
        try:
            for raw in fh:
                lineno += 1
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputFormatError(
                        path, lineno, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
                    ) from None
                if lineno == 1 and line.startswith("\ufeff"):  # a byte-order mark is no part of the first id
                    line = line[1:]
                line = line.rstrip("\r\n")
                if "\r" in line:  # old Mac line ends (a bare CR), as text mode's universal newlines read them
                    *first, line = line.split("\r")
                    for part in first:
                        yield lineno, part
                        lineno += 1
                yield lineno, line
        except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError; bad deflate data is not
            raise InputFormatError(path, lineno + 1, f"file is truncated or corrupt ({exc})") from None


def first_bytes(path: str | Path, n: int = 4096) -> bytes:
    """The first ``n`` (decompressed) bytes, for sniffing a format when the file name says nothing."""
    try:
        with open_binary(path) as fh:
            return fh.read(n)
    except (EOFError, OSError, zlib.error):
        return b""
