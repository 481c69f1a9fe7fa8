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
index; queries then run the numba top-k kernels in ``topk.py`` (MaxScore by default).
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

import numba
import numpy as np

from rankstack.index.inverted import NORM_DECODE_TABLE, InvertedIndex, Segment
from rankstack.pipeline import Stage, as_queries
from rankstack.sparse import topk
from rankstack.types import Queries, Ranking

log = logging.getLogger(__name__)

Algorithm = Literal["maxscore", "exhaustive"]


def lucene_idf(df: np.ndarray | int, num_docs: int) -> np.ndarray:
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


class _SegmentImpacts:
    """A segment's postings turned into BM25 impacts for one (k1, b, avgdl)."""

    def __init__(self, seg: Segment, k1: float, b: float, avgdl: float):
        length = NORM_DECODE_TABLE.astype(np.float32)
        k1f, bf, avg = np.float32(k1), np.float32(b), np.float32(avgdl if avgdl > 0 else 1.0)
        with np.errstate(divide="ignore"):  # k1 = 0 (or an empty document with b = 1): tf saturates at once
            ninv = (np.float32(1.0) / (k1f * ((np.float32(1.0) - bf) + bf * length / avg))).astype(np.float32)
        tf = np.asarray(seg.post_tfs, dtype=np.float32)
        s = tf * ninv[np.asarray(seg.norms)[np.asarray(seg.post_docs)]]
        imps = (np.float32(1.0) - np.float32(1.0) / (np.float32(1.0) + s)).astype(np.float32)
        if seg.entry.get("num_deleted"):
            imps[seg.deleted[np.asarray(seg.post_docs)]] = 0.0  # deleted documents never score above zero
        self.imps = imps
        self.docs = np.asarray(seg.post_docs)
        self.offsets = np.asarray(seg.post_offsets)
        self.max_impact = topk.block_max(imps, self.offsets)


def _impacts(index: InvertedIndex, k1: float, b: float) -> list[_SegmentImpacts]:
    cache = index.__dict__.setdefault("_bm25_impacts", {})
    key = (float(k1), float(b))
    if key not in cache:
        cache[key] = [_SegmentImpacts(s, k1, b, index.stats.avgdl) for s in index.segments]
    return cache[key]


class BM25(Stage):
    """Retrieve the top ``k`` documents per query by Lucene BM25.

    ``algorithm="maxscore"`` prunes with MaxScore and returns exactly the ranking of
    ``"exhaustive"`` (tested). ``num_threads`` caps the threads used for a batch of queries
    (default: all cores). Given a Ranking, it retrieves afresh for that ranking's queries.
    """

    def __init__(
        self,
        index: InvertedIndex,
        k1: float = 0.9,
        b: float = 0.4,
        k: int = 1000,
        algorithm: Algorithm = "maxscore",
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
        extra = "" if self.algorithm == "maxscore" else f", algorithm={self.algorithm!r}"
        return f"{self.index!r}.bm25(k1={self.k1}, b={self.b}, k={self.k}{extra})"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        analyzer = self.index.analyzer
        bags = []
        empty = []
        for qid, text in queries:
            terms = analyzer(text or "")
            if not terms:
                empty.append(qid)
            bags.append(Counter(terms))
        if empty:
            warnings.warn(
                f"{len(empty)} queries have no terms after analysis and return no documents (qids: {empty[:10]})",
                stacklevel=2,
            )
        return self.search_weighted(queries.qid.tolist(), bags, queries=queries)

    def search_weighted(
        self, qids: Sequence[str], bags: Sequence[Mapping[str, float]], queries: Queries | None = None
    ) -> Ranking:
        """Search analysed queries given as ``{term: weight}`` (weights act as Lucene query boosts)."""
        index, k = self.index, self.k
        stats = index.stats
        segments = index.segments
        impacts = _impacts(index, self.k1, self.b)
        # global, per-term weights: boost * idf, idf over live documents of all segments
        weights: list[dict[str, float]] = []
        df_cache: dict[str, int] = {}
        for bag in bags:
            w = {}
            for term, boost in bag.items():
                if term not in df_cache:
                    df_cache[term] = index.df(term)
                df = df_cache[term]
                if df > 0 and boost > 0:
                    w[term] = float(np.float32(boost) * lucene_idf(df, stats.num_docs))
            weights.append(w)
        per_segment = []
        for seg, imp in zip(segments, impacts, strict=True):
            per_segment.append(self._search_segment(seg, imp, weights, k))
        return self._merge(qids, per_segment, queries)

    def _search_segment(self, seg: Segment, imp: _SegmentImpacts, weights: list[dict[str, float]], k: int):
        ids = seg.term_ids
        q_offsets = [0]
        starts, ends, ws, ubs = [], [], [], []
        for w in weights:
            for term, weight in w.items():
                t = ids.get(term)
                if t is None:
                    continue
                starts.append(imp.offsets[t])
                ends.append(imp.offsets[t + 1])
                ws.append(weight)
                ubs.append(weight * float(imp.max_impact[t]))
            q_offsets.append(len(starts))
        threads = numba.get_num_threads()
        if self.num_threads:
            numba.set_num_threads(min(self.num_threads, numba.config.NUMBA_NUM_THREADS))
        try:
            return topk.batch_topk(
                imp.docs,
                imp.imps,
                np.asarray(q_offsets, dtype=np.int64),
                np.asarray(starts, dtype=np.int64),
                np.asarray(ends, dtype=np.int64),
                np.asarray(ws, dtype=np.float64),
                np.asarray(ubs, dtype=np.float64),
                seg.num_docs,
                max(1, min(k, seg.num_docs)),
                self.algorithm == "maxscore",
            )
        finally:
            numba.set_num_threads(threads)

    def _merge(self, qids: Sequence[str], per_segment, queries: Queries | None) -> Ranking:
        segments = self.index.segments
        k = self.k
        if len(segments) == 1:
            docs, scores, counts = per_segment[0]
            mask = np.arange(docs.shape[1])[None, :] < counts[:, None]
            qid_col = np.repeat(np.asarray(qids, dtype=object), counts)
            local = docs[mask]
            docid_col = segments[0].docids[local] if len(local) else np.zeros(0, dtype=object)
            rank = np.concatenate([np.arange(1, c + 1) for c in counts]) if len(counts) else np.zeros(0, np.int64)
            return Ranking(qid_col, docid_col, scores[mask], rank, queries=queries, presorted=True)
        bases = self.index._segment_bases
        q_all, s_all, o_all, seg_all = [], [], [], []
        for si, (docs, scores, counts) in enumerate(per_segment):
            mask = np.arange(docs.shape[1])[None, :] < counts[:, None]
            q_all.append(np.repeat(np.arange(len(qids)), counts))
            s_all.append(scores[mask])
            o_all.append(docs[mask] + bases[si])
            seg_all.append(np.full(int(counts.sum()), si))
        q = np.concatenate(q_all)
        s = np.concatenate(s_all)
        o = np.concatenate(o_all)
        sg = np.concatenate(seg_all)
        order = np.lexsort((o, -s, q))
        q, s, o, sg = q[order], s[order], o[order], sg[order]
        starts = np.searchsorted(q, np.arange(len(qids)))
        rank = np.arange(len(q)) - starts[q] + 1
        keep = rank <= k
        q, s, o, sg, rank = q[keep], s[keep], o[keep], sg[keep], rank[keep]
        docid_col = np.empty(len(o), dtype=object)
        for si, seg in enumerate(segments):
            m = sg == si
            if m.any():
                docid_col[m] = seg.docids[o[m] - bases[si]]
        return Ranking(np.asarray(qids, dtype=object)[q], docid_col, s, rank, queries=queries, presorted=True)
