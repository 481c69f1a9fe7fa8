"""MaxSim re-ranking of any first stage's candidates, with no token index (PyLate's ``rank``).

``bm25 % 200 >> ColBERTReranker(model, docs=index)`` encodes each candidate's text with the ColBERT
document encoder on the fly and scores it by MaxSim against the query's vectors. Each distinct query and
each distinct document text is encoded once per call, and scores are cached by (model, query, docid) like
every pointwise re-ranker's, so a re-run pipeline costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence

import numpy as np

from rankstack.late.colbert import ColBERTEncoder
from rankstack.late.interaction import maxsim
from rankstack.rerank.base import Missing, PointwiseReranker
from rankstack.rerank.texts import DocSource


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
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress, cache=cache)
        self.encoder = model if isinstance(model, ColBERTEncoder) else ColBERTEncoder(model)

    @property
    def cache_key(self) -> Hashable:
        return ("colbert", self.encoder.fingerprint)

    def __repr__(self) -> str:
        return f"ColBERTReranker({self.encoder.name!r})"

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        qtexts = list(dict.fromkeys(queries))
        dtexts = list(dict.fromkeys(docs))
        qvecs = dict(zip(qtexts, self.encoder.encode_queries(qtexts), strict=True))
        dvecs = dict(zip(dtexts, self.encoder.encode_docs(dtexts, self.show_progress), strict=True))
        return np.array([maxsim(qvecs[q], dvecs[d]) for q, d in zip(queries, docs, strict=True)], dtype=np.float64)
