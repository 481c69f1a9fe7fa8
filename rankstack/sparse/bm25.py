"""Lucene's BM25 as a stage, over a rankstack inverted index.

Scoring follows Lucene 9's ``BM25Similarity`` (what Pyserini runs), so effectiveness matches Pyserini:

* idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)), N = live documents with at least one term;
* a document's length is its token count after analysis, stored in one byte with Lucene's lossy
  ``SmallFloat.intToByte4`` encoding and decoded for scoring (exact up to 24 tokens, then 4
  significant bits); avgdl is exact: total tokens / N;
* term score = w - w / (1 + tf / (k1 * (1 - b + b * dl / avgdl))), w = query-term count * idf. This is
  Lucene's form without the constant (k1 + 1) factor, which does not change rankings;
* a repeated query term counts once with its count as boost, as Anserini's bag-of-words queries do.

Per-posting impacts ``1 - 1/(1 + tf*ninv)`` are computed once per (k1, b) with numpy and cached on the
index; queries then run the numba top-k kernels in ``topk.py``: batches in parallel chunks, a few queries
on the calling thread with scratch arrays kept per thread. A process's first few small batches over a
small collection are answered by ``topk_numpy.py`` instead (the same results), so a one-off search never
waits for numba to load; after ``_NUMPY_CALLS`` of them the process is evidently long-lived and loads the
compiled kernels.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Literal

import numpy as np

from rankstack import jit
from rankstack.index.inverted import FEW_TEXTS, NORM_DECODE_TABLE, InvertedIndex, Segment
from rankstack.pipeline import Stage, as_queries, refuse_image_queries
from rankstack.sparse import topk_numpy
from rankstack.types import Queries, Ranking

log = logging.getLogger(__name__)

Algorithm = Literal["maxscore", "exhaustive"]
_STRIDE = np.int64(1) << np.int64(32)  # packs (query row, term id) into one int64 for np.unique
FEW_QUERIES = FEW_TEXTS  # batches up to this size run on the calling thread
_NUMPY_MAX_DOCS = 1 << 20  # numpy's accumulator is dense: beyond this, even one query is cheaper compiled
_NUMPY_CALLS = 16  # small batches a process answers with numpy before it loads the compiled kernels
_QUERIES_PER_CHUNK = 32  # a parallel batch has at least this many queries per chunk (each chunk allocates scratch)
_SCRATCH_MAX_DOCS = 1 << 22  # per-thread scratch is kept for segments up to this size (36 bytes a document)
_state = {"numpy_calls": 0, "kernels": None}
_NO_MAP = np.zeros(0, dtype=np.int64)  # one_query_topk's "segment-local ids are the global ones"


def _kernels() -> ModuleType:
    """The compiled top-k kernels, loaded on first need (saying so if numba has to compile them)."""
    if _state["kernels"] is None:
        from rankstack.sparse import topk

        jit.announce(topk.batch_topk, topk.serial_topk, topk.serial_topk_terms, topk.one_query_topk, topk.batch_terms)
        _state["kernels"] = topk
    return _state["kernels"]


def _numpy_first(num_docs: int, count: bool = True) -> bool:
    """Whether a small batch over a segment this size goes to numpy (see the module docstring); ``count``:
    it does (a call that only asks leaves the count of numpy calls alone)."""
    if _state["kernels"] is not None or num_docs > _NUMPY_MAX_DOCS or _state["numpy_calls"] >= _NUMPY_CALLS:
        return False
    _state["numpy_calls"] += count
    return True


def lucene_idf(df: np.ndarray | int, num_docs: int) -> np.ndarray:
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


class SegmentImpacts:
    """A segment's postings with one float32 impact each, ready for the top-k kernels: BM25's for one
    (k1, b, avgdl) (``bm25``), or an impact index's stored impacts."""

    @classmethod
    def bm25(cls, seg: Segment, k1: float, b: float, avgdl: float) -> SegmentImpacts:
        length = NORM_DECODE_TABLE.astype(np.float32)
        k1f, bf, avg = np.float32(k1), np.float32(b), np.float32(avgdl if avgdl > 0 else 1.0)
        with np.errstate(divide="ignore"):  # k1 = 0 (or an empty document with b = 1): tf saturates at once
            ninv = (np.float32(1.0) / (k1f * ((np.float32(1.0) - bf) + bf * length / avg))).astype(np.float32)
        tf = np.asarray(seg.post_tfs, dtype=np.float32)
        s = tf * ninv[np.asarray(seg.norms)[np.asarray(seg.post_docs)]]
        return cls(seg, (np.float32(1.0) - np.float32(1.0) / (np.float32(1.0) + s)).astype(np.float32))

    def __init__(self, seg: Segment, imps: np.ndarray):
        if seg.entry.get("num_deleted"):
            imps[seg.deleted[np.asarray(seg.post_docs)]] = 0.0  # deleted documents never score above zero
        self.imps = imps
        self.docs = np.asarray(seg.post_docs)
        self.offsets = np.asarray(seg.post_offsets)
        self.max_impact = topk_numpy.term_maxima(imps, self.offsets)
        self.num_docs = seg.num_docs
        self._scratch = threading.local()

    def scratch(self, k: int, maxscore: bool, threads: int = 0) -> tuple[np.ndarray, ...]:
        """This thread's scratch arrays for ``topk.serial_topk``, or with ``threads`` one row per numba
        thread for ``topk.batch_topk``: kept for small and medium segments, so a query (or a small batch)
        allocates and zeroes nothing collection-sized."""
        topk = _kernels()

        def fresh() -> tuple[np.ndarray, ...]:
            if threads:
                return topk.thread_scratch(threads, self.num_docs, k, maxscore)
            return topk.scratch(self.num_docs, k, maxscore)

        if max(1, threads) * self.num_docs > _SCRATCH_MAX_DOCS:
            return fresh()
        key = ("maxscore" if maxscore else "exhaustive") + (f"-{threads}" if threads else "")
        arrays = getattr(self._scratch, key, None)
        if arrays is None or arrays[1].shape[-1] < (k + 1 if maxscore else self.num_docs + 1):
            arrays = fresh()
            setattr(self._scratch, key, arrays)
        return arrays


def _warn_empty(qids: list[str], stacklevel: int = 3) -> None:
    warnings.warn(
        f"{len(qids)} queries have no terms after analysis and return no documents (qids: {qids[:10]})",
        stacklevel=stacklevel,
    )


def _idf_table(index: InvertedIndex) -> np.ndarray:
    """``lucene_idf`` of every term of the lexicon, computed once per index."""
    cache = index.__dict__.setdefault("_bm25_impacts", {})
    if "idf" not in cache:
        cache["idf"] = lucene_idf(index.lexicon.df, index.stats.num_docs)
    return cache["idf"]


def _idf_table64(index: InvertedIndex) -> np.ndarray:
    """The idf table widened to float64 once, for the weights of single-occurrence query terms."""
    cache = index.__dict__.setdefault("_bm25_impacts", {})
    if "idf64" not in cache:
        cache["idf64"] = _idf_table(index).astype(np.float64)
    return cache["idf64"]


def _impacts(index: InvertedIndex, k1: float, b: float, avgdl: float | None = None) -> list[SegmentImpacts]:
    """Each segment's BM25 impacts for (k1, b), with the index's average length or a given one (a shard of
    a larger collection scores with the collection's)."""
    cache = index.__dict__.setdefault("_bm25_impacts", {})
    key = (float(k1), float(b)) if avgdl is None else (float(k1), float(b), float(avgdl))
    if key not in cache:
        avg = index.stats.avgdl if avgdl is None else avgdl
        cache[key] = [SegmentImpacts.bm25(s, k1, b, avg) for s in index.segments]
    return cache[key]


def _segment_arguments(index: InvertedIndex, k1: float, b: float) -> tuple[Segment, SegmentImpacts, tuple]:
    """A one-segment index's arrays that ``topk.one_query_topk`` takes before a query's own (``[4:]``: idf, df
    and the local ids, as ``topk.batch_terms`` takes them), gathered once per (k1, b)."""
    cache = index.__dict__.setdefault("_bm25_impacts", {})
    key = ("one query", float(k1), float(b))
    if key not in cache:
        seg, imp, to_local = index.segments[0], _impacts(index, k1, b)[0], index.lexicon.local[0]
        fixed = (imp.docs, imp.imps, imp.offsets, imp.max_impact, _idf_table(index), index.lexicon.df)
        cache[key] = (seg, imp, (*fixed, _NO_MAP if to_local is None else to_local))
    return cache[key]


class PostingsSearch(Stage):
    """What BM25 and impact retrieval share: the top-k kernels over each segment's postings and the merge
    of the segments' results into one ranking (``index``, ``k``, ``algorithm``, ``num_threads``)."""

    index: InvertedIndex
    k: int
    algorithm: Algorithm
    num_threads: int | None

    def _run_kernel(self, seg: Segment, imp: SegmentImpacts, q_offsets, local, weights):
        nq = len(q_offsets) - 1
        k = max(1, min(self.k, seg.num_docs))
        maxscore = self.algorithm == "maxscore"
        if nq <= FEW_QUERIES or self.num_threads == 1:
            if nq <= FEW_QUERIES and _numpy_first(seg.num_docs):
                starts, ends = imp.offsets[local], imp.offsets[local + 1]
                return topk_numpy.few_topk(imp.docs, imp.imps, q_offsets, starts, ends, weights, seg.num_docs, k)
            return _kernels().serial_topk_terms(
                imp.docs, imp.imps, imp.offsets, imp.max_impact, q_offsets, local, weights, k, maxscore,
                imp.scratch(k, maxscore),
            )  # fmt: skip
        starts, ends = imp.offsets[local], imp.offsets[local + 1]
        return self._run_batch(seg, imp, q_offsets, starts, ends, weights, weights * imp.max_impact[local])

    def _run_batch(self, seg: Segment, imp: SegmentImpacts, q_offsets, starts, ends, weights, ubs):
        """The compiled top k of a batch given each term's postings range, weight and score bound: on the
        calling thread when one thread is asked for, else in parallel chunks."""
        import numba

        nq = len(q_offsets) - 1
        k = max(1, min(self.k, seg.num_docs))
        maxscore = self.algorithm == "maxscore"
        topk = _kernels()
        if self.num_threads == 1:
            return topk.serial_topk(
                imp.docs, imp.imps, q_offsets, starts, ends, weights, ubs, k, maxscore, *imp.scratch(k, maxscore)
            )
        threads = numba.get_num_threads()
        if self.num_threads:
            numba.set_num_threads(min(self.num_threads, numba.config.NUMBA_NUM_THREADS))
        try:
            # chunks balance the threads' load, but each allocates a collection-sized scratch: a small batch
            # gets one chunk per thread
            workers = numba.get_num_threads()
            chunks = min(4 * workers, max(workers, nq // _QUERIES_PER_CHUNK))
            work = imp.scratch(k, maxscore, threads=numba.config.NUMBA_NUM_THREADS)  # thread ids < this
            return topk.batch_topk(imp.docs, imp.imps, q_offsets, starts, ends, weights, ubs, k, maxscore, chunks, work)
        finally:
            numba.set_num_threads(threads)

    def _merge(self, qids: Sequence[str], per_segment, queries: Queries | None) -> Ranking:
        segments = self.index.segments
        qid_array = np.asarray(qids, dtype=object)
        if len(segments) == 1:
            docs, scores, counts = per_segment[0]
            starts = np.cumsum(counts) - counts
            rank = np.arange(len(docs)) - np.repeat(starts, counts) + 1
            docid_col = segments[0].docids[docs] if len(docs) else np.zeros(0, dtype=object)
            return Ranking(np.repeat(qid_array, counts), docid_col, scores, rank, queries=queries, presorted=True)
        bases = self.index._segment_bases
        q = np.concatenate([np.repeat(np.arange(len(qids)), c) for _, _, c in per_segment])
        s = np.concatenate([sc for _, sc, _ in per_segment])
        o = np.concatenate([d + bases[si] for si, (d, _, _) in enumerate(per_segment)])
        sg = np.concatenate([np.full(len(d), si) for si, (d, _, _) in enumerate(per_segment)])
        order = np.lexsort((o, -s, q))  # ties break by global ordinal, as a single merged segment would
        q, s, o, sg = q[order], s[order], o[order], sg[order]
        starts = np.searchsorted(q, np.arange(len(qids)))
        rank = np.arange(len(q)) - starts[q] + 1
        keep = rank <= self.k
        q, s, o, sg, rank = q[keep], s[keep], o[keep], sg[keep], rank[keep]
        docid_col = np.empty(len(o), dtype=object)
        for si, seg in enumerate(segments):
            m = sg == si
            if m.any():
                docid_col[m] = seg.docids[o[m] - bases[si]]
        return Ranking(qid_array[q], docid_col, s, rank, queries=queries, presorted=True)


class BM25(PostingsSearch):
    """Retrieve the top ``k`` documents per query by Lucene BM25.

    ``algorithm="exhaustive"`` (the default) accumulates every posting of the query terms into a dense
    array and radix-selects the top k; ``"maxscore"`` prunes with MaxScore and returns exactly the same
    ranking (tested). On the collections benchmarked so far (SciFact; a 1M-document Zipf corpus) the
    accumulator is faster at every k (``benchmarks/README.md``), so pruning is opt-in. ``num_threads`` caps the threads used for a batch of queries
    (default: all cores). Given a Ranking, it retrieves afresh for that ranking's queries.
    """

    def __init__(
        self,
        index: InvertedIndex,
        k1: float = 0.9,
        b: float = 0.4,
        k: int = 1000,
        algorithm: Algorithm = "exhaustive",
        num_threads: int | None = None,
    ):
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1 (got k1={k1}, b={b})")
        if algorithm not in ("maxscore", "exhaustive"):
            raise ValueError(f"algorithm must be 'maxscore' or 'exhaustive', not {algorithm!r}")
        self.index, self.k1, self.b, self.k = index, float(k1), float(b), int(k)
        self.algorithm, self.num_threads = algorithm, num_threads

    def with_cutoff(self, k: int) -> BM25:
        return BM25(self.index, self.k1, self.b, min(k, self.k), self.algorithm, self.num_threads)

    def __repr__(self) -> str:
        extra = "" if self.algorithm == "exhaustive" else f", algorithm={self.algorithm!r}"
        return f"{self.index!r}.bm25(k1={self.k1}, b={self.b}, k={self.k}{extra})"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        refuse_image_queries(queries, f"the BM25 index {self.index.path}")
        if len(queries) <= FEW_QUERIES and len(self.index.segments) == 1:
            return self._few(queries)
        q_rows, gids, has_term = self.index.query_term_rows(queries.text.tolist())
        if not has_term.all():
            _warn_empty(queries.qid[~has_term].tolist())
        if len(self.index.segments) == 1:  # the usual case: from analysed terms to the ranking in three calls
            seg, imp, fixed = _segment_arguments(self.index, self.k1, self.b)
            topk = _kernels()
            prepared = topk.batch_terms(q_rows, gids, len(queries), *fixed[4:], imp.offsets, imp.max_impact)
            docs, scores, counts = self._run_batch(seg, imp, *prepared)
            rows, ranks = topk.ranked_rows(counts)
            return Ranking._trusted(queries.qid[rows], seg.docids[docs], scores, ranks, queries)
        # a repeated query term counts once, with its count as boost (Anserini's bag of words)
        pairs, counts = np.unique(q_rows * _STRIDE + gids, return_counts=True)
        return self._search(queries.qid.tolist(), pairs // _STRIDE, pairs % _STRIDE, counts.astype(np.float32), queries)

    def _few(self, queries: Queries) -> Ranking:
        """``__call__`` for a few queries over one segment, in as few numpy calls as possible: at one
        query per call (a server's load) the fixed cost of each array operation is most of the time."""
        index = self.index
        lex, df = index.lexicon, index.lexicon.df
        qids = queries.qid.tolist()
        if len(qids) == 1 and not _numpy_first(index.segments[0].num_docs, count=False):
            return self._one(qids[0], queries)
        deletions = bool(index.manifest["counts"]["deleted"])
        offsets, gids, counts, empty = [0], [], [], []
        for qid, text in zip(qids, queries.text.tolist(), strict=True):
            ids, any_term = index.query_term_ids(text) if text else ([], False)
            if not any_term:
                empty.append(qid)
            if len(ids) > 1:  # a bag of words, in term-id order, as np.unique orders the batch path's terms
                bag: dict[int, int] = {}
                for gid in ids:
                    bag[gid] = bag.get(gid, 0) + 1
                pairs = sorted(bag.items())
            else:
                pairs = [(gid, 1) for gid in ids]
            for gid, count in pairs:
                if not deletions or df[gid] > 0:  # terms only in deleted documents
                    gids.append(gid)
                    counts.append(count)
            offsets.append(len(gids))
        if empty:
            _warn_empty(empty, stacklevel=4)
        g = np.array(gids, dtype=np.int64)
        if all(c == 1 for c in counts):  # the usual case: a term's weight is its idf (float32, widened)
            weights = _idf_table64(index)[g]
        else:
            weights = (np.array(counts, dtype=np.float32) * _idf_table(index)[g]).astype(np.float64)
        seg, imp, to_local = index.segments[0], _impacts(index, self.k1, self.b)[0], lex.local[0]
        if to_local is not None:
            g = to_local[g]
        result = self._run_kernel(seg, imp, np.array(offsets, dtype=np.int64), g, weights)
        if len(qids) == 1:  # one query, one segment: the ranking's columns directly
            docs, scores, _ = result
            n = len(docs)
            return Ranking._trusted(qids[0], seg.docids[docs], scores, np.arange(1, n + 1), queries)
        return self._merge(qids, [result], queries)

    def _one(self, qid: str, queries: Queries) -> Ranking:
        """``_few`` for one query, compiled from term ids to the ranking's columns (``topk.one_query_topk``)."""
        index = self.index
        text = queries.text[0]
        ids, any_term = index.query_term_ids(text) if text else ([], False)
        if not any_term:
            _warn_empty([qid], stacklevel=5)
        seg, imp, fixed = _segment_arguments(index, self.k1, self.b)
        k = max(1, min(self.k, seg.num_docs))
        maxscore = self.algorithm == "maxscore"
        docs, scores, ranks = _kernels().one_query_topk(
            *fixed, np.array(ids, dtype=np.int64), k, maxscore, imp.scratch(k, maxscore)
        )
        return Ranking._trusted(qid, seg.docids[docs], scores, ranks, queries)

    def search_weighted(
        self, qids: Sequence[str], bags: Sequence[Mapping[str, float]], queries: Queries | None = None
    ) -> Ranking:
        """Search analysed queries given as ``{term: weight}`` (weights act as Lucene query boosts)."""
        lookup = self.index.lexicon.ids.get
        rows, gids, boosts = [], [], []
        for row, bag in enumerate(bags):
            for term, boost in bag.items():
                gid = lookup(term)
                if gid is not None and boost > 0:
                    rows.append(row)
                    gids.append(gid)
                    boosts.append(boost)
        return self._search(
            qids, np.asarray(rows, np.int64), np.asarray(gids, np.int64), np.asarray(boosts, np.float32), queries
        )

    def _search(self, qids, rows: np.ndarray, gids: np.ndarray, boosts: np.ndarray, queries) -> Ranking:
        """Rows of (query row, global term id, boost), sorted by query row: the batch as arrays."""
        index = self.index
        weights = boosts * _idf_table(index)[gids]
        return self._scored(qids, rows, gids, weights, queries, _impacts(index, self.k1, self.b))

    def search_terms(
        self, qids: Sequence[str], rows: np.ndarray, gids: np.ndarray, weights: np.ndarray, avgdl: float,
        queries: Queries | None = None,
    ) -> Ranking:  # fmt: skip
        """Search analysed queries whose term weights (boost x idf) and average document length come from
        outside: a shard of a larger collection scores with the whole collection's statistics, so its scores
        equal those of one index over every document (``rankstack.scale``). Rows of (query row, this index's
        global term id, weight), sorted by query row; within a query, terms are accumulated in the order given."""
        rows, gids = np.asarray(rows, dtype=np.int64), np.asarray(gids, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        return self._scored(qids, rows, gids, weights, queries, _impacts(self.index, self.k1, self.b, avgdl))

    def _scored(self, qids, rows, gids, weights, queries, impacts: list[SegmentImpacts]) -> Ranking:
        index = self.index
        lex = index.lexicon
        keep = lex.df[gids] > 0  # terms only in deleted documents
        rows, gids, weights = rows[keep], gids[keep], weights[keep]
        per_segment = []
        for seg, imp, to_local in zip(index.segments, impacts, lex.local, strict=True):
            local = gids if to_local is None else to_local[gids]
            here = local >= 0
            local, seg_rows, w = local[here], rows[here], weights[here]
            q_offsets = np.zeros(len(qids) + 1, dtype=np.int64)
            np.cumsum(np.bincount(seg_rows, minlength=len(qids)), out=q_offsets[1:])
            per_segment.append(self._run_kernel(seg, imp, q_offsets, local, w.astype(np.float64)))
        return self._merge(qids, per_segment, queries)
