"""The re-ranker stage: read a ranking's document texts, score them against the query, return a new ranking.

``Reranker`` owns what every re-ranking model shares: refusing a bare ``Queries`` input (there is nothing to
re-rank), reading texts from the document source, what happens to docids the source lacks, empty rankings,
and the order of the output. A subclass says only how to score: ``rescore(ranking, queries, texts)`` for
the whole ranking (pairwise models, passage aggregation), or, for a pointwise model, ``score_pairs``
over (query, document) texts, which ``PointwiseReranker`` batches, caches and shows progress for.

So the Expando-Mono-Duo design of Pradeep et al. (2021) is one line::

    bm25 % 1000 >> mono % 50 >> duo
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

from rankstack.errors import RankstackError
from rankstack.pipeline import Stage, as_queries
from rankstack.rerank.texts import DocSource, DocumentTexts
from rankstack.types import Queries, Ranking

log = logging.getLogger(__name__)

Missing = Literal["error", "keep"]


class MissingDocumentsError(RankstackError, KeyError):
    """Docids of a ranking that the re-ranker's document source does not hold."""

    def __str__(self) -> str:  # KeyError would quote the whole message otherwise
        return self.args[0]


class Reranker(Stage):
    """Base class of re-rankers: ``Ranking -> Ranking`` with new scores from a model.

    ``docs`` is where texts come from (an index with a document store, a Corpus, a ``{docid: text}``
    mapping). ``missing="error"`` (default) refuses a ranking naming docids the source lacks, listing a
    few; ``missing="keep"`` keeps such documents below every scored one of their query, in their
    first-stage order (their score is the query's lowest model score minus their 1-based position among
    the missing). The output keeps the input's query texts and is sorted by the new scores.
    """

    def __init__(self, docs: DocSource | None = None, *, missing: Missing = "error", show_progress: bool = False):
        if missing not in ("error", "keep"):
            raise ValueError(f"missing must be 'error' or 'keep', not {missing!r}")
        self.docs = docs
        self.missing: Missing = missing
        self.show_progress = show_progress
        self._texts = DocumentTexts(docs) if docs is not None else None

    # ------------------------------------------------------------------------------------ the stage
    def __call__(self, inp: Queries | Ranking) -> Ranking:
        if isinstance(inp, Queries):
            raise TypeError(
                f"{type(self).__name__} re-ranks a ranking, but was given queries; put a retriever before it, "
                "e.g. `index.bm25() % 100 >> reranker`"
            )
        if len(inp) == 0:
            return inp
        if self._texts is None:
            raise ValueError(f"{type(self).__name__} has no document source; build it with docs=index (or a Corpus)")
        queries = as_queries(inp)
        qtext = queries.to_dict()
        unknown = [q for q in inp.qids() if q not in qtext]
        if unknown:
            raise ValueError(
                f"the ranking carries no query text for {len(unknown)} of its qids, e.g. "
                f"{', '.join(map(repr, unknown[:5]))}; build the Ranking with queries= holding every qid"
            )
        texts = self._texts.texts(inp.docid.tolist())
        absent = np.array([t is None for t in texts], dtype=bool)
        if absent.any() and self.missing == "error":
            names = list(dict.fromkeys(inp.docid[absent].tolist()))
            raise MissingDocumentsError(
                f"{len(names)} docids of the ranking are not in the document source {self._texts!r}, e.g. "
                f"{', '.join(map(repr, names[:5]))}; re-rank a ranking of the same collection, or pass "
                "missing='keep' to keep them below the scored documents in first-stage order"
            )
        present = ~absent
        kept = inp._take(present) if absent.any() else inp
        scores = self.rescore(kept, [qtext[q] for q in kept.qid.tolist()], [t for t in texts if t is not None])
        scores = np.asarray(scores, dtype=np.float64)
        if len(scores) != len(kept):
            raise AssertionError(f"{type(self).__name__}.rescore returned {len(scores)} scores for {len(kept)} rows")
        if not absent.any():
            return Ranking(kept.qid, kept.docid, scores, queries=inp.queries)
        return _keep_missing(inp, present, scores)

    def rescore(self, ranking: Ranking, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """New scores for the rows of ``ranking`` (``queries[i]``, ``texts[i]`` are row i's texts)."""
        raise NotImplementedError


class PointwiseReranker(Reranker):
    """A re-ranker that scores each (query, document) pair on its own: monoBERT, monoT5, query likelihood.

    Subclasses implement ``score_pairs(queries, docs) -> float64 [n]`` and name their model in
    ``cache_key``. Scores are cached by (model, query text, docid) when ``cache=True``, so re-running a
    pipeline, or the same first stage under two cut-offs, does not score a pair twice.
    """

    def __init__(
        self,
        docs: DocSource | None = None,
        *,
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress)
        self.cache = cache
        self._cache: dict[tuple[Hashable, str, str], float] = {}
        self._text_cache: dict[tuple[Hashable, str, str], float] = {}

    @property
    def cache_key(self) -> Hashable:
        """What identifies the model behind the scores (the cache is per model, query text and docid)."""
        return id(self)

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def rescore(self, ranking: Ranking, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        if not self.cache:
            return np.asarray(self.score_pairs(queries, texts), dtype=np.float64)
        model = self.cache_key
        return self._cached(self._cache, [(model, q, d) for q, d in zip(queries, ranking.docid.tolist(), strict=True)], queries, texts)

    def score_texts(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """``score_pairs`` through a cache keyed by (model, query, a digest of the text): for inputs that have
        no docid, such as the passages of a document, so that FirstP, MaxP, SumP and PCGM over one scorer
        and one window score each passage once between them."""
        if not self.cache:
            return np.asarray(self.score_pairs(queries, texts), dtype=np.float64)
        model = self.cache_key
        keys = [(model, q, text_digest(t)) for q, t in zip(queries, texts, strict=True)]
        return self._cached(self._text_cache, keys, queries, texts)

    def _cached(
        self,
        cache: dict[tuple[Hashable, str, str], float],
        keys: list[tuple[Hashable, str, str]],
        queries: Sequence[str],
        texts: Sequence[str],
    ) -> np.ndarray:
        """Scores for ``keys`` from ``cache``, the missing ones computed in one ``score_pairs`` call (a pair
        repeated within the input, the same query twice, is scored once) and kept."""
        scores = np.array([cache.get(k, np.nan) for k in keys], dtype=np.float64)
        todo = np.flatnonzero(np.isnan(scores))
        if len(todo):
            first: dict[tuple[Hashable, str, str], int] = {}
            for i in todo.tolist():
                first.setdefault(keys[i], i)
            rows = list(first.values())
            fresh = np.asarray(self.score_pairs([queries[i] for i in rows], [texts[i] for i in rows]), np.float64)
            for i, s in zip(rows, fresh.tolist(), strict=True):
                cache[keys[i]] = s
            scores[todo] = [cache[keys[i]] for i in todo.tolist()]
        return scores

    def clear_cache(self) -> None:
        self._cache.clear()
        self._text_cache.clear()


def text_digest(text: str) -> str:
    """A short digest of a text, keying caches of scores or states for inputs that have no docid."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _keep_missing(inp: Ranking, present: np.ndarray, scores: np.ndarray) -> Ranking:
    """Scores for every row of ``inp``: the model's where present, below the query's lowest elsewhere."""
    full = np.empty(len(inp), dtype=np.float64)
    full[present] = scores
    place_missing(full, missing_blocks(inp, present))
    return Ranking(inp.qid, inp.docid, full, queries=inp.queries)


def missing_blocks(ranking: Ranking, present: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query with documents the source lacks: (its present rows, its missing rows in rank order)."""
    if present.all():
        return []
    out = []
    for _, rows in ranking.groups():
        block = present[rows]
        if not block.all():
            idx = np.arange(rows.start, rows.stop)
            out.append((idx[block], idx[~block]))
    return out


def place_missing(full: np.ndarray, blocks: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """``missing="keep"``, in place: a query's missing rows go below its lowest score, in first-stage order
    (scores 1, 2, … under it; a query with no scored document starts at 0)."""
    for have, lack in blocks:
        floor = float(full[have].min()) if len(have) else 0.0
        full[lack] = floor - np.arange(1, len(lack) + 1)
