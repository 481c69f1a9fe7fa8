"""RM3 pseudo-relevance feedback (Abdul-Jaleel et al., TREC 2004), as Anserini implements it.

Retrieve ``fb_docs`` documents, build a relevance model from their term vectors (each L1-normalised
and weighted by the document's BM25 score), keep the ``fb_terms`` heaviest terms, and interpolate with
the original query: weight(t) = a * q(t) + (1 - a) * rm(t), both L1-normalised. Like Anserini, feedback
terms must be 2-20 characters of [a-z0-9] and occur in at most 10% of documents.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from rankstack.pipeline import Stage, as_queries
from rankstack.sparse.bm25 import BM25
from rankstack.types import Queries, Ranking

_FEEDBACK_TERM = re.compile(r"[a-z0-9]{2,20}")


class RM3(Stage):
    """Expand each query with RM3 and search again with the same BM25 retriever."""

    def __init__(
        self,
        retriever: BM25,
        fb_docs: int = 10,
        fb_terms: int = 10,
        original_weight: float = 0.5,
        max_df_ratio: float = 0.1,
    ):
        self.retriever, self.fb_docs, self.fb_terms = retriever, int(fb_docs), int(fb_terms)
        self.original_weight, self.max_df_ratio = float(original_weight), float(max_df_ratio)

    def with_cutoff(self, k: int) -> RM3:
        return RM3(self.retriever.with_cutoff(k), self.fb_docs, self.fb_terms, self.original_weight, self.max_df_ratio)

    def expand(self, queries: Queries) -> list[dict[str, float]]:
        """The weighted term bag RM3 searches with, per query."""
        index = self.retriever.index
        analyzer = index.analyzer
        first = BM25(index, self.retriever.k1, self.retriever.b, k=self.fb_docs)(queries)
        by_qid = dict(first.groups())
        n = max(index.stats.num_docs, 1)
        bags = []
        df_cache: dict[str, int] = {}
        for qid, text in queries:
            q = Counter(analyzer(text or ""))
            total = sum(q.values()) or 1
            qv = {t: c / total for t, c in q.items()}
            rm: Counter[str] = Counter()
            sl = by_qid.get(qid)
            if sl is not None:
                for docid, score in zip(first.docid[sl].tolist(), first.score[sl].tolist(), strict=True):
                    terms, tfs = self._doc_vector(docid)
                    vec = {}
                    for term, tf in zip(terms, tfs.tolist(), strict=True):
                        if not _FEEDBACK_TERM.fullmatch(term):
                            continue
                        if term not in df_cache:
                            df_cache[term] = index.df(term)
                        if df_cache[term] / n > self.max_df_ratio:
                            continue
                        vec[term] = tf
                    norm = sum(vec.values())
                    if norm > 0:
                        for term, tf in vec.items():
                            rm[term] += tf / norm * score
            top = sorted(rm.items(), key=lambda kv: (-kv[1], kv[0]))[: self.fb_terms]
            rm_total = sum(v for _, v in top) or 1.0
            a = self.original_weight
            bag = {t: a * w for t, w in qv.items()}
            for t, w in top:
                bag[t] = bag.get(t, 0.0) + (1 - a) * w / rm_total
            bags.append(bag)
        return bags

    def _doc_vector(self, docid: str) -> tuple[list[str], np.ndarray]:
        index = self.retriever.index
        si, local = index.locate(docid)
        return index.segments[si].doc_terms(local)

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        return self.retriever.search_weighted(queries.qid.tolist(), self.expand(queries), queries=queries)
