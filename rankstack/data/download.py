"""Download a collection archive, verify it, and unpack it into place atomically.

Everything is written inside a hidden temporary sibling of the destination and renamed into place only
after the checksum matched and the archive unpacked, so an interrupted or corrupt download never leaves a
half-written collection where ``load_collection`` would find it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from rankstack.errors import RankstackError

__all__ = ["SOURCE_RECORD", "ChecksumError", "DownloadError", "download_and_extract", "fetch"]

logger = logging.getLogger(__name__)

#: File written into every downloaded collection: where it came from and the checksums of what arrived.
SOURCE_RECORD = ".rankstack-source.json"
_CHUNK = 1 << 20
_USER_AGENT = "rankstack/0.1 (+https://github.com/rankstack)"


class DownloadError(RankstackError):
    """A download failed (network, truncated transfer, unreadable archive); nothing was kept."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the ones the registry expects."""


def fetch(url: str, target: Path, *, show_progress: bool = True, timeout: float = 60.0) -> dict[str, str | int]:
    """Stream ``url`` into ``target``, hashing on the way; returns ``{"sha256", "md5", "bytes"}``.

    A transfer shorter than the announced Content-Length is an error: urllib reports a server that hangs
    up early as a normal end of stream, so the byte count is the only way to notice.
    """
    import http.client  # here, not at import: the network stack costs every process's start ~15 ms
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    sha256, md5 = hashlib.sha256(), hashlib.md5()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as out:
            length_header = response.headers.get("Content-Length")
            expected = int(length_header) if length_header and length_header.isdigit() else None
            with tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=target.name,
                disable=not show_progress,
                leave=False,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    sha256.update(chunk)
                    md5.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise DownloadError(f"downloading {url} failed after {received} bytes: {exc}") from exc
    if expected is not None and received != expected:
        raise DownloadError(
            f"downloading {url} stopped after {received} of {expected} bytes (connection closed early); try again"
        )
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest(), "bytes": received}


def _extract(archive: Path, into: Path) -> None:
    """Unpack a zip or tar(.gz) archive; members that would land outside ``into`` are refused."""
    import tarfile
    import zipfile

    into.mkdir()
    root = into.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not (into / member).resolve().is_relative_to(root):
                    raise DownloadError(f"archive member {member!r} would be written outside the target directory")
            zf.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")  # "data" refuses absolute paths, '..', device files and links out
    else:
        raise DownloadError(f"{archive.name} is neither a zip nor a tar archive")


def _archive_root(extracted: Path) -> Path:
    """BEIR zips wrap everything in one ``<name>/`` folder; use it as the root when that is all there is."""
    entries = [p for p in extracted.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return extracted


def download_and_extract(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    show_progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download the archive at ``url`` (http(s) or file), verify it, unpack it, and move it to ``dest``.

    ``sha256`` is checked when known; otherwise the publisher's ``md5`` (BEIR and MS MARCO publish md5
    only) is checked when given, and the computed sha256 is logged and recorded in ``dest/SOURCE_RECORD``
    so it can be added to the registry. On a mismatch nothing is kept and the error shows both digests.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        archive = work / "archive"
        logger.info("downloading %s to %s", url, dest)
        got = fetch(url, archive, show_progress=show_progress, timeout=timeout)
        if sha256 is not None and got["sha256"] != sha256.lower():
            raise ChecksumError(
                f"sha256 mismatch for {url}: expected {sha256.lower()}, got {got['sha256']}; "
                "the download was discarded (the file may have changed upstream, or the transfer was corrupted)"
            )
        if sha256 is None:
            if md5 is not None and got["md5"] != md5.lower():
                raise ChecksumError(
                    f"md5 mismatch for {url}: expected {md5.lower()}, got {got['md5']}; the download was discarded"
                )
            logger.warning(
                "no sha256 is registered for %s; computed sha256 %s (%d bytes)%s; recorded in %s",
                url,
                got["sha256"],
                got["bytes"],
                ", md5 matched the published one" if md5 else "",
                dest / SOURCE_RECORD,
            )
        _extract(archive, work / "extracted")
        archive.unlink()
        root = _archive_root(work / "extracted")
        record = {
            "url": url,
            **got,
            "sha256_verified": sha256 is not None,
            "md5_verified": sha256 is None and md5 is not None,
            "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (root / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(root, dest)  # atomic: readers see no directory, or the complete one
        except OSError:
            if not dest.is_dir():
                raise
            logger.info("%s appeared while downloading (another process?); keeping that copy", dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest
