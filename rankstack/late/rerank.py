"""MaxSim re-ranking of any first stage's candidates, with no token index (PyLate's ``rank``).

``bm25 % 200 >> ColBERTReranker(model, docs=index)`` encodes each candidate's text with the ColBERT
document encoder on the fly and scores it by MaxSim against the query's vectors. Each distinct query and
each distinct document text is encoded once per call, and scores are cached by (model, query, docid) like
every pointwise re-ranker's, so a re-run pipeline costs nothing. Given ``index=`` (a token index built by
the same model), documents it holds are scored from their stored vectors instead of being encoded again.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence

import numpy as np

from rankstack.index.tokens import TokenIndex
from rankstack.late.colbert import ColBERTEncoder
from rankstack.late.interaction import maxsim, maxsim_packed
from rankstack.rerank.base import Missing, PointwiseReranker
from rankstack.rerank.texts import DocSource
from rankstack.types import Ranking


class ColBERTReranker(PointwiseReranker):
    """Re-rank by ColBERT MaxSim. ``model``: a ``ColBERTEncoder`` or anything it loads (directory, Hub id)."""

    def __init__(
        self,
        model: ColBERTEncoder | str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
        index: TokenIndex | None = None,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress, cache=cache)
        self.encoder = model if isinstance(model, ColBERTEncoder) else ColBERTEncoder(model)
        self.index = index
        if index is not None:
            from rankstack.late.retriever import check_encoder

            check_encoder(index, self.encoder)

    @property
    def cache_key(self) -> Hashable:
        return ("colbert", self.encoder.fingerprint)

    def __repr__(self) -> str:
        return f"ColBERTReranker({self.encoder.name!r})"

    def rescore(self, ranking: Ranking, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        if self.index is None:
            return super().rescore(ranking, queries, texts)
        lookup = self.index._positions
        positions = np.array([lookup.get(d, -1) for d in ranking.docid.tolist()], dtype=np.int64)
        scores = np.zeros(len(ranking), dtype=np.float64)
        stored = positions >= 0
        distinct = list(dict.fromkeys(queries))
        vectors = dict(zip(distinct, self.encoder.encode_queries(distinct), strict=True))
        number = {q: i for i, q in enumerate(distinct)}
        query_of = np.array([number[q] for q in queries], dtype=np.int64)
        for i, q in enumerate(distinct):
            rows = np.flatnonzero(stored & (query_of == i))
            if len(rows):
                docs, offsets = self.index.doc_vectors(positions[rows])
                scores[rows] = maxsim_packed(vectors[q][None], docs, offsets)[0]
        rest = np.flatnonzero(~stored)
        if len(rest):
            scores[rest] = super().rescore(ranking._take(~stored), [queries[i] for i in rest], [texts[i] for i in rest])
        return scores

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        qtexts = list(dict.fromkeys(queries))
        dtexts = list(dict.fromkeys(docs))
        qvecs = dict(zip(qtexts, self.encoder.encode_queries(qtexts), strict=True))
        dvecs = dict(zip(dtexts, self.encoder.encode_docs(dtexts, self.show_progress), strict=True))
        return np.array([maxsim(qvecs[q], dvecs[d]) for q, d in zip(queries, docs, strict=True)], dtype=np.float64)
