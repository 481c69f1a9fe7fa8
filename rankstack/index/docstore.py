"""Document store: the text of every document, compressed in small blocks for random access.

Re-rankers and result pages need a document's text by id; storing it inside the index keeps one
artifact self-contained. Documents are JSON records compressed with zlib in blocks of ``BLOCK`` so a
lookup decompresses a few KB, not the whole store.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 16
# zlib's fastest level: half the compression time of the default 6 (the largest cost of a one-thread build
# after analysis: 0.21 -> 0.10 s on SciFact) for blocks ~11% larger; any level reads back the same
LEVEL = 1


# one encoder for every record: json.dumps with non-default options builds a new one per call
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class DocStoreWriter:
    """Writes blocks of ``BLOCK`` JSON records, zlib-compressed. With ``background=True`` the compression
    (which releases the interpreter lock) runs on a helper thread while indexing goes on; the bytes
    written are the same."""

    def __init__(self, directory: Path, background: bool = False):
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
        self._pending.append(_encode(record))
        if len(self._pending) == BLOCK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = "\n".join(self._pending).encode("utf-8")
        self._pending = []
        if self._pool is None:
            self._write(zlib.compress(data, LEVEL))
            return
        self._inflight.append(self._pool.submit(zlib.compress, data, LEVEL))
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

    def __init__(self, directory: Path):
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
            lines = zlib.decompress(self._data[start:end].tobytes()).decode("utf-8").split("\n")
            with self._lock:
                self._blocks[block] = lines
                if len(self._blocks) > self.CACHED_BLOCKS:
                    self._blocks.popitem(last=False)
        return json.loads(lines[within])
