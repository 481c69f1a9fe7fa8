"""Streaming readers for corpora (jsonl, tsv, TREC SGML, Parquet), queries and qrels.

A corpus is never loaded whole: ``read_corpus`` returns a ``FileCorpus`` that re-opens its files on every
pass. Every malformed record raises ``InputFormatError`` naming the file and the 1-based line (the row,
for Parquet), because "bad input somewhere in 8.8M passages" is not something a user can fix.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from rankstack.data.trec import iter_trec_documents, iter_trec_topics
from rankstack.errors import InputFormatError
from rankstack.lines import first_bytes, iter_lines
from rankstack.types import Corpus, Document, Qrels, Queries

__all__ = [
    "CorpusFormat",
    "FileCorpus",
    "QueriesFormat",
    "check_duplicates",
    "detect_format",
    "iter_with_lines",
    "read_corpus",
    "read_qrels",
    "read_queries",
]

logger = logging.getLogger(__name__)

CorpusFormat = Literal["jsonl", "tsv", "trec", "parquet"]
QueriesFormat = Literal["jsonl", "tsv", "trec"]

_DOC_ID_KEYS = ("_id", "docid", "id", "doc_id")
_DOC_TEXT_KEYS = ("text", "contents")
_QUERY_ID_KEYS = ("_id", "qid", "query_id", "id")
_QUERY_TEXT_KEYS = ("text", "query")
_TSV_ID_HEADERS = {"docid", "_id", "id", "doc_id", "pid"}
_TSV_TEXT_HEADERS = ("text", "contents", "passage", "body")
_TSV_QID_HEADERS = {"qid", "_id", "id", "query_id", "query-id"}
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".trec": "trec",
    ".sgml": "trec",
}


# --------------------------------------------------------------------------------------------- format detection
def detect_format(path: str | Path, kind: Literal["corpus", "queries"] = "corpus") -> str:
    """The format of ``path``, from its suffix (``.gz`` ignored), else from its first bytes.

    TREC disks name files ``fb396001`` or ``topics.301-350``, so a name alone cannot decide; sniffing the
    first line is the fallback. Pass ``format=`` to the readers to skip guessing altogether.
    """
    p = Path(path)
    name = p.name.lower().removesuffix(".gz")
    fmt = _SUFFIXES.get(Path(name).suffix)
    if fmt is None:
        head = first_bytes(p)
        if head.startswith(b"PAR1"):
            fmt = "parquet"
        else:
            first = next((ln.strip() for ln in head.decode("utf-8", "replace").splitlines() if ln.strip()), "")
            low = first.lower()
            if low.startswith("{"):
                fmt = "jsonl"
            elif low.startswith("<doc") or low.startswith("<top"):
                fmt = "trec"
            elif "\t" in first:
                fmt = "tsv"
    allowed = ("jsonl", "tsv", "trec", "parquet") if kind == "corpus" else ("jsonl", "tsv", "trec")
    if fmt not in allowed:
        raise InputFormatError(
            path,
            None,
            f"cannot tell the {kind} format from the file name or its first line; pass format= one of {allowed}",
        )
    return fmt


# --------------------------------------------------------------------------------------------- documents
def _text_value(record: dict[str, Any], key: str | None, path: str | Path, lineno: int) -> str:
    if key is None:
        return ""
    value = record[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputFormatError(path, lineno, f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _record_id(
    record: dict[str, Any], keys: Sequence[str], what: str, path: str | Path, lineno: int
) -> tuple[str, str]:
    key = next((k for k in keys if k in record), None)
    if key is None:
        raise InputFormatError(path, lineno, f"{what} has no id field (expected one of {', '.join(map(repr, keys))})")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputFormatError(path, lineno, f"{what} id {key!r} must be a string or integer, got {value!r:.40}")
    value = str(value)
    if not value.strip():
        raise InputFormatError(path, lineno, f"{what} id {key!r} is empty")
    return key, value


def _document(record: dict[str, Any], path: str | Path, lineno: int) -> Document:
    id_key, docid = _record_id(record, _DOC_ID_KEYS, "document", path, lineno)
    text_key = next((k for k in _DOC_TEXT_KEYS if k in record), None)
    text = _text_value(record, text_key, path, lineno)
    title = _text_value(record, "title" if "title" in record else None, path, lineno) or None
    used = {id_key, text_key, "title"}
    return Document(docid, text, title, {k: v for k, v in record.items() if k not in used})


def _jsonl_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFormatError(path, lineno, f"invalid JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(record, dict):
            raise InputFormatError(path, lineno, f"expected a JSON object per line, got {type(record).__name__}")
        yield lineno, record


def _jsonl_documents(path: str | Path) -> Iterator[tuple[int, Document]]:
    for lineno, record in _jsonl_records(path):
        yield lineno, _document(record, path, lineno)


def _tsv_documents(path: str | Path) -> Iterator[tuple[int, Document]]:
    """``docid<TAB>text`` or ``docid<TAB>title<TAB>text``; a header row may name the columns in any order."""
    layout: tuple[int, int | None, int, dict[int, str]] | None = None  # id, title, text, extra columns
    ncols, first_line = 0, 0
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if layout is None:
            ncols, first_line = len(parts), lineno
            header = [p.strip().lower() for p in parts]
            if header[0] in _TSV_ID_HEADERS:
                text_col = next((header.index(h) for h in _TSV_TEXT_HEADERS if h in header), None)
                if text_col is None:
                    raise InputFormatError(path, lineno, f"tsv header has no text column (one of {_TSV_TEXT_HEADERS})")
                title_col = header.index("title") if "title" in header else None
                extra = {i: h for i, h in enumerate(header) if i not in (0, text_col, title_col)}
                layout = (0, title_col, text_col, extra)
                continue
            if ncols == 2:
                layout = (0, None, 1, {})
            elif ncols == 3:
                layout = (0, 1, 2, {})
            else:
                raise InputFormatError(
                    path,
                    lineno,
                    f"a tsv corpus line needs 2 fields (docid, text) or 3 (docid, title, text), got {ncols}",
                )
        if len(parts) != ncols:
            raise InputFormatError(
                path, lineno, f"expected {ncols} tab-separated fields (as on line {first_line}), got {len(parts)}"
            )
        id_col, title_col, text_col, extra = layout
        docid = parts[id_col].strip()
        if not docid:
            raise InputFormatError(path, lineno, "empty docid")
        title = parts[title_col].strip() or None if title_col is not None else None
        yield lineno, Document(docid, parts[text_col], title, {name: parts[i] for i, name in extra.items()})


def _parquet_documents(path: str | Path, batch_size: int = 8192) -> Iterator[tuple[int, Document]]:
    """Rows of a Parquet file, read ``batch_size`` rows at a time; the "line" is the 1-based row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for non-Parquet bytes
        raise InputFormatError(path, None, f"not a readable Parquet file ({exc})") from None
    names = pfile.schema_arrow.names
    id_col = next((c for c in _DOC_ID_KEYS if c in names), None)
    if id_col is None:
        raise InputFormatError(path, None, f"Parquet corpus has no id column (one of {_DOC_ID_KEYS}); columns: {names}")
    text_col = next((c for c in _DOC_TEXT_KEYS if c in names), None)
    if text_col is None:
        raise InputFormatError(
            path, None, f"Parquet corpus has no text column (one of {_DOC_TEXT_KEYS}); columns: {names}"
        )
    row = 0
    batches = pfile.iter_batches(batch_size=batch_size)
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                break
            columns = batch.to_pydict()
        except (OSError, ValueError, pa.ArrowException) as exc:  # damaged pages or strings (UnicodeDecodeError)
            raise InputFormatError(path, None, f"damaged Parquet data after row {row} ({exc})".strip()) from None
        for i in range(batch.num_rows):
            row += 1
            record = {name: values[i] for name, values in columns.items()}
            if record[id_col] is None:
                raise InputFormatError(path, row, f"row {row} has a null {id_col!r}")
            yield row, _document(record, path, row)


_CORPUS_READERS: dict[str, Callable[[str | Path], Iterator[tuple[int, Document]]]] = {
    "jsonl": _jsonl_documents,
    "tsv": _tsv_documents,
    "trec": iter_trec_documents,
    "parquet": _parquet_documents,
}


def _expand(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """A file, a directory (its files, sorted, recursively; hidden files skipped), or a list of either."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            out.extend(
                p
                for p in sorted(item.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(item).parts)
            )
        elif item.is_file():
            out.append(item)
        else:
            raise FileNotFoundError(f"corpus file {str(item)!r} does not exist")
    if not out:
        raise FileNotFoundError(f"no corpus files in {items!r}")
    return out


def _display_name(path: Path) -> str:
    """``corpus`` for ``corpus.jsonl.gz``: the file name without compression and format suffixes."""
    name = path.name.removesuffix(".gz")
    return name.removesuffix(Path(name).suffix) if Path(name).suffix in _SUFFIXES else name


class FileCorpus(Corpus):
    """A corpus read from files on every pass, never held in memory.

    Besides iterating ``Document``s it can say where each came from (``iter_with_lines``), so an indexer
    that finds a duplicate docid or an unusable document can point at the file and line. After the first
    complete pass, ``len()`` is free and ``empty_documents`` counts documents with no title and no text
    (they are yielded, not dropped: dropping would silently shift collection statistics).
    """

    def __init__(
        self,
        paths: str | Path | Iterable[str | Path],
        format: CorpusFormat | None = None,
        name: str | None = None,
    ):
        self.paths: tuple[Path, ...] = tuple(_expand(paths))
        self.formats: tuple[str, ...] = tuple(format or detect_format(p, "corpus") for p in self.paths)
        for fmt in self.formats:
            if fmt not in _CORPUS_READERS:
                raise ValueError(f"unknown corpus format {fmt!r}; choose one of {sorted(_CORPUS_READERS)}")
        self.empty_documents: int | None = None
        super().__init__(self._documents, size=None, name=name or _display_name(self.paths[0]))

    def iter_with_lines(self) -> Iterator[tuple[Document, str, int]]:
        """Yield ``(document, path, line)``; the line is the row number for Parquet files."""
        for path, fmt in zip(self.paths, self.formats, strict=True):
            for lineno, doc in _CORPUS_READERS[fmt](path):
                yield doc, str(path), lineno

    def _documents(self) -> Iterator[Document]:
        count = empty = 0
        first_empty: list[str] = []
        for doc, _, _ in self.iter_with_lines():
            count += 1
            if not doc.text.strip() and not (doc.title or "").strip():
                empty += 1
                if len(first_empty) < 5:
                    first_empty.append(doc.docid)
            yield doc
        self._size = count
        if self.empty_documents is None and empty:
            logger.warning(
                "%s: %d of %d documents are empty (e.g. %s)", self.name, empty, count, ", ".join(first_empty)
            )
        self.empty_documents = empty

    def __repr__(self) -> str:
        size = f"{self._size} documents" if self._size is not None else "size unknown"
        return f"FileCorpus({self.name}, {len(self.paths)} file(s), {size})"


def read_corpus(
    paths: str | Path | Iterable[str | Path], format: CorpusFormat | None = None, name: str | None = None
) -> FileCorpus:
    """Open a corpus for streaming: jsonl(.gz), tsv(.gz), TREC SGML (.gz), Parquet, or a directory of them."""
    return FileCorpus(paths, format=format, name=name)


def iter_with_lines(corpus: Corpus | Iterable[Document]) -> Iterator[tuple[Document, str | None, int]]:
    """``(document, path, line)`` for any corpus: exact locations for files, else ``(doc, None, position)``."""
    if isinstance(corpus, FileCorpus):
        yield from corpus.iter_with_lines()
        return
    for position, doc in enumerate(corpus, 1):
        yield doc, None, position


def check_duplicates(corpus: Corpus | Iterable[Document]) -> dict[str, list[str]]:
    """Docids that occur more than once, each with every place it occurs (``path:line`` or ``#position``).

    Only reports: whether a duplicate is an error, or the first or last copy wins, is the indexer's call.
    The first pass keeps only a set of docids; locations are gathered in a second pass, and only when
    there is something to report, so a clean corpus costs one pass.
    """
    seen: set[str] = set()
    dups: set[str] = set()
    for doc in corpus:
        if doc.docid in seen:
            dups.add(doc.docid)
        seen.add(doc.docid)
    if not dups:
        return {}
    where: dict[str, list[str]] = {d: [] for d in sorted(dups)}
    for doc, path, line in iter_with_lines(corpus):
        if doc.docid in dups:
            where[doc.docid].append(f"{path}:{line}" if path is not None else f"#{line}")
    return where


# --------------------------------------------------------------------------------------------- queries
def _jsonl_queries(path: str | Path) -> Iterator[tuple[int, str, str]]:
    for lineno, record in _jsonl_records(path):
        _, qid = _record_id(record, _QUERY_ID_KEYS, "query", path, lineno)
        text_key = next((k for k in _QUERY_TEXT_KEYS if k in record), None)
        if text_key is None:
            raise InputFormatError(path, lineno, f"query has no text field (expected one of {_QUERY_TEXT_KEYS})")
        yield lineno, qid, _text_value(record, text_key, path, lineno)


def _tsv_queries(path: str | Path) -> Iterator[tuple[int, str, str]]:
    first = True
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if first and parts[0].strip().lower() in _TSV_QID_HEADERS:
            first = False
            continue
        first = False
        if len(parts) != 2:
            raise InputFormatError(path, lineno, f"a tsv query line needs 2 fields (qid, text), got {len(parts)}")
        qid = parts[0].strip()
        if not qid:
            raise InputFormatError(path, lineno, "empty qid")
        yield lineno, qid, parts[1].strip()


def _trec_queries(path: str | Path, field: str | Sequence[str]) -> Iterator[tuple[int, str, str]]:
    fields = [field] if isinstance(field, str) else list(field)
    seen_fields: set[str] = set()
    for lineno, topic in iter_trec_topics(path):
        seen_fields.update(topic)
        yield lineno, topic["num"], " ".join(t for t in (topic.get(f, "") for f in fields) if t)
    missing = [f for f in fields if f not in seen_fields]
    if missing and seen_fields:
        raise ValueError(f"{path}: no topic has field(s) {missing}; fields present: {sorted(seen_fields - {'num'})}")


def read_queries(
    path: str | Path, format: QueriesFormat | None = None, field: str | Sequence[str] = "title"
) -> Queries:
    """Read queries from BEIR ``queries.jsonl``, ``qid<TAB>text`` tsv, or a TREC topic file.

    ``field`` picks the TREC topic field(s) used as the query text (``"title"``, ``"desc"``, ``"narr"``,
    or several, joined by a space). Duplicate qids are an error (which text would be meant?); empty
    queries are kept, with a warning naming them, since a system must still return a ranking for them.
    """
    fmt = format or detect_format(path, "queries")
    if fmt == "jsonl":
        rows = _jsonl_queries(path)
    elif fmt == "tsv":
        rows = _tsv_queries(path)
    elif fmt == "trec":
        rows = _trec_queries(path, field)
    else:
        raise ValueError(f"unknown queries format {fmt!r}; choose one of jsonl, tsv, trec")
    qids: list[str] = []
    texts: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, qid, text in rows:
        if qid in first_line:
            raise InputFormatError(path, lineno, f"duplicate qid {qid!r} (first on line {first_line[qid]})")
        first_line[qid] = lineno
        qids.append(qid)
        texts.append(text.strip())
    empty = [q for q, t in zip(qids, texts, strict=True) if not t]
    if empty:
        shown = ", ".join(empty[:10]) + (", ..." if len(empty) > 10 else "")
        warnings.warn(f"{path}: {len(empty)} empty queries (qids {shown})", stacklevel=2)
    return Queries(qids, texts)


# --------------------------------------------------------------------------------------------- qrels
def read_qrels(path: str | Path) -> Qrels:
    """Read TREC (``qid iter docid rel``) or BEIR tsv qrels; ``Qrels.read`` owns the format."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"qrels file {str(path)!r} does not exist")
    return Qrels.read(path)
