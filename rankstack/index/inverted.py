"""The inverted index: segments of flat numpy arrays, opened with mmap.

Layout of an index directory::

    manifest.json            type "inverted", format_version, analyzer, segments, counts, checksums
    seg-000001/
      terms.txt              the segment's vocabulary, one term per line (term id = line number)
      post_offsets.npy       int64[V+1]   postings of term t are [offsets[t], offsets[t+1])
      post_docs.npy          uint32[P]    segment-local doc numbers, increasing within a term
      post_tfs.npy           uint16/32[P] term frequencies
      fwd_offsets.npy        int64[N+1]   forward index (doc -> terms), for RM3 and merging
      fwd_terms.npy, fwd_tfs.npy
      doclen.npy             uint32[N]    analysed length (tokens after stopping)
      norms.npy              uint8[N]     Lucene's one-byte length encoding (SmallFloat.intToByte4)
      docid_offsets.npy, docid_bytes.npy   external docids, utf-8
      docs.bin, docs_offsets.npy           the document store
      deleted-<gen>.npy      bool[N] tombstones (only when documents were deleted)

Updates never rewrite existing files: ``add`` writes a new segment, ``delete`` writes a new tombstone
file, ``merge`` compacts all live documents into a new segment, and each commits a new generation of the
manifest (``commits.py``): readers keep the generation they opened, writers take turns, a killed update
leaves the last committed state. Statistics (document count, average length, document frequencies) always
count live documents only, so search results equal those of a fresh build of the same documents.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
import warnings
from array import array
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rankstack.errors import IndexFormatError, RankstackError
from rankstack.index import commits
from rankstack.index.arrays import save_docids
from rankstack.index.docstore import DocStoreReader, DocStoreWriter
from rankstack.index.manifest import (
    MANIFEST,
    atomic_directory,
    clean_stale,
    file_record,
    now,
    read_manifest,
    verify_files,
    write_json_atomic,
)
from rankstack.index.stages import stage_factory
from rankstack.text.analysis import Analyzer, TermMapper
from rankstack.types import Corpus, Document

if TYPE_CHECKING:
    from rankstack.text.query_scan import TokenTable

log = logging.getLogger(__name__)

INDEX_TYPE = "inverted"
FORMAT_VERSION = 1
OnDuplicate = Literal["error", "keep-first", "keep-last"]
_REBUILD = "Rebuild it with `rankstack index` (or rankstack.index.build_inverted_index)."


# ------------------------------------------------------------------------------------------ Lucene norms
def _long_to_int4(i: int) -> int:
    bits = i.bit_length()
    if bits < 4:
        return i
    shift = bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits, shift = i & 0x07, (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_NUM_FREE_VALUES = 255 - _long_to_int4(2**31 - 1)  # 24, as in Lucene's SmallFloat


def encode_norm(length: int) -> int:
    """Lucene's ``SmallFloat.intToByte4``: exact below 24, then 4 significant bits (BM25Similarity norms)."""
    return length if length < _NUM_FREE_VALUES else _NUM_FREE_VALUES + _long_to_int4(length - _NUM_FREE_VALUES)


def decode_norm(byte: int) -> int:
    return byte if byte < _NUM_FREE_VALUES else _NUM_FREE_VALUES + _int4_to_long(byte - _NUM_FREE_VALUES)


NORM_DECODE_TABLE = np.array([decode_norm(i) for i in range(256)], dtype=np.float64)
_POWERS_OF_TWO = np.left_shift(1, np.arange(63, dtype=np.int64))


def encode_norms(lengths: np.ndarray) -> np.ndarray:
    """``encode_norm`` of every length, vectorised (a table of the first 65,536 built at import cost 20 ms of
    every process's start, the CLI's included)."""
    x = np.asarray(lengths, dtype=np.int64)
    small = x < _NUM_FREE_VALUES
    v = np.where(small, 0, x - _NUM_FREE_VALUES)
    bits = np.searchsorted(_POWERS_OF_TWO, v, side="right")  # v's bit length: the powers of two up to v
    shift = np.maximum(bits - 4, 0)
    int4 = np.where(bits < 4, v, ((v >> shift) & 0x07) | ((shift + 1) << 3))
    return np.where(small, x, _NUM_FREE_VALUES + int4).astype(np.uint8)


# ------------------------------------------------------------------------------------------ building
def _invert(fwd_terms: np.ndarray, fwd_tfs: np.ndarray, fwd_offsets: np.ndarray, vocab_size: int):
    """Forward index -> postings with numpy: a stable sort by term keeps doc numbers increasing.

    Plain numpy on purpose: a build then never starts numba's compiler (some 50 MiB of RSS).
    """
    order = stable_term_order(fwd_terms, vocab_size)
    offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(np.bincount(fwd_terms, minlength=vocab_size), out=offsets[1:])
    docs = np.repeat(np.arange(len(fwd_offsets) - 1, dtype=np.uint32), np.diff(fwd_offsets))
    post_docs = docs[order]
    del docs
    return offsets, post_docs, fwd_tfs[order]


def stable_term_order(terms: np.ndarray, vocab_size: int) -> np.ndarray:
    """``np.argsort(terms, kind="stable")``, 3-4x faster: numpy's stable sort is a radix sort for 16-bit keys,
    so term ids below 2**16 sort in one pass and larger ones in two (low half, then high half: LSD radix)."""
    if vocab_size <= 1 << 16:
        return np.argsort(terms.astype(np.uint16), kind="stable")
    order = np.argsort((terms & 0xFFFF).astype(np.uint16), kind="stable")
    high = np.argsort((terms[order] >> 16).astype(np.uint16), kind="stable")
    return order[high]


class _TermIds(dict):
    """term -> id in order of first sight (``names[id]`` is the term); a lookup of a known term never
    leaves C."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __missing__(self, term: str) -> int:
        tid = self[term] = len(self)
        self.names.append(term)
        return tid


Bags = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def term_bags(ids: Sequence[int] | np.ndarray, counts: Sequence[int] | np.ndarray) -> Bags:
    """Per-document bags of terms from ``TermMapper.map``'s output, with numpy: (each document's distinct
    term ids in order of first occurrence, their counts, distinct terms per document, terms per document)."""
    n = len(counts)
    tid = np.frombuffer(ids, dtype=np.int64) if isinstance(ids, array) and len(ids) else np.asarray(ids, dtype=np.int64)
    doc = np.repeat(np.arange(n, dtype=np.int64), counts)
    keep = tid >= 0
    tid, doc = tid[keep], doc[keep]
    uniq, first, tfs = np.unique((doc << 32) | tid, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    uniq, tfs = uniq[order], tfs[order]
    return uniq & 0xFFFFFFFF, tfs, np.bincount(uniq >> 32, minlength=n), np.bincount(doc, minlength=n)


IMPACT_BITS = range(1, 17)


def quantize_impacts(weights: np.ndarray, bits: int | None) -> tuple[np.ndarray, float]:
    """(integer impacts, scale): ``round(w * scale)`` with the largest weight at ``2**bits - 1``, as Anserini
    quantises learned weights (uint8 up to 8 bits, else uint16); ``bits=None`` keeps float32 weights, scale 1.

    A segment's scale is its own; a score divides each impact by it, so segments with different largest
    weights still score alike (and ``merge`` re-quantises the exact weights the forward index keeps)."""
    weights = np.asarray(weights, dtype=np.float32)
    if bits is None:
        return weights.copy(), 1.0
    if bits not in IMPACT_BITS:
        raise ValueError(f"impact bits must be 1..16 or None (float32), not {bits!r}")
    top = float(weights.max()) if weights.size else 0.0
    scale = (2**bits - 1) / top if top > 0 else 1.0
    dtype = np.uint8 if bits <= 8 else np.uint16
    return np.clip(np.rint(weights.astype(np.float64) * scale), 0, 2**bits - 1).astype(dtype), scale


class _SegmentWriter:
    """Accumulates analysed documents and writes one segment directory."""

    def __init__(
        self, directory: Path, store_docs: bool = True, background: bool = False, impact: dict[str, Any] | None = None
    ):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.vocab: dict[str, int] = _TermIds()
        # an impact segment (``impact``: the manifest's settings) stores each document's token weights
        # (float32) where a BM25 segment stores term counts; its postings carry them quantised
        self.impact = impact
        # flat, growable C arrays: no per-document Python or numpy objects while a corpus streams in
        self.fwd_terms = array("I")
        self.fwd_tfs = array("f" if impact is not None else "I")
        self.doc_ends = array("q")
        self.doclen = array("q")
        self.docids: list[str] = []
        self.store = DocStoreWriter(directory, background=background) if store_docs else None

    def add(self, docid: str, terms: list[str], tfs: list[int] | None, record: dict[str, Any] | None) -> None:
        """Add one document given its terms (with ``tfs``: distinct terms and their counts, or in an impact
        segment their weights)."""
        if tfs is None:
            counts = Counter(terms)
            terms, tfs = list(counts.keys()), list(counts.values())
        self.fwd_terms.extend(map(self.vocab.__getitem__, terms))  # new terms get the next id
        self.fwd_tfs.extend(tfs)
        self.doc_ends.append(len(self.fwd_terms))
        self.doclen.append(len(terms) if self.impact is not None else sum(tfs))
        self.docids.append(docid)
        if self.store is not None:
            self.store.add(record or {})

    def add_bags(self, docids: list[str], bags: Bags, records: list[dict[str, Any]] | None) -> None:
        """Add many analysed documents at once (``term_bags``); the arrays are those ``add`` would build
        document by document (tested: byte-identical index)."""
        terms, tfs, distinct, doclen = bags
        ends = len(self.fwd_terms) + np.cumsum(distinct, dtype=np.int64)
        self.fwd_terms.frombytes(terms.astype(np.uint32).tobytes())
        self.fwd_tfs.frombytes(tfs.astype(np.uint32).tobytes())
        self.doc_ends.frombytes(ends.tobytes())
        self.doclen.frombytes(doclen.astype(np.int64).tobytes())
        self.docids += docids
        if self.store is not None:
            for record in records or [{}] * len(docids):
                self.store.add(record)

    def __len__(self) -> int:
        return len(self.docids)

    def close(self) -> dict[str, Any]:
        """Invert, write every array, return the segment's manifest entry."""
        d = self.dir
        n = len(self.docids)
        fwd_offsets = np.zeros(n + 1, dtype=np.int64)
        fwd_offsets[1:] = np.frombuffer(self.doc_ends, dtype=np.int64) if n else 0
        fwd_terms = np.frombuffer(self.fwd_terms, dtype=np.uint32) if len(self.fwd_terms) else np.zeros(0, np.uint32)
        extra: dict[str, Any] = {}
        if self.impact is not None:
            fwd_tfs = np.frombuffer(self.fwd_tfs, dtype=np.float32) if len(self.fwd_tfs) else np.zeros(0, np.float32)
            self.fwd_terms, self.fwd_tfs = array("I"), array("f")
            impacts, extra["impact_scale"] = quantize_impacts(fwd_tfs, self.impact.get("bits"))
            keep = impacts > 0  # a weight that quantises to 0 adds nothing: no posting (the forward index keeps it)
            docs_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(fwd_offsets))[keep]
            kept_offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.bincount(docs_of, minlength=n), out=kept_offsets[1:])
            offsets, post_docs, post_tfs = _invert(fwd_terms[keep], impacts[keep], kept_offsets, len(self.vocab))
        else:
            fwd_tfs = np.frombuffer(self.fwd_tfs, dtype=np.uint32) if len(self.fwd_tfs) else np.zeros(0, np.uint32)
            tf_dtype = np.uint16 if (fwd_tfs.size == 0 or fwd_tfs.max() < 65536) else np.uint32
            fwd_tfs = fwd_tfs.astype(tf_dtype)
            self.fwd_terms = self.fwd_tfs = array("I")  # free the growable buffers before inverting
            offsets, post_docs, post_tfs = _invert(fwd_terms, fwd_tfs, fwd_offsets, len(self.vocab))
        doclen = np.frombuffer(self.doclen, dtype=np.int64).astype(np.uint32) if n else np.zeros(0, np.uint32)
        np.save(d / "post_offsets.npy", offsets)
        np.save(d / "post_docs.npy", post_docs)
        np.save(d / "post_tfs.npy", post_tfs)
        del post_docs, post_tfs
        np.save(d / "fwd_offsets.npy", fwd_offsets)
        np.save(d / "fwd_terms.npy", fwd_terms)
        np.save(d / "fwd_tfs.npy", fwd_tfs)
        np.save(d / "doclen.npy", doclen)
        np.save(d / "norms.npy", encode_norms(doclen))
        (d / "terms.txt").write_text("\n".join(self.vocab.keys()), encoding="utf-8")
        save_docids(d, self.docids)
        if self.store is not None:
            self.store.close()
            extra["store_codec"] = self.store.codec
        files = {p.name: file_record(p) for p in sorted(d.iterdir()) if p.is_file()}
        return {
            "name": d.name,
            "num_docs": n,
            "num_terms": len(self.vocab),
            "num_postings": int(offsets[-1]),
            "num_tokens": int(doclen.sum()),
            "num_empty": int((doclen == 0).sum()),
            "deleted": None,
            "num_deleted": 0,
            "files": files,
            **extra,
        }


# ------------------------------------------------------------------------------------------ reading
class Segment:
    """One immutable segment, its arrays memory-mapped."""

    def __init__(self, root: Path, entry: dict[str, Any]):
        self.root = root
        self.entry = entry
        self.dir = root / entry["name"]
        load = lambda name: np.load(self.dir / name, mmap_mode="r")  # noqa: E731
        self.post_offsets = load("post_offsets.npy")
        self.post_docs = load("post_docs.npy")
        self.post_tfs = load("post_tfs.npy")
        self.doclen = load("doclen.npy")
        self.norms = load("norms.npy")
        self._docid_offsets = load("docid_offsets.npy")
        self._docid_bytes = load("docid_bytes.npy")
        self.num_docs = int(entry["num_docs"])
        self.deleted = (
            np.load(self.dir / entry["deleted"]) if entry.get("deleted") else np.zeros(self.num_docs, dtype=bool)
        )

    @cached_property
    def terms(self) -> list[str]:
        text = (self.dir / "terms.txt").read_text(encoding="utf-8")
        return text.split("\n") if text else []

    @cached_property
    def term_ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.terms)}

    @cached_property
    def forward(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        load = lambda name: np.load(self.dir / name, mmap_mode="r")  # noqa: E731
        return load("fwd_offsets.npy"), load("fwd_terms.npy"), load("fwd_tfs.npy")

    @cached_property
    def docids(self) -> np.ndarray:
        raw = bytes(self._docid_bytes)
        offs = self._docid_offsets
        return np.array([raw[offs[i] : offs[i + 1]].decode("utf-8") for i in range(self.num_docs)], dtype=object)

    @cached_property
    def store(self) -> DocStoreReader | None:
        if "docs.bin" not in self.entry["files"]:
            return None  # built with store_docs=False
        try:
            return DocStoreReader(self.dir, self.entry.get("store_codec", "zlib"))
        except FileNotFoundError:
            raise IndexFormatError(
                f"index {self.root}: {self.entry['name']}/docs.bin is gone. If this index was closed, or updated "
                "since it was opened and this handle dropped, open it again (rankstack.open); else rebuild it."
            ) from None

    @property
    def live(self) -> np.ndarray:
        return ~self.deleted

    def postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = int(self.post_offsets[term_id]), int(self.post_offsets[term_id + 1])
        return self.post_docs[s:e], self.post_tfs[s:e]

    def doc_terms(self, local: int) -> tuple[list[str], np.ndarray]:
        offs, terms, tfs = self.forward
        s, e = int(offs[local]), int(offs[local + 1])
        vocab = self.terms
        return [vocab[t] for t in terms[s:e]], np.asarray(tfs[s:e])


@dataclass(frozen=True)
class CollectionStats:
    """Statistics BM25 needs, over live documents: Lucene counts only documents with at least one term."""

    num_docs: int  # live documents with at least one term (Lucene's docCount)
    num_tokens: int
    avgdl: float


_STOPWORD, _UNKNOWN, _UNSEEN = -2, -1, -4  # token cache values that are not term ids
FEW_TEXTS = 8  # batches up to this size are analysed text by text (see query_term_rows)
_TOKEN_CACHE_SIZE = 1 << 20


@dataclass(frozen=True)
class Lexicon:
    """Global term ids over all segments, for scoring many queries with array operations.

    ``ids[term]`` is the global id; ``df[gid]`` the live document frequency; ``local[s][gid]`` the term's
    id in segment ``s`` or -1 (``None`` when segment ids equal global ids: a single segment).
    """

    ids: dict[str, int]
    df: np.ndarray
    local: list[np.ndarray | None]


def _live_df(seg: Segment) -> np.ndarray:
    offsets = np.asarray(seg.post_offsets, dtype=np.int64)
    counts = np.diff(offsets)
    if not seg.entry.get("num_deleted"):
        return counts
    live = seg.live[np.asarray(seg.post_docs)]
    return np.bincount(np.repeat(np.arange(len(counts)), counts), weights=live, minlength=len(counts)).astype(np.int64)


class InvertedIndex:
    """An opened inverted index: segments, statistics, document access, and factories for stages.

    ``index.bm25(k1=0.9, b=0.4)`` makes a BM25 retriever; ``index.docs[docid]`` returns a Document.
    """

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        self.manifest, self._pin = commits.pinned_manifest(
            self.path, lambda: read_manifest(self.path, INDEX_TYPE, (FORMAT_VERSION,))
        )
        try:
            if verify:
                for seg in self.manifest["segments"]:
                    verify_files(self.path / seg["name"], seg["files"], _REBUILD)
                    if seg.get("deleted"):
                        verify_files(self.path / seg["name"], {seg["deleted"]: seg["deleted_file"]}, _REBUILD)
            self.analyzer = Analyzer.from_config(self.manifest["analyzer"])
            self.segments = [Segment(self.path, e) for e in self.manifest["segments"]]
        except OSError as e:  # a data file the manifest names is missing or unreadable (opened with verify=False)
            raise IndexFormatError(f"index {self.path}: {e}. {_REBUILD}") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            # only a manifest written before manifests were sealed, or edited by hand and resealed, gets here
            raise IndexFormatError(
                f"{self.path / MANIFEST} does not describe a valid index ({type(e).__name__}: {e}). {_REBUILD}"
            ) from None

    @property
    def docs(self) -> DocumentLookup:
        """Documents by docid: ``index.docs["d1"]`` (made on access: an attribute would be a reference cycle
        that keeps this index, and the generation it pins, alive until the cyclic garbage collector runs)."""
        self._check_open()
        return DocumentLookup(self)

    # ---- statistics
    @cached_property
    def stats(self) -> CollectionStats:
        n = tokens = 0
        for seg in self.segments:
            live = seg.live
            lens = np.asarray(seg.doclen)
            n += int(np.count_nonzero(live & (lens > 0)))
            tokens += int(lens[live].sum())
        return CollectionStats(n, tokens, tokens / n if n else 0.0)

    @cached_property
    def lexicon(self) -> Lexicon:
        if len(self.segments) == 1:
            seg = self.segments[0]
            return Lexicon(seg.term_ids, _live_df(seg), [None])
        ids: dict[str, int] = {}
        for seg in self.segments:
            for term in seg.terms:
                ids.setdefault(term, len(ids))
        df = np.zeros(len(ids), dtype=np.int64)
        local = []
        for seg in self.segments:
            gids = np.fromiter((ids[t] for t in seg.terms), dtype=np.int64, count=len(seg.terms))
            to_local = np.full(len(ids), -1, dtype=np.int64)
            to_local[gids] = np.arange(len(gids))
            df[gids] += _live_df(seg)
            local.append(to_local)
        return Lexicon(ids, df, local)

    def query_term_ids(self, text: str) -> tuple[list[int], bool]:
        """Global ids (``lexicon``) of the terms of a query, repeats kept, terms not in the index dropped;
        and whether the text had any term at all (False: empty, or stopwords only).

        Surface tokens map to ids through a bounded cache, so a batch of queries pays the stemmer and
        the dictionary once per distinct word, much as bm25s stems each distinct word once.
        """
        cache = self._token_cache
        ids: list[int] = []
        any_term = False
        for token in self.analyzer.tokenize(text):
            gid = cache.get(token)
            if gid is None:
                term = self.analyzer.term(token)
                gid = _STOPWORD if term is None else self.lexicon.ids.get(term, _UNKNOWN)
                if len(cache) < _TOKEN_CACHE_SIZE:
                    cache[token] = gid
            if gid >= 0:
                ids.append(gid)
            any_term = any_term or gid != _STOPWORD
        return ids, any_term

    @cached_property
    def _token_cache(self) -> dict[str, int]:
        return {}

    @cached_property
    def _raw_token_table(self) -> TokenTable:
        from rankstack.text.query_scan import TokenTable  # compiled: loaded once a batch needs it

        return TokenTable(lower=self.analyzer.lowercase)

    def query_term_rows(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``query_term_ids`` for a batch, as arrays: (row of each kept term, its global id) in text
        order, and whether each text had any term. The batch is tokenised and looked up in one compiled
        pass (``text/query_scan.py``); texts it flags as complex go text by text (same results, tested).
        A few texts go text by text anyway: setting up the compiled pass costs ten times what the cached
        Python path spends on one short query."""
        n = len(texts)
        if n <= FEW_TEXTS:
            has_term = np.zeros(n, dtype=bool)
            few_rows: list[int] = []
            few_gids: list[int] = []
            for i, text in enumerate(texts):
                ids, has_term[i] = self.query_term_ids(text) if text else ([], False)
                few_rows.extend([i] * len(ids))
                few_gids.extend(ids)
            return np.asarray(few_rows, dtype=np.int64), np.asarray(few_gids, dtype=np.int64), has_term
        from rankstack.text.query_scan import kept_terms

        table = self._raw_token_table
        batch = table.tokenize(list(texts), lookup=True, missing=_UNSEEN)
        gids = batch.values
        for pos in np.flatnonzero(gids == _UNSEEN).tolist():
            token = batch.token(pos)
            token = token.lower() if self.analyzer.lowercase else token
            term = self.analyzer.term_of_raw(token)
            gid = _STOPWORD if term is None else self.lexicon.ids.get(term, _UNKNOWN)
            if len(table) < _TOKEN_CACHE_SIZE:
                table.add(token, gid)
            gids[pos] = gid
        rows, gids, has_term = kept_terms(batch.rows, gids, n, _STOPWORD)
        slow = np.flatnonzero(batch.complex_rows).tolist()
        if not slow:  # rows come out of the scan in text order
            return rows, gids, has_term
        rows_parts, gid_parts = [rows], [gids]
        slow_rows, slow_gids = [], []
        for i in slow:
            ids, any_term = self.query_term_ids(texts[i]) if texts[i] else ([], False)
            has_term[i] = any_term
            slow_rows.extend([i] * len(ids))
            slow_gids.extend(ids)
        if slow_rows:
            rows_parts.append(np.asarray(slow_rows, dtype=np.int64))
            gid_parts.append(np.asarray(slow_gids, dtype=np.int64))
        rows, gids = np.concatenate(rows_parts), np.concatenate(gid_parts)
        order = np.argsort(rows, kind="stable")
        return rows[order], gids[order], has_term

    def df(self, term: str) -> int:
        gid = self.lexicon.ids.get(term)
        return 0 if gid is None else int(self.lexicon.df[gid])

    @property
    def num_docs(self) -> int:
        """Live documents, empty ones included."""
        return sum(int(np.count_nonzero(s.live)) for s in self.segments)

    def __len__(self) -> int:
        return self.num_docs

    @cached_property
    def _segment_bases(self) -> np.ndarray:
        """Global ordinal of each segment's first document: ties in scores break by this order."""
        return np.concatenate([[0], np.cumsum([s.num_docs for s in self.segments])]).astype(np.int64)

    @cached_property
    def _docid_locations(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for si, seg in enumerate(self.segments):
            deleted = seg.deleted
            for local, docid in enumerate(seg.docids.tolist()):
                if not deleted[local]:
                    out[docid] = (si, local)
        return out

    def locate(self, docid: str) -> tuple[int, int] | None:
        return self._docid_locations.get(docid)

    def iter_documents(self) -> Iterator[Document]:
        """Live documents in index order, from the document store."""
        for seg in self.segments:
            if seg.store is None:
                raise RankstackError(f"index {self.path} was built without a document store (store_docs=False).")
            for local, docid in enumerate(seg.docids.tolist()):
                if not seg.deleted[local]:
                    yield _record_to_document(docid, seg.store.get(local))

    # ---- stage factories
    @property
    def impact(self) -> dict[str, Any] | None:
        """An impact index's settings (``bits``, ``encoder``); None for a BM25 index of analysed text."""
        return self.manifest.get("impact")

    def bm25(self, k1: float = 0.9, b: float = 0.4, k: int = 1000, **kwargs: Any):
        """A Lucene-BM25 retriever over this index (see ``rankstack.sparse.BM25``)."""
        self._check_open()
        self._refuse_impact("BM25 (it scores term counts)", "rankstack.sparse.Impact(index, encoder)")
        return stage_factory("bm25")(self, k1=k1, b=b, k=k, **kwargs)

    def _refuse_impact(self, what: str, instead: str) -> None:
        if self.impact is not None:
            raise RankstackError(
                f"{self.path} is an impact index (token weights, not analysed text): {what} does not apply; use {instead}"
            )

    # ---- updates
    def add(self, documents: Iterable[Document] | Corpus, show_progress: bool = False) -> InvertedIndex:
        """Add documents as a new segment. A docid already in the index replaces the old document."""
        self._refuse_impact("adding text", "index.add_vectors(vectors) with the encoder that built it")
        return self._add_segment(
            lambda base, writer, label: _feed(
                writer, _keep_last(documents), base.analyzer, "keep-first", show_progress, label
            )
        )

    def add_vectors(self, vectors: Iterable[Any], show_progress: bool = False) -> InvertedIndex:
        """Add documents to an impact index as a new segment: ``SparseVector``s (or ``(docid, {token: weight})``
        pairs) from the same encoder. A docid already in the index replaces the old document."""
        if self.impact is None:
            raise RankstackError(f"{self.path} is a BM25 index of analysed text; add documents with index.add(docs)")
        return self._add_segment(
            lambda base, writer, label: _feed_vectors(
                writer, _keep_last(map(_as_vector, vectors)), "keep-first", show_progress, label
            )
        )

    def _add_segment(self, feed) -> InvertedIndex:
        """Commit one new segment filled by ``feed(base, writer, label)``; a docid already in the index is
        replaced (its old copy gets a tombstone)."""

        def change(base: InvertedIndex) -> dict[str, Any] | None:
            store_docs = base.manifest.get("store_docs", True)
            label = f"adding to {base.path.name}"
            entry = _write_segment(
                base.path, base.manifest["next_segment"], store_docs, lambda w: feed(base, w, label), impact=base.impact
            )
            if entry is None:
                return None
            manifest = dict(base.manifest)
            manifest["segments"] = [*base.manifest["segments"], entry]
            manifest["next_segment"] = int(entry["name"].split("-")[1]) + 1
            replaced = [d for d in entry.pop("docids") if d in base._docid_locations]
            return base._with_tombstones(manifest, replaced)

        return self._update(change)

    def delete(self, docids: Iterable[str]) -> InvertedIndex:
        """Mark documents deleted (tombstones); unknown docids are reported with a warning."""
        docids = [str(d) for d in docids]

        def change(base: InvertedIndex) -> dict[str, Any] | None:
            missing = [d for d in docids if d not in base._docid_locations]
            if missing:
                warnings.warn(
                    f"{len(missing)} docids to delete are not in the index (first: {missing[:5]})", stacklevel=4
                )
            present = [d for d in docids if d not in missing]
            return base._with_tombstones(dict(base.manifest), present) if present else None

        return self._update(change)

    def merge(self, show_progress: bool = False) -> InvertedIndex:
        """Compact all live documents into one new segment; readers of the old segments keep them until done."""

        def change(base: InvertedIndex) -> dict[str, Any] | None:
            store_docs = base.manifest.get("store_docs", True)

            def fill(writer: _SegmentWriter) -> None:
                for seg in base.segments:
                    offs, terms, tfs = seg.forward
                    vocab = seg.terms
                    docids = seg.docids.tolist()
                    for local in np.flatnonzero(seg.live).tolist():
                        s, e = int(offs[local]), int(offs[local + 1])
                        record = seg.store.get(local) if (store_docs and seg.store is not None) else None
                        writer.add(docids[local], [vocab[t] for t in terms[s:e]], tfs[s:e].tolist(), record)

            entry = _write_segment(
                base.path, base.manifest["next_segment"], store_docs, fill, keep_empty=True, impact=base.impact
            )
            assert entry is not None
            entry.pop("docids")
            manifest = dict(base.manifest)
            manifest["segments"] = [entry]
            manifest["next_segment"] = int(entry["name"].split("-")[1]) + 1
            return manifest

        return self._update(change)

    def _update(self, change) -> InvertedIndex:
        """Run ``change`` (base index -> next manifest, or None for no change) as one committed generation.

        Under the writer lock the change applies to the index as it is now on disk (another process may
        have committed since this one was opened); leftovers of killed writers go first, old generations
        no reader holds go after."""
        files_of = _generation_files
        with commits.writer_lock(self.path):
            on_disk = read_manifest(self.path, INDEX_TYPE, (FORMAT_VERSION,))
            same = commits.generation(on_disk) == commits.generation(self.manifest) and on_disk.get(
                "index_id"
            ) == self.manifest.get("index_id")  # a rebuild (--overwrite) starts again at generation 0
            base = self if same else InvertedIndex(self.path, verify=False)
            commits.collect(self.path, base.manifest, files_of)
            manifest = change(base)
            if manifest is None:
                return base
            committed = commits.commit(self.path, base.manifest, _refresh_counts(manifest))
            commits.collect(self.path, committed, files_of)
        return type(self)(self.path, verify=False)

    def _with_tombstones(self, manifest: dict[str, Any], docids: list[str]) -> dict[str, Any]:
        by_segment: dict[int, list[int]] = {}
        for d in docids:
            si, local = self._docid_locations[d]
            by_segment.setdefault(si, []).append(local)
        if not by_segment:
            return manifest
        generation = commits.generation(self.manifest) + 1
        segments = [dict(s) for s in manifest["segments"]]
        for si, locals_ in by_segment.items():
            seg = self.segments[si]
            mask = seg.deleted.copy()
            mask[locals_] = True
            fname = f"deleted-{generation}.npy"
            _save_atomic(seg.dir / fname, mask)
            segments[si]["deleted"] = fname
            segments[si]["deleted_file"] = file_record(seg.dir / fname)
            segments[si]["num_deleted"] = int(mask.sum())
        manifest["segments"] = segments
        return manifest

    def close(self) -> None:
        """Let writers reclaim this generation's files once no one else reads them (also on garbage collection).
        A closed index makes no more stages: its files may be gone after the next update."""
        self._pin.release()
        self._closed = True

    def _check_open(self) -> None:
        if self.__dict__.get("_closed"):
            raise RankstackError(f"index {self.path} was closed; open it again with rankstack.open({str(self.path)!r})")

    def __enter__(self) -> InvertedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verify(self) -> None:
        """Re-check every file's checksum (open() does this too unless verify=False)."""
        InvertedIndex(self.path, verify=True)

    def __repr__(self) -> str:
        return f"rankstack.open({str(self.path)!r})"


class DocumentLookup:
    """``index.docs[docid]`` -> Document, read from the document store."""

    def __init__(self, index: InvertedIndex):
        self._index = index

    def __getitem__(self, docid: str) -> Document:
        loc = self._index.locate(str(docid))
        if loc is None:
            raise KeyError(f"docid {docid!r} is not in index {self._index.path}")
        seg = self._index.segments[loc[0]]
        if seg.store is None:
            raise RankstackError(f"index {self._index.path} was built without a document store (store_docs=False).")
        return _record_to_document(str(docid), seg.store.get(loc[1]))

    def __contains__(self, docid: object) -> bool:
        return self._index.locate(str(docid)) is not None

    def __len__(self) -> int:
        return self._index.num_docs

    def __iter__(self) -> Iterator[Document]:
        return self._index.iter_documents()


def _record_to_document(docid: str, record: dict[str, Any]) -> Document:
    return Document(docid, record.get("text", ""), record.get("title"), record.get("fields", {}))


def _document_record(doc: Document) -> dict[str, Any]:
    rec: dict[str, Any] = {"text": doc.text}
    if doc.title:
        rec["title"] = doc.title
    if doc.fields:
        rec["fields"] = {
            k: v for k, v in doc.fields.items() if isinstance(v, str | int | float | bool | list | dict) or v is None
        }
    return rec


def _feed(
    writer: _SegmentWriter,
    documents: Iterable[Document],
    analyzer: Analyzer,
    on_duplicate: Literal["error", "keep-first"],
    show_progress: bool,
    desc: str,
    threads: int = 1,
) -> int:
    """Analyse and add documents; returns how many duplicate docids were skipped (keep-first)."""
    from tqdm.auto import tqdm

    total = len(documents) if isinstance(documents, Corpus) and documents._size is not None else None
    # an iterator, not the corpus: given a sized iterable without a total, tqdm calls len(), and a corpus of
    # unknown size answers that by reading itself once more (every document parsed twice)
    docs = tqdm(iter(documents), total=total, desc=desc, unit="doc", disable=not show_progress, mininterval=1.0)
    docs = _unique(docs, on_duplicate)
    for batch, bags in _analysed(docs, analyzer, threads, writer.vocab):
        records = [_document_record(d) for d in batch] if writer.store else None
        writer.add_bags([d.docid for d in batch], bags, records)
    return docs.duplicates


def _as_vector(item: Any) -> Any:
    """A ``SparseVector`` from itself or a ``(docid, {token: weight})`` pair, its weights checked."""
    from rankstack.data.vectors import SparseVector, clean_weights

    if isinstance(item, SparseVector):
        vector = item
    elif isinstance(item, tuple) and len(item) == 2:
        vector = SparseVector(str(item[0]), dict(item[1]))
    else:
        raise TypeError(f"expected a SparseVector or a (docid, {{token: weight}}) pair, got {type(item).__name__}")
    try:
        return SparseVector(vector.docid, clean_weights(vector.weights), vector.contents, vector.fields)
    except ValueError as e:
        raise RankstackError(f"document {vector.docid!r}: {e}") from None


def _feed_vectors(
    writer: _SegmentWriter, vectors: Iterable[Any], on_duplicate: Literal["error", "keep-first"], show_progress: bool, desc: str
) -> int:
    """Add sparse vectors to an impact segment; returns how many duplicate docids were skipped (keep-first)."""
    from tqdm.auto import tqdm

    seen: set[str] = set()
    duplicates = 0
    for item in tqdm(iter(vectors), desc=desc, unit="doc", disable=not show_progress, mininterval=1.0):
        vector = _as_vector(item)
        if vector.docid in seen:
            duplicates += 1
            if on_duplicate == "error":
                raise _duplicate_error(vector.docid, len(seen) + duplicates)
            continue
        seen.add(vector.docid)
        record = _document_record(Document(vector.docid, vector.contents, None, vector.fields)) if writer.store else None
        writer.add(vector.docid, list(vector.weights), list(vector.weights.values()), record)
    return duplicates


_BATCH_DOCS = 256  # documents analysed together (on this thread, or sent to an analysis process)


class _unique:
    """Documents with docids not seen before; counts (keep-first) or refuses (error) the others."""

    def __init__(self, docs: Iterable[Document], on_duplicate: str):
        self.docs, self.on_duplicate = iter(docs), on_duplicate
        self.seen: set[str] = set()
        self.duplicates = 0

    def __iter__(self) -> Iterator[Document]:
        return self

    def __next__(self) -> Document:
        while True:
            doc = next(self.docs)
            if doc.docid not in self.seen:
                self.seen.add(doc.docid)
                return doc
            self.duplicates += 1
            if self.on_duplicate == "error":
                raise _duplicate_error(doc.docid, len(self.seen) + self.duplicates)


def _analysed(
    docs: Iterable[Document], analyzer: Analyzer, threads: int, vocab: dict[str, int]
) -> Iterator[tuple[list[Document], Bags]]:
    """Batches of documents in corpus order with their bags of terms (ids from ``vocab``).

    With ``threads`` > 1 the analysis runs in that many processes (it is mostly Python: threads would
    share one interpreter lock); each returns its batch's bags with its own term ids and the terms it saw
    first in that batch, which get their ids here (a worker's batches arrive in the order it analysed them, and
    the terms new to the index are among those new to the worker, in order of first sight), so the index is
    byte-identical to a one-thread build, and this process maps ids with one array lookup, not a dictionary
    lookup per term. A bounded number of batches is in flight, so memory stays flat.
    """
    docs = iter(docs)
    if threads <= 1:
        mapper = TermMapper(analyzer, vocab)
        while batch := list(islice(docs, _BATCH_DOCS)):
            yield batch, term_bags(*mapper.map([d.contents() for d in batch]))
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # fork where there is one: a forkserver's start (importing numpy again) costs more than a small corpus's
    # analysis. Children only analyse text (no locks, no threads of the parent are needed there).
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    to_global: dict[int, np.ndarray] = {}  # per analysis process: its term ids -> the index's
    with ProcessPoolExecutor(threads, mp_context=ctx, initializer=_worker_init, initargs=(analyzer.config(),)) as pool:
        pending: deque = deque()
        while True:
            while len(pending) < 2 * threads:
                batch = list(islice(docs, _BATCH_DOCS))
                if not batch:
                    break
                pending.append((batch, pool.submit(_worker_bags, [d.contents() for d in batch])))
            if not pending:
                return
            batch, future = pending.popleft()
            worker, new_terms, local, tfs, distinct, doclen = future.result()
            known = to_global.get(worker, np.zeros(0, dtype=np.int64))
            if new_terms:  # the worker's next ids, in order: new terms get the index's next ids in that order
                fresh = np.fromiter(map(vocab.__getitem__, new_terms), dtype=np.int64, count=len(new_terms))
                known = to_global[worker] = np.concatenate([known, fresh])
            yield batch, (known[local], tfs, distinct, doclen)


_WORKER: TermMapper | None = None
_WORKER_SENT = 0  # how many of this process's terms the parent has been told


def _worker_init(config: dict[str, Any]) -> None:
    global _WORKER, _WORKER_SENT
    _WORKER, _WORKER_SENT = TermMapper(Analyzer.from_config(config), _TermIds()), 0


def _worker_bags(texts: list[str]) -> tuple[int, list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A batch's bags in this process's term ids, with the terms this batch added to them (in id order) and
    this process's id, so the parent can map them to the index's."""
    global _WORKER_SENT
    assert _WORKER is not None
    local, tfs, distinct, doclen = term_bags(*_WORKER.map(texts))
    names = _WORKER.vocab.names  # type: ignore[attr-defined]
    new_terms, _WORKER_SENT = names[_WORKER_SENT:], len(names)
    return os.getpid(), new_terms, local, tfs, distinct, doclen


def _duplicate_error(docid: str, position: int) -> RankstackError:
    return RankstackError(
        f"duplicate docid {docid!r} in the corpus (document #{position}); docids must be unique. "
        "Pass on_duplicate='keep-first' or 'keep-last' (CLI: --on-duplicate) to keep one copy."
    )


def _write_segment(
    root: Path, number: int, store_docs: bool, fill, keep_empty: bool = False, impact: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Write a segment beside the committed ones (aside, then renamed): its manifest entry, or None when
    ``fill(writer)`` added no documents. The entry carries ``docids`` for the caller to take out."""
    while (root / f"seg-{number:06d}").exists():  # cannot happen after collect(); never overwrite a segment
        number += 1
    name = f"seg-{number:06d}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    writer = _SegmentWriter(tmp, store_docs=store_docs, impact=impact)
    try:
        fill(writer)
        if len(writer) == 0 and not keep_empty:
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        entry = writer.close()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    entry["name"] = name
    entry["docids"] = writer.docids
    _fsync_tree(tmp)
    tmp.rename(root / name)
    return entry


def _fsync_tree(directory: Path) -> None:
    """Flush a new segment's files to disk before the manifest that names them is committed."""
    for p in directory.iterdir():
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _generation_files(manifest: dict[str, Any]) -> list[str]:
    """The paths (relative to the index) one generation reads: segment directories and tombstones."""
    out = []
    for seg in manifest.get("segments", []):
        out.append(seg["name"])
        if seg.get("deleted"):
            out.append(f"{seg['name']}/{seg['deleted']}")
    return out


def _refresh_counts(manifest: dict[str, Any]) -> dict[str, Any]:
    segs = manifest["segments"]
    manifest["counts"] = {
        "documents": sum(s["num_docs"] - s.get("num_deleted", 0) for s in segs),
        "deleted": sum(s.get("num_deleted", 0) for s in segs),
        "empty_documents": sum(s.get("num_empty", 0) for s in segs),
        "segments": len(segs),
        "postings": sum(s["num_postings"] for s in segs),
        "tokens": sum(s["num_tokens"] for s in segs),
    }
    manifest["updated"] = now()
    return manifest


def _write_index(
    path: Path,
    write_segment,
    analyzer: Analyzer,
    store_docs: bool,
    overwrite: bool,
    built_from: str | None = None,
    impact: dict[str, Any] | None = None,
) -> InvertedIndex:
    from rankstack import __version__

    with atomic_directory(path, overwrite=overwrite) as tmp:
        entry = write_segment(tmp)
        manifest = {
            "type": INDEX_TYPE,
            "format_version": FORMAT_VERSION,
            "created_by": f"rankstack {__version__}",
            "created": now(),
            "analyzer": analyzer.config(),
            "contents": "title + ' ' + text",
            "store_docs": store_docs,
            "built_from": built_from,
            "segments": [entry],
            "next_segment": 2,
            "generation": 0,
            "index_id": uuid.uuid4().hex,  # tells a rebuild in the same place from the index a handle opened
        }
        if impact is not None:
            manifest["impact"] = impact
            manifest["contents"] = "token weights (the stored text is the vectors' contents)"
        write_json_atomic(tmp / MANIFEST, _refresh_counts(manifest))
    return InvertedIndex(path)


def build_inverted_index(
    corpus: Iterable[Document] | Corpus,
    path: str | Path,
    analyzer: Analyzer | None = None,
    *,
    overwrite: bool = False,
    on_duplicate: OnDuplicate = "error",
    store_docs: bool = True,
    show_progress: bool = True,
    threads: int = 1,
) -> InvertedIndex:
    """Index ``corpus`` (streamed once) into directory ``path``, atomically.

    ``threads`` > 1 analyses documents in that many processes; the index is byte-identical to a
    one-thread build.

    The index is written into a hidden temporary sibling and renamed into place when complete; if the
    build fails or is killed, an existing index at ``path`` is left as it was. Empty documents are kept
    (they can be fetched but never match) and counted in the manifest.
    """
    analyzer = analyzer or Analyzer()
    path = Path(path)
    if on_duplicate not in ("error", "keep-first", "keep-last"):
        raise ValueError(f"on_duplicate must be 'error', 'keep-first' or 'keep-last', not {on_duplicate!r}")
    if on_duplicate == "keep-last":
        corpus = _keep_last(corpus)
        on_duplicate = "keep-first"

    def write(tmp: Path) -> dict[str, Any]:
        writer = _SegmentWriter(tmp / "seg-000001", store_docs=store_docs, background=threads > 1)
        dups = _feed(writer, corpus, analyzer, on_duplicate, show_progress, f"indexing {path.name}", threads)
        if dups:
            warnings.warn(f"{dups} documents had a docid seen before and were skipped ({on_duplicate})", stacklevel=3)
        entry = writer.close()
        if entry["num_empty"]:
            log.warning(
                "%d documents are empty (no terms after analysis); kept, but they never match", entry["num_empty"]
            )
        return entry

    return _write_index(path, write, analyzer, store_docs, overwrite, getattr(corpus, "name", None))


def build_impact_index(
    vectors: Iterable[Any] | str | Path,
    path: str | Path,
    *,
    bits: int | None = 8,
    encoder: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_duplicate: OnDuplicate = "error",
    store_docs: bool = True,
    show_progress: bool = True,
    vocabulary: Collection[str] | None = None,
) -> InvertedIndex:
    """Index sparse document vectors into directory ``path``, atomically: an *impact* index.

    ``vectors``: ``SparseVector``s or ``(docid, {token: weight})`` pairs (an encoder's output), or the path
    of a JsonVectorCollection file (``rankstack.data.vectors``). Postings carry the weights quantised to
    ``bits`` (8 by default, as Anserini quantises learned weights; ``None`` keeps float32), and a score is
    ``sum of query weight x weight``. ``encoder`` describes what made the vectors (recorded in the manifest;
    ``rankstack.sparse.Impact`` refuses a query encoder that does not match it). Stored text (for
    re-rankers) is each vector's ``contents``. Updates (``add_vectors``, ``delete``, ``merge``) work as for
    a BM25 index. ``vocabulary``: the query encoder's tokens; a document token outside it is refused (vectors
    made by another model than the one that will encode the queries), naming the document and the token.
    """
    if bits is not None and bits not in IMPACT_BITS:
        raise ValueError(f"bits must be 1..16 or None (float32 impacts), not {bits!r}")
    if on_duplicate not in ("error", "keep-first", "keep-last"):
        raise ValueError(f"on_duplicate must be 'error', 'keep-first' or 'keep-last', not {on_duplicate!r}")
    built_from = None
    if isinstance(vectors, str | Path):
        from rankstack.data.vectors import read_json_vectors

        built_from, vectors = str(vectors), read_json_vectors(vectors)
    if on_duplicate == "keep-last":
        vectors = _keep_last(map(_as_vector, vectors))
        on_duplicate = "keep-first"
    impact = {"bits": bits, "encoder": encoder}
    path = Path(path)
    if vocabulary is not None:
        vectors = _in_vocabulary(vectors, vocabulary)

    def write(tmp: Path) -> dict[str, Any]:
        writer = _SegmentWriter(tmp / "seg-000001", store_docs=store_docs, impact=impact)
        dups = _feed_vectors(writer, vectors, on_duplicate, show_progress, f"indexing {path.name}")  # type: ignore[arg-type]
        if dups:
            warnings.warn(f"{dups} documents had a docid seen before and were skipped ({on_duplicate})", stacklevel=3)
        return writer.close()

    return _write_index(path, write, Analyzer(), store_docs, overwrite, built_from, impact=impact)


def build_term_index(
    bags: Iterable[tuple[str, Mapping[str, int], Document | None]],
    path: str | Path,
    analyzer: Analyzer | None = None,
    *,
    overwrite: bool = False,
    store_docs: bool = True,
    show_progress: bool = True,
) -> InvertedIndex:
    """A BM25 index of documents given as analysed terms with their (integer) frequencies, atomically.

    For term weighting that rewrites a document's term frequencies before indexing (DeepCT-Index: each
    term's frequency becomes its predicted importance x 100): ``bags`` yields ``(docid, {term: tf},
    document or None)``, the terms already analysed by ``analyzer`` (recorded in the manifest, so queries are
    analysed alike); a document's length is the sum of its frequencies, as if it had been written out with
    each term repeated. The stored text is the document's, when given.
    """
    from tqdm.auto import tqdm

    analyzer = analyzer or Analyzer()
    path = Path(path)

    def write(tmp: Path) -> dict[str, Any]:
        writer = _SegmentWriter(tmp / "seg-000001", store_docs=store_docs)
        seen: set[str] = set()
        for docid, bag, doc in tqdm(bags, desc=f"indexing {path.name}", unit="doc", disable=not show_progress):
            if docid in seen:
                raise _duplicate_error(docid, len(seen) + 1)
            seen.add(docid)
            terms = [t for t, tf in bag.items() if tf > 0]
            tfs = [int(bag[t]) for t in terms]
            if any(not isinstance(t, str) or not t or "\n" in t for t in terms) or any(tf != bag[t] for t, tf in zip(terms, tfs, strict=True)):
                raise RankstackError(f"document {docid!r}: terms must be non-empty strings and frequencies integers")
            record = _document_record(doc) if (doc is not None and writer.store) else ({} if writer.store else None)
            writer.add(docid, terms, tfs, record)
        return writer.close()

    return _write_index(path, write, analyzer, store_docs, overwrite)


def _in_vocabulary(vectors: Iterable[Any], vocabulary: Collection[str]) -> Iterator[Any]:
    known = vocabulary if isinstance(vocabulary, set | frozenset | dict) else set(vocabulary)
    for item in vectors:
        vector = _as_vector(item)
        unknown = [t for t in vector.weights if t not in known]
        if unknown:
            raise RankstackError(
                f"document {vector.docid!r}: token {unknown[0]!r} is not in the query encoder's vocabulary "
                f"({len(unknown)} such tokens): these vectors were made with another tokenizer"
            )
        yield vector


def _keep_last(corpus: Iterable[Any]) -> list[Any]:
    """Resolve duplicates (by ``.docid``: documents or sparse vectors) to their last occurrence, keeping
    first-occurrence order (needs one pass in memory)."""
    last: dict[str, Any] = {}
    for doc in corpus:
        last[doc.docid] = doc
    return list(last.values())


def clean_index(path: str | Path) -> list[str]:
    """Remove what killed builds and updates left behind, and old generations no reader holds.

    Safe while readers and writers run: it takes the writer lock and never touches a pinned generation.
    Returns one line per thing removed or restored."""
    path = Path(path)
    done = clean_stale(path)
    if (path / MANIFEST).exists() and read_manifest(path).get("type") == INDEX_TYPE:
        with commits.writer_lock(path):
            current = read_manifest(path, INDEX_TYPE, (FORMAT_VERSION,))
            removed = commits.collect(path, current, _generation_files, force=True)
            done += [f"removed {name}" for name in removed]
    return done


def open_index(path: str | Path, verify: bool = True) -> Any:
    """Open an index directory: the manifest's ``type`` picks the class (``inverted``, ``dense`` or ``colbert``)."""
    manifest = read_manifest(path)
    kind = manifest.get("type")
    if kind == INDEX_TYPE:
        return InvertedIndex(path, verify=verify)
    from rankstack.index import tokens, vectors  # not before they are needed: vectors loads compiled kernels

    if kind == vectors.INDEX_TYPE:
        return vectors.VectorIndex(path, verify=verify)
    if kind == tokens.INDEX_TYPE:
        return tokens.TokenIndex(path, verify=verify)
    raise IndexFormatError(
        f"{path}: unknown index type {kind!r}; this rankstack opens "
        f"{INDEX_TYPE!r}, {vectors.INDEX_TYPE!r} and {tokens.INDEX_TYPE!r}"
    )
