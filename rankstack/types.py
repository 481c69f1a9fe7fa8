"""Core tables: queries, rankings (runs), relevance judgments, documents.

Every stage maps ``Queries`` (or a ``Ranking`` of candidates) to a ``Ranking``; these classes are the
contract between stages, metrics and file formats. They are columnar (numpy arrays, one per column) so
hot paths never touch per-row Python objects, and they convert to and from pandas for users.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rankstack.errors import InputFormatError
from rankstack.lines import iter_lines

if TYPE_CHECKING:  # pandas is a dependency, but importing it costs ~0.3 s; keep it off import time
    import pandas as pd


def _str_array(values: Iterable[Any]) -> np.ndarray:
    """Identifiers are always strings (TREC ids such as '0001' must keep their zeros)."""
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=object)
    if arr.dtype != object or (arr.size and not isinstance(arr[0], str)):
        arr = np.array([str(v) for v in arr], dtype=object)
    return arr


# --------------------------------------------------------------------------------------------- queries
class Queries:
    """A table of queries: ``qid`` and ``text`` columns, in the user's order.

    ``image`` (optional) holds a path per query for image queries (image-to-text or image-to-image search
    with a dual encoder); such queries may have empty text.
    """

    __slots__ = ("image", "qid", "text")

    def __init__(self, qid: Iterable[Any], text: Iterable[str], image: Iterable[str] | None = None):
        self.qid = _str_array(qid)
        self.text = np.asarray(list(text) if not isinstance(text, np.ndarray) else text, dtype=object)
        if len(self.qid) != len(self.text):
            raise ValueError(f"qid and text differ in length ({len(self.qid)} vs {len(self.text)})")
        self.image = None if image is None else _str_array(image)
        if self.image is not None and len(self.image) != len(self.qid):
            raise ValueError(f"qid and image differ in length ({len(self.qid)} vs {len(self.image)})")

    @classmethod
    def from_dict(cls, mapping: Mapping[Any, str]) -> Queries:
        return cls(list(mapping.keys()), list(mapping.values()))

    @classmethod
    def from_images(cls, mapping: Mapping[Any, str | os.PathLike[str]]) -> Queries:
        """Image queries: qid -> image path (their text is empty)."""
        return cls(list(mapping.keys()), [""] * len(mapping), [str(p) for p in mapping.values()])

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame) -> Queries:
        text_col = "text" if "text" in frame.columns else "query"
        texts = frame[text_col].to_numpy() if text_col in frame.columns else [""] * len(frame)
        image = frame["image"].to_numpy() if "image" in frame.columns else None
        return cls(frame["qid"].to_numpy(), texts, image)

    @classmethod
    def coerce(cls, value: Queries | Mapping[Any, str] | Iterable[str] | str | pd.DataFrame) -> Queries:
        """Accept the shapes users naturally pass: a Queries, a dict, a DataFrame, a list, one string."""
        if isinstance(value, Queries):
            return value
        if isinstance(value, str):
            return cls(["1"], [value])
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if hasattr(value, "columns"):
            return cls.from_pandas(value)  # type: ignore[arg-type]
        texts = list(value)
        return cls([str(i + 1) for i in range(len(texts))], texts)

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        columns = {"qid": self.qid, "text": self.text}
        if self.image is not None:
            columns["image"] = self.image
        return pd.DataFrame(columns)

    def to_dict(self) -> dict[str, str]:
        return dict(zip(self.qid.tolist(), self.text.tolist(), strict=True))

    def subset(self, qids: Iterable[str]) -> Queries:
        """The queries whose qid is in ``qids``, keeping this table's order."""
        keep = np.isin(self.qid, np.asarray(list(qids), dtype=object))
        return Queries(self.qid[keep], self.text[keep], None if self.image is None else self.image[keep])

    def __len__(self) -> int:
        return len(self.qid)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return zip(self.qid.tolist(), self.text.tolist(), strict=True)

    def __repr__(self) -> str:
        kind = "image queries" if self.image is not None else "queries"
        return f"Queries({len(self)} {kind})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Queries) or list(self) != list(other):
            return False
        mine, theirs = self.image, other.image
        return (mine is None) == (theirs is None) and (mine is None or mine.tolist() == theirs.tolist())


# --------------------------------------------------------------------------------------------- ranking
class Ranking:
    """A run: ``qid, docid, score, rank`` sorted by qid (first-seen order) then rank.

    ``rank`` starts at 1. When built from unsorted rows, each query's rows are ordered by score
    descending, ties broken by docid ascending, so a ranking is a deterministic function of its rows.
    ``queries`` optionally carries the query texts so later stages (re-rankers) can read them.
    """

    __slots__ = ("docid", "qid", "queries", "rank", "score")

    def __init__(
        self,
        qid: Iterable[Any],
        docid: Iterable[Any],
        score: Iterable[float],
        rank: Iterable[int] | None = None,
        queries: Queries | None = None,
        *,
        presorted: bool = False,
    ):
        qid = _str_array(qid)
        docid = _str_array(docid)
        score = np.asarray(score, dtype=np.float64)
        if not (len(qid) == len(docid) == len(score)):
            raise ValueError("qid, docid and score must have the same length")
        if presorted and rank is not None:
            self.qid, self.docid, self.score = qid, docid, score
            self.rank = np.asarray(rank, dtype=np.int64)
        else:
            self.qid, self.docid, self.score, self.rank = _sort_rows(qid, docid, score)
        self.queries = queries

    # ---- constructors
    @classmethod
    def _trusted(
        cls, qid: np.ndarray | str, docid: np.ndarray, score: np.ndarray, rank: np.ndarray, queries: Queries | None
    ) -> Ranking:
        """For retrievers: columns already sorted, ids already object arrays of str, no checks (at one query
        per call the checks cost more than the search). A str ``qid``: every row is that query's."""
        if isinstance(qid, str):  # np.full(n, qid, dtype=object) costs five times this
            one, qid = qid, np.empty(len(docid), dtype=object)
            qid.fill(one)
        self = cls.__new__(cls)
        self.qid, self.docid, self.score, self.rank, self.queries = (
            qid,
            docid,
            score.astype(np.float64, copy=False),
            rank,
            queries,
        )
        return self

    @classmethod
    def empty(cls, queries: Queries | None = None) -> Ranking:
        return cls([], [], [], [], queries=queries, presorted=True)

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame, queries: Queries | None = None) -> Ranking:
        return cls(frame["qid"].to_numpy(), frame["docid"].to_numpy(), frame["score"].to_numpy(), queries=queries)

    @classmethod
    def from_dict(cls, run: Mapping[Any, Mapping[Any, float]], queries: Queries | None = None) -> Ranking:
        """From ``{qid: {docid: score}}`` (the ir_measures / pytrec_eval shape)."""
        q, d, s = [], [], []
        for qid, docs in run.items():
            for docid, score in docs.items():
                q.append(qid)
                d.append(docid)
                s.append(score)
        return cls(q, d, s, queries=queries)

    @classmethod
    def concat(cls, parts: Iterable[Ranking]) -> Ranking:
        parts = [p for p in parts]
        if not parts:
            return cls.empty()
        queries = next((p.queries for p in parts if p.queries is not None), None)
        return cls(
            np.concatenate([p.qid for p in parts]),
            np.concatenate([p.docid for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.rank for p in parts]),
            queries=queries,
            presorted=True,
        )

    # ---- conversions
    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"qid": self.qid, "docid": self.docid, "score": self.score, "rank": self.rank})

    def to_arrow(self):
        import pyarrow as pa

        return pa.table(
            {
                "qid": pa.array(self.qid.tolist(), pa.string()),
                "docid": pa.array(self.docid.tolist(), pa.string()),
                "score": self.score,
                "rank": self.rank,
            }
        )

    def to_dict(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for q, d, s in zip(self.qid.tolist(), self.docid.tolist(), self.score.tolist(), strict=True):
            out.setdefault(q, {})[d] = s
        return out

    # ---- slicing
    def groups(self) -> Iterator[tuple[str, slice]]:
        """Yield ``(qid, slice)`` for each query's block of rows."""
        if len(self.qid) == 0:
            return
        change = np.flatnonzero(self.qid[1:] != self.qid[:-1]) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [len(self.qid)]])
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            yield self.qid[s], slice(s, e)

    def cutoff(self, k: int) -> Ranking:
        """Keep the top ``k`` rows of each query."""
        keep = self.rank <= k
        return self._take(keep)

    def for_qids(self, qids: Iterable[str]) -> Ranking:
        return self._take(np.isin(self.qid, np.asarray(list(qids), dtype=object)))

    def _take(self, mask: np.ndarray) -> Ranking:
        return Ranking(
            self.qid[mask], self.docid[mask], self.score[mask], self.rank[mask], queries=self.queries, presorted=True
        )

    def with_queries(self, queries: Queries | None) -> Ranking:
        return Ranking(self.qid, self.docid, self.score, self.rank, queries=queries, presorted=True)

    def qids(self) -> list[str]:
        """Distinct qids in the ranking's order."""
        return [q for q, _ in self.groups()]

    # ---- TREC run files
    @classmethod
    def read_trec(cls, path: str | Path, queries: Queries | None = None) -> Ranking:
        """Read a TREC run file: ``qid Q0 docid rank score tag`` per line (gzip allowed)."""
        q, d, s = [], [], []
        for lineno, line in iter_lines(path):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 5:
                raise InputFormatError(
                    path,
                    lineno,
                    f"a TREC run line needs 6 fields (qid Q0 docid rank score tag), got {len(parts)}: {line.strip()!r}",
                )
            try:
                score = float(parts[4])
            except ValueError:
                raise InputFormatError(path, lineno, f"score {parts[4]!r} is not a number") from None
            q.append(parts[0])
            d.append(parts[2])
            s.append(score)
        return cls(q, d, s, queries=queries)

    def write_trec(self, path: str | Path, tag: str = "rankstack") -> None:
        """Write the ranking as a TREC run file (written aside, then renamed, so readers never see half a file)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for q, d, r, s in zip(
                self.qid.tolist(), self.docid.tolist(), self.rank.tolist(), self.score.tolist(), strict=True
            ):
                fh.write(f"{q} Q0 {d} {r} {s:.6f} {tag}\n")
        tmp.replace(path)

    def __len__(self) -> int:
        return len(self.qid)

    def __repr__(self) -> str:
        return f"Ranking({len(set(self.qid.tolist()))} queries, {len(self)} rows)"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Ranking)
            and np.array_equal(self.qid, other.qid)
            and np.array_equal(self.docid, other.docid)
            and np.allclose(self.score, other.score)
            and np.array_equal(self.rank, other.rank)
        )


def _sort_rows(qid: np.ndarray, docid: np.ndarray, score: np.ndarray):
    """Order rows by qid (first-seen), score descending, docid ascending; assign 1-based ranks."""
    n = len(qid)
    if n == 0:
        return qid, docid, score, np.zeros(0, dtype=np.int64)
    _, first, qcode = np.unique(qid, return_index=True, return_inverse=True)
    qorder = np.argsort(np.argsort(first, kind="stable"), kind="stable")[qcode]  # first-seen position of each qid
    dorder = np.unique(docid, return_inverse=True)[1]
    order = np.lexsort((dorder, -score, qorder))
    qid, docid, score = qid[order], docid[order], score[order]
    qsorted = qorder[order]
    starts = np.concatenate([[0], np.flatnonzero(qsorted[1:] != qsorted[:-1]) + 1])
    group_start = np.repeat(starts, np.diff(np.concatenate([starts, [n]])))
    rank = np.arange(n, dtype=np.int64) - group_start + 1
    return qid, docid, score, rank


# --------------------------------------------------------------------------------------------- qrels
class Qrels:
    """Relevance judgments: ``qid, docid, relevance`` (graded ints; 0 or below is non-relevant)."""

    __slots__ = ("docid", "qid", "relevance")

    def __init__(self, qid: Iterable[Any], docid: Iterable[Any], relevance: Iterable[int]):
        self.qid = _str_array(qid)
        self.docid = _str_array(docid)
        self.relevance = np.asarray(
            list(relevance) if not isinstance(relevance, np.ndarray) else relevance, dtype=np.int64
        )
        if not (len(self.qid) == len(self.docid) == len(self.relevance)):
            raise ValueError("qid, docid and relevance must have the same length")

    @classmethod
    def from_dict(cls, qrels: Mapping[Any, Mapping[Any, int]]) -> Qrels:
        q, d, r = [], [], []
        for qid, docs in qrels.items():
            for docid, rel in docs.items():
                q.append(qid)
                d.append(docid)
                r.append(int(rel))
        return cls(q, d, r)

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame) -> Qrels:
        rel_col = "relevance" if "relevance" in frame.columns else "label"
        return cls(frame["qid"].to_numpy(), frame["docid"].to_numpy(), frame[rel_col].to_numpy())

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"qid": self.qid, "docid": self.docid, "relevance": self.relevance})

    def to_dict(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for q, d, r in zip(self.qid.tolist(), self.docid.tolist(), self.relevance.tolist(), strict=True):
            out.setdefault(q, {})[d] = r
        return out

    def qids(self) -> list[str]:
        return list(dict.fromkeys(self.qid.tolist()))

    def subset(self, qids: Iterable[str]) -> Qrels:
        """The judgments of the queries in ``qids``, keeping this table's order (as ``Queries.subset``)."""
        keep = np.isin(self.qid, np.asarray(list(qids), dtype=object))
        return Qrels(self.qid[keep], self.docid[keep], self.relevance[keep])

    @classmethod
    def read(cls, path: str | Path) -> Qrels:
        """Read TREC qrels (``qid iter docid rel``) or BEIR tsv (``query-id corpus-id score`` with header)."""
        q, d, r = [], [], []
        for lineno, line in iter_lines(path):
            parts = line.split()
            if not parts:
                continue
            if lineno == 1 and parts[0] in ("query-id", "qid", "query_id"):
                continue  # BEIR header
            if len(parts) == 4:
                qid, docid, rel = parts[0], parts[2], parts[3]
            elif len(parts) == 3:
                qid, docid, rel = parts
            else:
                raise InputFormatError(
                    path,
                    lineno,
                    f"a qrels line needs 'qid iter docid rel' or 'qid docid rel', got {len(parts)} fields: {line.strip()!r}",
                )
            try:
                rel_value = int(float(rel))
            except (ValueError, OverflowError):  # not a number, nan, inf
                raise InputFormatError(path, lineno, f"relevance {rel!r} is not a number") from None
            if not -(2**31) <= rel_value < 2**31:
                raise InputFormatError(path, lineno, f"relevance {rel!r} is out of range (a 32-bit integer)")
            q.append(qid)
            d.append(docid)
            r.append(rel_value)
        return cls(q, d, r)

    def write_trec(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            for q, d, r in zip(self.qid.tolist(), self.docid.tolist(), self.relevance.tolist(), strict=True):
                fh.write(f"{q} 0 {d} {r}\n")

    def __len__(self) -> int:
        return len(self.qid)

    def __repr__(self) -> str:
        return f"Qrels({len(set(self.qid.tolist()))} queries, {len(self)} judgments)"


# --------------------------------------------------------------------------------------------- documents
@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """One document. ``fields`` holds anything else the source had (url, metadata, ...)."""

    docid: str
    text: str
    title: str | None = None
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def contents(self) -> str:
        """The text that gets indexed: title and body, as Pyserini's BEIR indexes do."""
        return f"{self.title} {self.text}" if self.title else self.text


class Corpus:
    """A re-iterable stream of ``Document``s that never needs the whole collection in memory.

    ``source`` is a zero-argument function returning a fresh iterator, so the corpus can be read
    several times (for example, once to count and once to index).
    """

    def __init__(self, source: Callable[[], Iterator[Document]], size: int | None = None, name: str | None = None):
        self._source = source
        self._size = size
        self.name = name

    @classmethod
    def from_documents(cls, docs: Iterable[Document | Mapping[str, Any]], name: str | None = None) -> Corpus:
        items = [d if isinstance(d, Document) else _doc_from_mapping(d) for d in docs]
        return cls(lambda: iter(items), size=len(items), name=name)

    def __iter__(self) -> Iterator[Document]:
        return self._source()

    def __len__(self) -> int:
        if self._size is None:
            self._size = sum(1 for _ in self)
        return self._size

    def __repr__(self) -> str:
        size = f"{self._size} documents" if self._size is not None else "size unknown"
        return f"Corpus({self.name or 'unnamed'}, {size})"


def _doc_from_mapping(d: Mapping[str, Any]) -> Document:
    docid = d.get("docid", d.get("_id", d.get("id")))
    if docid is None:
        raise ValueError(f"document has no docid/_id/id field: {dict(d)!r:.200}")
    known = {"docid", "_id", "id", "text", "contents", "title"}
    text = d.get("text", d.get("contents", ""))
    return Document(str(docid), text or "", d.get("title") or None, {k: v for k, v in d.items() if k not in known})
