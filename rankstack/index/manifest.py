"""Index manifests, checksums and atomic directory writes.

Every index is a directory with ``manifest.json`` naming its ``type`` and ``format_version`` and the
size and CRC-32 of every data file. Builds go into a hidden temporary sibling that is renamed into
place only when complete, so a crash or kill never leaves a half-written index where one is expected,
and the previous index stays usable until the new one replaces it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rankstack.errors import IndexFormatError

MANIFEST = "manifest.json"
SEAL = "manifest_crc32"  # a manifest's checksum of itself: data files have theirs inside it
_CHUNK = 1 << 22


def file_record(path: Path) -> dict[str, int]:
    """Size and CRC-32 of a file (CRC-32 runs at GB/s, cheap enough to check on every open)."""
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return {"size": path.stat().st_size, "crc32": crc}


def verify_files(root: Path, files: dict[str, dict[str, int]], rebuild_hint: str) -> None:
    """Check that every listed file exists with the recorded size and checksum."""
    for rel, rec in files.items():
        p = root / rel
        if not p.exists():
            raise IndexFormatError(f"index {root} is missing {rel}. {rebuild_hint}")
        actual = file_record(p)
        if actual["size"] != rec["size"] or actual["crc32"] != rec["crc32"]:
            raise IndexFormatError(
                f"index {root}: {rel} failed its checksum (expected size {rec['size']} crc32 {rec['crc32']}, "
                f"found size {actual['size']} crc32 {actual['crc32']}); the file is corrupt. {rebuild_hint}"
            )


def read_manifest(
    path: str | Path, expected_type: str | None = None, supported_versions: tuple[int, ...] = ()
) -> dict[str, Any]:
    root = Path(path)
    mpath = root / MANIFEST
    if not root.is_dir():
        raise IndexFormatError(f"no index at {root}: the directory does not exist. Build one with `rankstack index`.")
    if not mpath.exists():
        raise IndexFormatError(
            f"{root} is not a rankstack index: it has no {MANIFEST}. Build one with `rankstack index`."
        )
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{mpath} is not valid JSON ({e}); rebuild the index.") from None
    if not isinstance(manifest, dict):
        raise IndexFormatError(f"{mpath} is not a manifest (a JSON {type(manifest).__name__}); rebuild the index.")
    if expected_type is not None and manifest.get("type") != expected_type:
        raise IndexFormatError(f"{root} holds a {manifest.get('type')!r} index, not {expected_type!r}.")
    version = manifest.get("format_version")
    if supported_versions and version not in supported_versions:
        raise IndexFormatError(
            f"{root} has format version {version}, but this rankstack reads versions {list(supported_versions)}. "
            f"Rebuild the index with this version (`rankstack index ...`) or use the rankstack that built it "
            f"({manifest.get('created_by', 'unknown')})."
        )
    # checked after type and version: a manifest from another rankstack version says so, not "damaged"
    sealed = manifest.pop(SEAL, None)
    if supported_versions and sealed is not None and sealed != _crc(manifest):  # (a bare type peek skips it)
        raise IndexFormatError(
            f"{mpath} failed its checksum (it was edited or damaged); rebuild the index, or restore the file."
        )
    return manifest


def _crc(data: dict[str, Any]) -> int:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return zlib.crc32(canonical.encode("ascii"))


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write a manifest (sealed with a CRC-32 of its own content, checked by ``read_manifest``) aside,
    flush it to disk, then rename it over ``path``."""
    data = {k: v for k, v in data.items() if k != SEAL}
    data[SEAL] = _crc(data)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(target: Path) -> list[str]:
    """Remove temporary siblings left by builds whose process died (killed, crashed); returns what was
    done. A build killed between moving the old index aside and moving the new one in left no ``target``:
    the old one (the last complete state) goes back."""
    done = []
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            pid = int(p.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name} (left by process {pid}, which is gone)")
    for p in sorted(target.parent.glob(f".{target.name}.old-*")):
        if not target.exists():
            p.rename(target)
            done.append(f"restored {target.name} from {p.name} (a replacement was killed half-way)")
        else:
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name} (a replaced index)")
    return done


@contextlib.contextmanager
def atomic_directory(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``target`` in one rename.

    On any exception the temporary directory is removed and ``target`` is untouched. If the process is
    killed, the hidden temporary sibling is left behind and cleaned by the next build of the same target.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        with _writer_lock_if_index(target):  # an update in flight finishes first; later ones see the new index
            target.rename(old)
            tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


def _writer_lock_if_index(target: Path) -> contextlib.AbstractContextManager:
    if not (target / MANIFEST).exists():
        return contextlib.nullcontext()
    from rankstack.index.commits import writer_lock  # commits builds on this module

    return writer_lock(target)


class ManifestIndex:
    """What the vector and token indexes share once opened: the manifest's model, dimension and document
    count, a repr that reopens it, and use in a ``with`` block (updates swap the whole directory, so there is
    nothing to release)."""

    path: Path
    manifest: dict[str, Any]

    def close(self) -> None:
        """Nothing to release; here so every index works in ``with``."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"rankstack.open({str(self.path)!r})"

    @property
    def model(self) -> dict[str, Any]:
        return self.manifest["model"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def num_docs(self) -> int:
        return int(self.manifest["num_docs"])

    def __len__(self) -> int:
        return self.num_docs

    # a subclass gives these: live docid -> row, the tombstones, and how its manifest is written
    _positions: dict[str, int]
    deleted: Any

    def _write_manifest(self, directory: Path, manifest: dict[str, Any]) -> None:
        raise NotImplementedError

    def delete(self, docids: Any) -> Any:
        """Mark documents deleted (a new tombstone file and manifest, written atomically); unknown docids are
        reported with a warning. Returns the index reopened."""
        import warnings

        import numpy as np

        docids = [str(d) for d in docids]
        missing = [d for d in docids if d not in self._positions]
        if missing:
            warnings.warn(f"{len(missing)} docids to delete are not in the index (first: {missing[:5]})", stacklevel=2)
        rows = [self._positions[d] for d in docids if d not in missing]
        if not rows:
            return self
        mask = self.deleted.copy()
        mask[rows] = True
        manifest = {k: v for k, v in self.manifest.items() if k != "files"}
        generation = int(manifest.get("generation", 0)) + 1
        manifest["generation"], manifest["modified"] = generation, now()
        manifest["deleted"] = f"deleted-{generation}.npy"
        np.save(self.path / manifest["deleted"], mask)
        self._write_manifest(self.path, manifest)
        for old in self.path.glob("deleted-*.npy"):  # read whole on open, never memory-mapped: safe to remove
            if old.name != manifest["deleted"]:
                old.unlink(missing_ok=True)
        return type(self)(self.path)  # type: ignore[call-arg]


def created_by() -> str:
    """What a manifest records as its writer: this rankstack's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"rankstack {version('rankstack')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "rankstack (source)"
