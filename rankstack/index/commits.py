"""Generations of an updatable index: one writer at a time, readers pinned to the state they opened.

Every update (add, delete, merge) writes new files beside the old ones and then commits a new
*generation*: ``manifest-<gen>.json`` is written, then ``manifest.json`` (the current one) is replaced
atomically. Files are never rewritten in place, so a reader that read ``manifest.json`` once sees one
consistent state however long it runs, as long as the files that state names are not deleted.

That is what pins are for. A reader holds a shared ``flock`` on ``.gen-<gen>.lock`` while it is open;
the writer removes an old generation's files only when it can take that lock exclusively, i.e. when no
reader is on it. A reader that read the manifest just before a commit and took its lock just after the
old generation was collected notices (the current generation moved on) and reads the manifest again.
A process killed at any point leaves either the old or the new generation current; what it wrote and
did not commit is unreferenced and removed by the next writer (or ``rankstack index --clean``). Locks
are released by the operating system when a process dies, so a kill -9 never leaves a stale lock.

Where ``fcntl`` is missing (Windows), there are no locks: writers must take turns themselves, and old
generations are kept (readers cannot be seen) until ``rankstack index --clean`` (``collect(force=True)``),
to be run when no one is reading.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rankstack.errors import IndexFormatError
from rankstack.index.manifest import MANIFEST, write_json_atomic

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

WRITE_LOCK = ".write.lock"
_HISTORY = re.compile(r"^manifest-(\d+)\.json$")
_PIN = re.compile(r"^\.gen-(\d+)\.lock$")


def generation(manifest: dict[str, Any]) -> int:
    return int(manifest.get("generation", 0))


def history_path(root: Path, gen: int) -> Path:
    return root / f"manifest-{gen:06d}.json"


@contextlib.contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Serialise writers of one index (across processes); blocks until the previous writer is done."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(root / WRITE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class Pin:
    """A reader's hold on one generation; ``release()`` (or garbage collection) lets writers reclaim it."""

    # bound here: at interpreter exit a module's globals (``os``) may be gone before the last Pin is collected
    _close = staticmethod(os.close)

    def __init__(self, fd: int | None):
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            self._close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.release()


def pinned_manifest(root: Path, read: Callable[[], dict[str, Any]], attempts: int = 100) -> tuple[dict, Pin]:
    """Read the current manifest and pin its generation so a concurrent writer keeps its files.

    An index on a read-only location cannot be pinned (no lock file can be made) and cannot be
    written either, so it is returned unpinned.
    """
    for _ in range(attempts):
        manifest = read()
        if fcntl is None:  # pragma: no cover - Windows
            return manifest, Pin(None)
        gen = generation(manifest)
        try:
            fd = os.open(root / f".gen-{gen}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            if isinstance(e, PermissionError) or e.errno == errno.EROFS:
                return manifest, Pin(None)  # a read-only index: no writer can change it either
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if generation(read()) == gen or history_path(root, gen).exists():
                # still current, or a writer committed after we read but has not collected us: we hold it now
                return manifest, Pin(fd)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # collected between our read and our lock: read the newer manifest
    raise IndexFormatError(
        f"{root}: could not open a consistent state after {attempts} tries; writers keep replacing it"
    )


def commit(root: Path, base: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """Make ``manifest`` the next generation after ``base``; the caller holds ``writer_lock``.

    The history copy goes first, so a generation that was ever current always has one (a writer needs
    it to know which files a pinned reader may still use).
    """
    old = generation(base)
    if not history_path(root, old).exists():
        write_json_atomic(history_path(root, old), base)
    manifest = dict(manifest, generation=old + 1)
    write_json_atomic(history_path(root, old + 1), manifest)
    write_json_atomic(root / MANIFEST, manifest)
    return manifest


def collect(
    root: Path, current: dict[str, Any], files_of: Callable[[dict[str, Any]], Iterable[str]], force: bool = False
) -> list[str]:
    """Delete what no reader can need: files of unpinned old generations, uncommitted leftovers of killed
    writers. The caller holds ``writer_lock``. ``files_of(manifest)`` names a generation's paths relative
    to ``root`` (directories or files). Returns the removed names."""
    cur = generation(current)
    keep: set[str] = set(files_of(current))
    held: list[int] = []  # exclusive locks we hold while deleting, so no reader pins them meanwhile
    doomed: list[Path] = []
    try:
        for path in root.iterdir():
            m = _HISTORY.match(path.name)
            if not m or int(m.group(1)) == cur:
                continue
            gen = int(m.group(1))
            if gen > cur:  # a commit that was killed before manifest.json moved: never current
                doomed.append(path)
                continue
            fd = _try_exclusive(root / f".gen-{gen}.lock") if fcntl is not None or force else None
            if fd is None:
                pinned = _read_json(path)
                if pinned is None:  # a reader's generation we cannot read: keep everything this time
                    return []
                keep |= set(files_of(pinned))
                continue
            held.append(fd)
            doomed += [path, root / f".gen-{gen}.lock"]
        top = list(root.iterdir())
        names = [p.name for p in top] + [
            f"{d.name}/{f.name}" for d in top if _SEGMENT.match(d.name) and d.is_dir() for f in d.iterdir()
        ]
        doomed += [root / name for name in sorted(names) if _DATA.match(name) and name not in keep]
        removed = []
        for path in doomed:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(str(path.relative_to(root)))
        for path in root.iterdir():  # pins of generations with no history: readers that came and went
            m = _PIN.match(path.name)
            if m and int(m.group(1)) != cur and not history_path(root, int(m.group(1))).exists():
                fd = _try_exclusive(path)
                if fd is not None:
                    path.unlink(missing_ok=True)
                    os.close(fd)
        return removed
    finally:
        for fd in held:
            os.close(fd)


# names a writer makes: segment directories, tombstone files, temporaries of atomic writes
_SEGMENT = re.compile(r"^seg-\d+$")
_DATA = re.compile(r"^(seg-\d+|seg-\d+/deleted-\d+\.npy|(seg-\d+/)?\.[^/]*\.tmp)$")


def _try_exclusive(path: Path) -> int | None:
    """An exclusive lock on ``path`` if no one holds it shared, else None; a missing file is unheld."""
    if fcntl is None:  # pragma: no cover - Windows
        return os.open(os.devnull, os.O_RDONLY)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return os.open(os.devnull, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
