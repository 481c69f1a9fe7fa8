"""Scorers: anything that scores a query against a list of document texts, for denoising and distillation.

A scorer is a plain callable ``(query, [doc texts]) -> scores``, or a pair model: anything with
``score_pairs(queries, docs)``, such as a ``CrossEncoder`` or ``MonoT5``, which ``score_pools`` hands every pair in
one call so its batching spans queries. RocketQA's denoising and MarginMSE's teacher only need that;
``BiEncoderScorer`` makes one of a bi-encoder (the starting model, or a bigger one as teacher).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from rankstack.dense.encoder import BiEncoder
from rankstack.train import _views

Scorer = Callable[[str, Sequence[str]], "Sequence[float] | np.ndarray"]


@runtime_checkable
class PairModel(Protocol):
    """A model that scores (query, document text) pairs in batches: a cross-encoder, monoT5, ..."""

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> Sequence[float] | np.ndarray: ...


class BiEncoderScorer:
    """Inner products of a bi-encoder's query and document vectors, with document vectors cached by text.

    Denoising scores the same documents for many queries, so each text is encoded once; ``add`` primes the
    cache with vectors already computed (e.g. the corpus encoded for evaluation). ``max_length`` truncates
    documents (default: the encoder's own limit).
    """

    def __init__(self, encoder: BiEncoder, max_length: int | None = None):
        self.encoder = encoder
        self._doc = _views.with_max_length(encoder.doc, max_length)
        self._cache: dict[str, np.ndarray] = {}

    def add(self, texts: Iterable[str], vectors: np.ndarray) -> None:
        """Remember ``vectors[i]`` as the vector of ``texts[i]``."""
        for text, vec in zip(texts, vectors, strict=True):
            self._cache[text] = vec

    def __call__(self, query: str, docs: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(d for d in docs if d not in self._cache))
        if missing:
            self.add(missing, _views.encode(self._doc, missing))
        q = self.encoder.encode_queries([query])[0]
        if not docs:
            return np.zeros(0, dtype=np.float32)
        return np.stack([self._cache[d] for d in docs]) @ q


def score_pools(
    queries: Mapping[str, str],
    positives: Mapping[str, Iterable[str]],
    negatives: Mapping[str, Sequence[str]],
    texts: Mapping[str, str],
    scorer: Scorer | PairModel,
) -> dict[str, dict[str, float]]:
    """qid -> docid -> score, for every query's positives and hard-negative pool.

    These are a teacher's scores for MarginMSE (``TrainingSet.teacher``) and what denoising compares. A callable
    scorer is called once per query; a pair model (``score_pairs``) once with every pair.
    """
    pools = {}
    for qid in queries:
        docids = list(dict.fromkeys([*positives.get(qid, ()), *negatives.get(qid, ())]))
        pools[qid] = [d for d in docids if d in texts]
    if isinstance(scorer, PairModel):
        pairs = [(qid, d) for qid, docids in pools.items() for d in docids]
        flat = np.asarray(scorer.score_pairs([queries[q] for q, _ in pairs], [texts[d] for _, d in pairs]), np.float64)
        if flat.shape != (len(pairs),):
            raise ValueError(f"score_pairs returned {flat.size} scores for {len(pairs)} pairs")
        out: dict[str, dict[str, float]] = {qid: {} for qid in pools}
        for (qid, docid), score in zip(pairs, flat.tolist(), strict=True):
            out[qid][docid] = score
        return out
    out = {}
    for qid, docids in pools.items():
        scores = np.asarray(scorer(queries[qid], [texts[d] for d in docids]), dtype=np.float64)  # type: ignore[operator]
        if scores.shape != (len(docids),):
            raise ValueError(f"scorer returned {scores.size} scores for {len(docids)} documents (query {qid!r})")
        out[qid] = dict(zip(docids, scores.tolist(), strict=True))
    return out
