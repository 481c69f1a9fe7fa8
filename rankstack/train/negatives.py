"""Hard negatives from the model being trained (ANCE) and removal of likely false negatives (RocketQA).

BM25 negatives stop being hard once the model has learned them. ANCE (Xiong et al., 2021, "Approximate
Nearest Neighbor Negative Contrastive Learning for Dense Text Retrieval") re-encodes the corpus with the
current checkpoint every so often and takes the model's own top-ranked non-positives as the new negatives.
The deeper the mining, the more of those "negatives" are in fact relevant but unjudged; RocketQA (Qu et al.,
2021, "RocketQA: An Optimized Training Approach to Dense Passage Retrieval for Open-Domain Question
Answering") drops the negatives a stronger scorer rates as relevant before training on them.

Corpora trained on here are small (thousands of documents), so search is exact: a chunked numpy matrix
product, no approximate index to build or to be wrong.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rankstack.dense.encoder import BiEncoder
from rankstack.train import _views
from rankstack.train.scoring import Scorer, score_pools

log = logging.getLogger(__name__)


def exact_top_k(queries: np.ndarray, docs: np.ndarray, k: int, chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Row indices and scores of the ``k`` largest inner products per query, best first.

    Documents are scored ``chunk_size`` at a time and merged into a running top k, so memory stays at
    ``[queries, chunk_size + k]`` whatever the corpus size. Equal scores come out by ascending row index.
    """
    nq, k = len(queries), min(int(k), len(docs))
    best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((nq, 0), dtype=np.int64)
    for lo in range(0, len(docs), chunk_size):
        block = docs[lo : lo + chunk_size]
        scores = np.concatenate([best_s, (queries @ block.T).astype(np.float32)], axis=1)
        index = np.concatenate([best_i, np.broadcast_to(np.arange(lo, lo + len(block)), (nq, len(block)))], axis=1)
        order = np.lexsort((index, -scores), axis=1)[:, :k]
        best_s = np.take_along_axis(scores, order, axis=1)
        best_i = np.take_along_axis(index, order, axis=1)
    return best_i, best_s


def dense_negatives(
    encoder: BiEncoder,
    queries: Mapping[str, str],
    texts: Mapping[str, str],
    positives: Mapping[str, Iterable[str]],
    depth: int = 30,
    *,
    doc_max_length: int | None = None,
    query_max_length: int | None = None,
    show_progress: bool = False,
) -> dict[str, list[str]]:
    """The top ``depth`` non-positive documents of each query under ``encoder``, best first.

    Encodes every text in ``texts`` with the model as it is now (documents truncated at ``doc_max_length``),
    then searches exactly.
    """
    docids = list(texts)
    doc_enc = _views.with_max_length(encoder.doc, doc_max_length)
    query_enc = _views.with_max_length(encoder.query, query_max_length)
    doc_vecs = _views.encode(doc_enc, [texts[d] for d in docids], show_progress, desc="ANCE: encoding corpus")
    qids = list(queries)
    q_vecs = _views.encode(query_enc, [queries[q] for q in qids])
    most = max((len(set(positives.get(q, ()))) for q in qids), default=0)
    top, _ = exact_top_k(q_vecs, doc_vecs, depth + most)
    pools = {}
    for qid, row in zip(qids, top.tolist(), strict=True):
        judged = set(positives.get(qid, ()))
        pools[qid] = [docids[i] for i in row if docids[i] not in judged][:depth]
    return pools


class AnceRefresh:
    """The trainer's refresh hook for ANCE: ``refresh(encoder) -> {qid: negatives}`` mined by ``encoder``.

    Holds what mining needs (queries, corpus texts, positives, depth, lengths) so the trainer only passes
    the model. Each call logs how long it took: re-encoding the corpus is the price of ANCE.
    """

    def __init__(
        self,
        queries: Mapping[str, str],
        texts: Mapping[str, str],
        positives: Mapping[str, Iterable[str]],
        depth: int = 30,
        *,
        doc_max_length: int | None = None,
        query_max_length: int | None = None,
        show_progress: bool = True,
    ):
        self.queries, self.texts, self.positives, self.depth = dict(queries), texts, positives, depth
        self.doc_max_length, self.query_max_length = doc_max_length, query_max_length
        self.show_progress = show_progress

    def __call__(self, encoder: BiEncoder) -> dict[str, list[str]]:
        t0 = time.perf_counter()
        pools = dense_negatives(
            encoder,
            self.queries,
            self.texts,
            self.positives,
            self.depth,
            doc_max_length=self.doc_max_length,
            query_max_length=self.query_max_length,
            show_progress=self.show_progress,
        )
        log.info("ANCE refresh: %d queries, %d documents, %.1fs", len(pools), len(self.texts), time.perf_counter() - t0)
        return pools


def denoise(
    queries: Mapping[str, str],
    positives: Mapping[str, Iterable[str]],
    negatives: Mapping[str, Sequence[str]],
    texts: Mapping[str, str],
    scorer: Scorer,
    *,
    margin: float = 0.0,
    threshold: float | None = None,
) -> dict[str, list[str]]:
    """Negative pools without the negatives ``scorer`` rates as likely relevant (RocketQA's denoising).

    A negative is dropped when it scores above the query's lowest-scoring positive minus ``margin`` (a
    document the scorer ranks above a known relevant one is as likely unjudged-relevant as wrong), or, when
    ``threshold`` is given, when it scores ``threshold`` or more (RocketQA drops negatives its cross-encoder
    gives a relevance probability above 0.9). Queries without a scorable positive keep their pool, as do
    queries ``queries`` does not list. Order within a pool is kept.
    """
    scores = score_pools({q: t for q, t in queries.items() if q in negatives}, positives, negatives, texts, scorer)
    out: dict[str, list[str]] = {}
    dropped = 0
    for qid, pool in negatives.items():
        if qid not in scores:
            out[qid] = list(pool)
            continue
        s = scores[qid]
        pos = [s[d] for d in positives.get(qid, ()) if d in s]
        bar = min(pos) - margin if pos else np.inf
        keep = [d for d in pool if d not in s or not (s[d] > bar or (threshold is not None and s[d] >= threshold))]
        dropped += len(pool) - len(keep)
        out[qid] = keep
    total = sum(len(p) for p in negatives.values())
    log.info("denoising dropped %d of %d negatives (%.1f%%)", dropped, total, 100 * dropped / max(total, 1))
    return out
