"""BERT-QE: query expansion with the best chunks of the best documents, read by a cross-encoder.

Zheng et al. (2020, "BERT-QE: Contextualized Query Expansion for Document Re-ranking") add pseudo-relevance
feedback to a BERT re-ranker without ever turning text into expansion terms:

1. score the candidates with the re-ranker: ``s(q, d)``;
2. cut the top ``kd`` documents into chunks of ``chunk_size`` words (stride ``chunk_stride``), score each
   chunk against the query, ``s(q, c)``, and keep the top ``kc`` chunks ``C``;
3. let every chosen chunk judge every candidate, the chunk acting as the query, and weigh the verdicts by
   how well each chunk matches the query::

       s_C(d) = Σ_{c ∈ C} softmax_{c ∈ C}(s(q, c)) · s(c, d)
       score(d) = (1 − α) · s(q, d) + α · s_C(d)                     (α = 0.4)

Chunks are a few words of context around what made a top document relevant, so they expand the query with
whole phrases instead of bags of terms, and a chunk that matches the query poorly gets little say.

Where this differs from the released code (zh-zheng/BERT-QE): there every score is the probability of the
"relevant" class, a chunk is scored against the document's best passage from phase 1 (MaxP), and α is
chosen per fold on validation queries; here scores are whatever the scorers return, the phase-3 scorer reads
the document as it reads any document (a ``CrossEncoder`` truncates it, a ``PassageReranker`` reads all its
passages), and α = 0.4 is a default to tune.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rankstack.rerank.base import Missing, PointwiseReranker, Reranker
from rankstack.rerank.passages import DocumentTitles, PassageReranker, split_words
from rankstack.rerank.texts import DocSource
from rankstack.types import Ranking


class BertQE(Reranker):
    """BERT-QE re-ranker (Zheng et al. 2020): ``(1 − α)·s(q,d) + α·Σ_c softmax_c(s(q,c))·s(c,d)``.

    ``scorer`` (phase 1) scores (query, document) pairs; it is called through its ``rescore``, so its cache
    answers for pairs it has already scored (``bm25 % 100 >> ce >> BertQE(ce, docs=index)`` scores each
    pair with ``ce`` once). ``chunk_scorer`` (phase 2, query against chunks) and ``expansion_scorer`` (phase
    3, chunks against documents) default to ``scorer``; the paper's cheaper variants use smaller models for
    them (BERT-QE-LMT: Large, Medium, Tiny), and the scores of phases 1 and 3 are then added as they come,
    so the two models should score on comparable scales. A ``PassageReranker`` works in any phase that
    reads documents (1 and 3), e.g. MaxP as in the paper's setup.

    ``kd`` (10) documents by phase-1 score (ties: first-stage order) give chunks of ``chunk_size`` (10)
    words every ``chunk_stride`` (5) words; a chunk text that occurs twice for a query is scored once and
    counted once. The top ``kc`` (10) chunks by ``s(q, c)`` (ties: reading order) expand the query; the
    softmax runs over their raw scores, so the scorer's scale sets its sharpness (logits give a peaked
    weighting; log-probabilities of a two-class head give ``p_c / Σ p``). A query whose top documents hold
    no words gets ``s_C = 0`` for every candidate, which keeps its phase-1 order.

    Cost: for ``n`` candidates per query, phase 1 is ``n`` pairs (free when cached), phase 2 about
    ``kd · L / chunk_stride`` (query, chunk) pairs for documents of ``L`` words, and phase 3 ``n · kc``
    (chunk, document) pairs, ten times a plain re-ranking with the defaults; each phase is one batched
    scorer call for the whole ranking. The original code also interpolates the result with the first-stage
    score; compose that with fusion (``(bm25 % 100 >> qe) * 0.9 + bm25 * 0.1``) if wanted.
    """

    def __init__(
        self,
        scorer: PointwiseReranker,
        docs: DocSource | None = None,
        *,
        chunk_scorer: PointwiseReranker | None = None,
        expansion_scorer: PointwiseReranker | None = None,
        kd: int = 10,
        kc: int = 10,
        chunk_size: int = 10,
        chunk_stride: int = 5,
        alpha: float = 0.4,
        missing: Missing = "error",
        show_progress: bool = False,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress)
        for name, s in (("scorer", scorer), ("chunk_scorer", chunk_scorer), ("expansion_scorer", expansion_scorer)):
            if s is not None and not isinstance(s, PointwiseReranker):
                raise TypeError(f"{name} must be a PointwiseReranker (e.g. a CrossEncoder), not {type(s).__name__}")
        if int(kd) < 1 or int(kc) < 1:
            raise ValueError(f"kd and kc must be at least 1, not kd={kd}, kc={kc}")
        if not 1 <= int(chunk_stride) <= int(chunk_size):
            raise ValueError(f"chunk_stride must be between 1 and chunk_size ({chunk_size}), not {chunk_stride}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], not {alpha}")
        self.scorer = scorer
        self.chunk_scorer = chunk_scorer
        self.expansion_scorer = expansion_scorer
        self.kd, self.kc = int(kd), int(kc)
        self.chunk_size, self.chunk_stride = int(chunk_size), int(chunk_stride)
        self.alpha = float(alpha)
        self._titles = DocumentTitles(docs)

    def rescore(self, ranking: Ranking, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        docids = ranking.docid.tolist()
        chunk_scorer = self.chunk_scorer or self.scorer
        expansion_scorer = self.expansion_scorer or self.scorer
        if any(isinstance(s, PassageReranker) and s.title != "inline" for s in (self.scorer, expansion_scorer)):
            texts = self._titles.titled(docids, texts)  # passage scorers place the title themselves

        # phase 1: the re-ranker's own scores
        first = np.asarray(self.scorer.rescore(ranking, queries, texts), dtype=np.float64)

        # phase 2: chunks of each query's top kd documents, scored against the query in one call
        groups = list(ranking.groups())
        chunks: list[list[str]] = []
        for _, rows in groups:
            top = np.argsort(-first[rows], kind="stable")[: self.kd] + rows.start
            found: dict[str, None] = {}
            for i in top.tolist():
                for c in split_words(str(texts[i]), self.chunk_size, self.chunk_stride):
                    if c:
                        found.setdefault(c)
            chunks.append(list(found))
        flat_q = [queries[rows.start] for (_, rows), cs in zip(groups, chunks, strict=True) for _ in cs]
        flat_c = [c for cs in chunks for c in cs]
        chunk_scores = np.asarray(chunk_scorer.score_pairs(flat_q, flat_c), dtype=np.float64) if flat_c else None

        # the top kc chunks of each query and their softmax weights
        chosen: list[tuple[list[str], np.ndarray]] = []
        at = 0
        for cs in chunks:
            s = chunk_scores[at : at + len(cs)] if chunk_scores is not None else np.zeros(0)
            at += len(cs)
            keep = np.argsort(-s, kind="stable")[: self.kc]
            chosen.append(([cs[i] for i in keep.tolist()], _softmax(s[keep])))

        # phase 3: every chosen chunk as the query against every candidate, in one call
        rows_out, q3, t3 = [], [], []
        for (_, rows), (cs, _) in zip(groups, chosen, strict=True):
            for i in range(rows.start, rows.stop):
                rows_out.extend([i] * len(cs))
                q3.extend(cs)
                t3.extend([texts[i]] * len(cs))
        expansion = np.zeros(len(ranking), dtype=np.float64)
        if rows_out:
            idx = np.asarray(rows_out, dtype=np.int64)
            pairs = Ranking(
                ranking.qid[idx], ranking.docid[idx], np.zeros(len(idx)), np.arange(1, len(idx) + 1), presorted=True
            )
            s3 = np.asarray(expansion_scorer.rescore(pairs, q3, t3), dtype=np.float64)
            weights = np.concatenate(
                [np.tile(w, rows.stop - rows.start) for (_, rows), (_, w) in zip(groups, chosen, strict=True)]
            )
            np.add.at(expansion, idx, weights * s3)
        return (1.0 - self.alpha) * first + self.alpha * expansion


def _softmax(x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return x
    e = np.exp(x - x.max())
    return e / e.sum()
