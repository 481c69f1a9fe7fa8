"""Document store: the text of every document, compressed in small blocks for random access.

Re-rankers and result pages need a document's text by id; storing it inside the index keeps one
artifact self-contained. Documents are JSON records compressed in blocks of ``BLOCK`` so a lookup
decompresses a few KB, not the whole store. The codec is Zstandard (level 1) where it is installed (the
``zstandard`` package, or the standard library from Python 3.14): 3.4x faster to compress than zlib's fastest
level on SciFact, for blocks 5% smaller; the segment's manifest entry names it (``store_codec``; stores
written before it existed, or without Zstandard, are zlib).
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import IndexFormatError

BLOCK = 16
# the fastest level of either codec: zlib's 1 halved the compression time of its default 6 (then the largest
# cost of a one-thread build after analysis: 0.21 -> 0.10 s on SciFact) for blocks ~11% larger; any level
# reads back the same
LEVEL = 1
CODECS = ("zstd", "zlib")


# one encoder for every record (json.dumps with non-default options builds a new one per call). Records whose
# text is ASCII (``str.isascii`` is a flag lookup) take the escaping encoder, whose output is then the same
# bytes (DEL aside, escaped) and which is ~1.7x faster; others keep their characters (escapes would make them
# up to twice as long)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


@cache
def _zstd() -> Any:
    """The Zstandard module: the standard library's (Python 3.14+) or the ``zstandard`` package; None without
    either. Looked up once: every segment's writer and reader asks."""
    try:
        from compression import zstd  # type: ignore[import-not-found]

        return zstd
    except ImportError:
        pass
    try:
        import zstandard

        return zstandard
    except ImportError:
        return None


def default_codec() -> str:
    return "zstd" if _zstd() is not None else "zlib"


def _compressor(codec: str) -> Callable[[bytes], bytes]:
    if codec == "zlib":
        return lambda data: zlib.compress(data, LEVEL)
    zstd = _zstd()
    if zstd.__name__ == "zstandard":  # the package: one context for every block (one writer thread at a time)
        return zstd.ZstdCompressor(level=LEVEL).compress
    return lambda data: zstd.compress(data, level=LEVEL)


def _decompressor(codec: str, directory: Path) -> Callable[[bytes], bytes]:
    """A thread-safe decompression function (one-shot calls: a server's threads read the same store)."""
    if codec == "zlib":
        return zlib.decompress
    if codec != "zstd":
        raise IndexFormatError(f"{directory}: unknown document store codec {codec!r} (this rankstack reads {CODECS})")
    zstd = _zstd()
    if zstd is None:
        raise IndexFormatError(
            f"{directory}: its document store is compressed with Zstandard, which is not installed here: "
            "pip install zstandard (or use Python 3.14+)"
        )
    return zstd.decompress


class DocStoreWriter:
    """Writes blocks of ``BLOCK`` JSON records, zlib-compressed. With ``background=True`` the compression
    (which releases the interpreter lock) runs on a helper thread while indexing goes on; the bytes
    written are the same."""

    def __init__(self, directory: Path, background: bool = False, codec: str | None = None):
        self.codec = codec or default_codec()
        self._compress = _compressor(self.codec)
        self._fh = open(directory / "docs.bin", "wb")  # noqa: SIM115 - closed by close()
        self._dir = directory
        self._offsets: list[int] = [0]
        self._pending: list[str] = []
        self._pos = 0
        self._pool = None
        self._inflight: deque[Future[bytes]] = deque()
        if background:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="docstore")

    def add(self, record: dict[str, Any]) -> None:
        text = record.get("text")
        title = record.get("title")
        ascii_text = (text is None or text.isascii()) and (title is None or title.isascii())
        self._pending.append(_encode_ascii(record) if ascii_text and "fields" not in record else _encode(record))
        if len(self._pending) == BLOCK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = "\n".join(self._pending).encode("utf-8")
        self._pending = []
        if self._pool is None:
            self._write(self._compress(data))
            return
        self._inflight.append(self._pool.submit(self._compress, data))
        while len(self._inflight) > 4 or (self._inflight and self._inflight[0].done()):
            self._write(self._inflight.popleft().result())

    def _write(self, blob: bytes) -> None:
        self._fh.write(blob)
        self._pos += len(blob)
        self._offsets.append(self._pos)

    def close(self) -> None:
        self._flush()
        while self._inflight:
            self._write(self._inflight.popleft().result())
        if self._pool is not None:
            self._pool.shutdown()
        self._fh.close()
        np.save(self._dir / "docs_offsets.npy", np.asarray(self._offsets, dtype=np.int64))


class DocStoreReader:
    """Random access to the records; the last ``CACHED_BLOCKS`` decompressed blocks are kept (a result page's
    documents, a re-ranker's candidates and a server's popular answers come back to the same blocks)."""

    CACHED_BLOCKS = 64

    def __init__(self, directory: Path, codec: str = "zlib"):
        self._decompress = _decompressor(codec, directory)
        self._offsets = np.load(directory / "docs_offsets.npy", mmap_mode="r")
        self._data = (
            np.memmap(directory / "docs.bin", dtype=np.uint8, mode="r")
            if (directory / "docs.bin").stat().st_size
            else np.zeros(0, np.uint8)
        )
        self._blocks: OrderedDict[int, list[str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, i: int) -> dict[str, Any]:
        block, within = divmod(int(i), BLOCK)
        with self._lock:
            lines = self._blocks.get(block)
            if lines is not None:
                self._blocks.move_to_end(block)
        if lines is None:
            start, end = int(self._offsets[block]), int(self._offsets[block + 1])
            lines = self._decompress(self._data[start:end].tobytes()).decode("utf-8").split("\n")
            with self._lock:
                self._blocks[block] = lines
                if len(self._blocks) > self.CACHED_BLOCKS:
                    self._blocks.popitem(last=False)
        return json.loads(lines[within])
