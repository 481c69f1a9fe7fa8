"""Downloads without internet: a local http.server on 127.0.0.1 and file:// URLs serving archives built here.

Covers success (zip and tar.gz), checksum mismatches (sha256 and md5), a server that hangs up mid-transfer,
HTTP errors, unsafe archive members, and load_collection downloading a registered name into the cache.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import logging
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rankstack.data import (
    REGISTRY,
    SOURCE_RECORD,
    ChecksumError,
    CollectionInfo,
    DownloadError,
    download_and_extract,
    load_collection,
)

FILES = {
    "corpus.jsonl": '{"_id": "d1", "title": "T", "text": "hello"}\n{"_id": "d2", "text": "world"}\n',
    "queries.jsonl": '{"_id": "q1", "text": "hello"}\n',
    "qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\n",
}


def beir_zip(top: str = "tiny") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in FILES.items():
            zf.writestr(f"{top}/{name}", text)
    return buf.getvalue()


def flat_tar_gz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Server:
    """Serves ``routes[path] = bytes``; a route in ``truncate`` announces its full length but sends half."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.hits: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


def only_entries(folder: Path) -> list[str]:
    """Everything in ``folder`` (hidden temporaries included), to prove nothing half-written is left."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_http_download_verifies_sha256_and_unpacks(server: Server, tmp_path: Path) -> None:
    body = beir_zip()
    server.routes["/tiny.zip"] = body
    dest = tmp_path / "cache" / "tiny"
    out = download_and_extract(
        server.url("/tiny.zip"), dest, sha256=hashlib.sha256(body).hexdigest(), show_progress=False
    )
    assert out == dest
    assert (dest / "corpus.jsonl").read_text() == FILES["corpus.jsonl"]
    assert (dest / "qrels" / "test.tsv").is_file()
    record = json.loads((dest / SOURCE_RECORD).read_text())
    assert record["sha256"] == hashlib.sha256(body).hexdigest() and record["sha256_verified"] is True
    assert record["bytes"] == len(body)
    assert only_entries(tmp_path / "cache") == ["tiny"]  # no temporary sibling left behind
    # already there: no second request
    download_and_extract(server.url("/tiny.zip"), dest, show_progress=True)
    assert server.hits == ["/tiny.zip"]


def test_file_url_without_sha256_checks_md5_and_records_sha256(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = tmp_path / "src" / "flat.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(flat_tar_gz())
    dest = tmp_path / "cache" / "flat"
    with caplog.at_level(logging.WARNING, logger="rankstack.data.download"):
        download_and_extract(
            archive.as_uri(), dest, md5=hashlib.md5(archive.read_bytes()).hexdigest(), show_progress=False
        )
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert f"no sha256 is registered for {archive.as_uri()}; computed sha256 {sha}" in caplog.text
    record = json.loads((dest / SOURCE_RECORD).read_text())
    assert record["sha256"] == sha and record["sha256_verified"] is False and record["md5_verified"] is True
    assert (dest / "queries.jsonl").is_file()  # a flat archive is used as the root itself


def test_sha256_mismatch_keeps_nothing(server: Server, tmp_path: Path) -> None:
    body = beir_zip()
    server.routes["/tiny.zip"] = body
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        download_and_extract(server.url("/tiny.zip"), tmp_path / "cache" / "tiny", sha256=wrong, show_progress=False)
    message = str(info.value)
    assert f"expected {wrong}" in message and f"got {hashlib.sha256(body).hexdigest()}" in message
    assert only_entries(tmp_path / "cache") == []


def test_md5_mismatch_keeps_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(beir_zip())
    with pytest.raises(
        ChecksumError, match=f"md5 mismatch.*expected {'f' * 32}, got {hashlib.md5(archive.read_bytes()).hexdigest()}"
    ):
        download_and_extract(archive.as_uri(), tmp_path / "cache" / "a", md5="f" * 32, show_progress=False)
    assert only_entries(tmp_path / "cache") == []


def test_server_closing_mid_stream_leaves_no_cache_dir(server: Server, tmp_path: Path) -> None:
    body = beir_zip() + bytes(200_000)  # large enough that half of it is a real partial transfer
    server.routes["/big.zip"] = body
    server.truncate.add("/big.zip")
    with pytest.raises(DownloadError, match=f"stopped after {len(body) // 2} of {len(body)} bytes"):
        download_and_extract(server.url("/big.zip"), tmp_path / "cache" / "big", show_progress=False)
    assert only_entries(tmp_path / "cache") == []


def test_http_error_and_non_archive(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="404"):
        download_and_extract(server.url("/missing.zip"), tmp_path / "cache" / "x", show_progress=False)
    server.routes["/notes.txt"] = b"not an archive"
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        download_and_extract(server.url("/notes.txt"), tmp_path / "cache" / "y", show_progress=False)
    assert only_entries(tmp_path / "cache") == []


def test_zip_member_escaping_target_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    archive = tmp_path / "evil.zip"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match="outside the target"):
        download_and_extract(archive.as_uri(), tmp_path / "cache" / "evil", show_progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert only_entries(tmp_path / "cache") == []


def test_load_collection_downloads_registered_name_once(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = beir_zip("tiny-remote")
    server.routes["/datasets/tiny-remote.zip"] = body
    info = CollectionInfo(
        "tiny-remote", server.url("/datasets/tiny-remote.zip"), sha256=hashlib.sha256(body).hexdigest()
    )
    monkeypatch.setitem(REGISTRY, "tiny-remote", info)
    monkeypatch.delenv("RANKSTACK_DATA", raising=False)
    monkeypatch.setenv("RANKSTACK_HOME", str(tmp_path / "home"))

    c = load_collection("tiny-remote", show_progress=False)
    assert c.path == tmp_path / "home" / "collections" / "tiny-remote"
    assert [d.docid for d in c.corpus] == ["d1", "d2"]
    assert c.queries_for("test").to_dict() == {"q1": "hello"}
    load_collection("tiny-remote", show_progress=False)  # second time: from the cache
    assert server.hits == ["/datasets/tiny-remote.zip"]


def test_load_collection_checksum_failure_leaves_cache_empty(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/t.zip"] = beir_zip()
    monkeypatch.setitem(REGISTRY, "tampered", CollectionInfo("tampered", server.url("/t.zip"), sha256="a" * 64))
    monkeypatch.delenv("RANKSTACK_DATA", raising=False)
    monkeypatch.setenv("RANKSTACK_HOME", str(tmp_path / "home"))
    with pytest.raises(ChecksumError):
        load_collection("tampered", show_progress=False)
    assert only_entries(tmp_path / "home" / "collections") == []
