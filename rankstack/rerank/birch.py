"""Birch: a document is as relevant as its best few sentences, added to its first-stage score.

Yilmaz et al. (2019, "Cross-Domain Modeling of Sentence-Level Evidence for Document Retrieval") and
Akkalyoncu Yilmaz et al. (2019, "Applying BERT to Document Retrieval with Birch") score each sentence of a
candidate document with a BERT model fine-tuned on short texts (tweets, MS MARCO passages), then combine
the top n sentence scores with the document's first-stage (BM25+RM3) score::

    score(d) = α · S_doc + (1 − α) · Σ_{i=1..n} w_i · s_i

where ``s_i`` is the i-th highest sentence score of ``d``, ``w_1 = 1`` and α, w_2 … w_n are tuned by grid
search on training queries (``rankstack.train.tune_birch``). Relevance judgments are per document, not per
sentence, so the sentence model is never trained on the target collection: it transfers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Sequence
from typing import Literal

import numpy as np

from rankstack.pipeline import as_queries
from rankstack.rerank.base import Missing, MissingDocumentsError, PointwiseReranker, Reranker
from rankstack.rerank.passages import DocumentTitles, TitleMode, split_sentences, title_body, with_title
from rankstack.rerank.texts import DocSource
from rankstack.types import Ranking

Normalise = Literal["none", "minmax"]


class Birch(Reranker):
    """Sentence-level evidence re-ranker: ``α · S_doc + (1 − α) · Σ_i w_i · s_i`` (Birch, Yilmaz et al. 2019).

    ``scorer``: a ``PointwiseReranker`` (a ``CrossEncoder``) that scores (query, sentence) pairs; every
    sentence of every candidate of a stage call goes to it in one ``score_pairs`` call. Sentences come from
    ``split_sentences``; ``title`` says where the document's title goes (``"own"``, the default: it is
    scored as a sentence of its own, since a headline is sentence-sized evidence; ``"prepend"``: before every
    sentence; ``"inline"``: glued to the first sentence, as in the raw text). An empty document is one empty
    sentence.

    ``S_doc`` is the score the input ranking carries (BM25+RM3 in the papers, or whatever stage came
    before). ``top_n`` (3) sentences count, weighted by ``weights`` (``w_1`` first; default
    ``(1, 1/2, …, 1/n)``, a prior that says lower-ranked sentences are weaker evidence, to be replaced by
    tuned values). A document with fewer than ``top_n`` sentences sums the ones it has: its missing
    sentences add nothing, as in Birch's own code (``eval_bert.py`` zips the sorted scores with the weights).

    ``normalise="none"`` (default) combines the raw scores as the papers do: BM25 and BERT scores live on
    different scales and the tuned α absorbs the difference. ``"minmax"`` first rescales, per query, the
    first-stage scores and the sentence scores (all top-n scores of the query's candidates together) to
    [0, 1], so α means the same across collections and first stages (a constant column maps to 0); it is
    not in the papers.

    Sentence scores are cached by (scorer, title mode, query, docid) with ``cache=True``: re-running the
    stage, changing α or the weights (``with_params``) or tuning them never scores a sentence twice.
    """

    def __init__(
        self,
        scorer: PointwiseReranker,
        docs: DocSource | None = None,
        *,
        top_n: int = 3,
        alpha: float = 0.5,
        weights: Sequence[float] | None = None,
        normalise: Normalise = "none",
        title: TitleMode = "own",
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress)
        if not isinstance(scorer, PointwiseReranker):
            raise TypeError(
                f"scorer must be a PointwiseReranker (e.g. a CrossEncoder) that scores (query, sentence) pairs, "
                f"not {type(scorer).__name__}"
            )
        if int(top_n) < 1:
            raise ValueError(f"top_n must be at least 1, not {top_n}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], not {alpha}")
        weights = _prior(int(top_n)) if weights is None else tuple(float(w) for w in weights)
        if len(weights) != int(top_n):
            raise ValueError(f"weights must hold top_n={top_n} values (w_1 … w_n), got {len(weights)}")
        if normalise not in ("none", "minmax"):
            raise ValueError(f"normalise must be 'none' or 'minmax', not {normalise!r}")
        if title not in ("prepend", "inline", "own"):
            raise ValueError(f"title must be 'own', 'prepend' or 'inline', not {title!r}")
        self.scorer = scorer
        self.top_n = int(top_n)
        self.alpha = float(alpha)
        self.weights = weights
        self.normalise: Normalise = normalise
        self.title: TitleMode = title
        self.cache = cache
        self._cache: dict[tuple[Hashable, str, str, str], np.ndarray] = {}
        self._titles = DocumentTitles(docs)

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.weights == _prior(self.top_n):  # the default: leave it out, as for any default argument
            text = text.replace(f", weights={self.weights!r}", "")
        return text

    def with_params(self, alpha: float | None = None, weights: Sequence[float] | None = None) -> Birch:
        """A copy with other α and/or weights (``top_n`` becomes ``len(weights)``), sharing the sentence cache."""
        new = copy.copy(self)  # shares scorer, document source and the cache dict
        if alpha is not None:
            if not 0.0 <= float(alpha) <= 1.0:
                raise ValueError(f"alpha must be in [0, 1], not {alpha}")
            new.alpha = float(alpha)
        if weights is not None:
            new.weights = tuple(float(w) for w in weights)
            if not new.weights:
                raise ValueError("weights needs at least w_1")
            new.top_n = len(new.weights)
        return new

    def clear_cache(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------------------------------ sentences
    def sentences(self, text: str) -> list[str]:
        """The sentences of one document text that get scored (a ``TitledText`` has its title placed by ``title``)."""
        return with_title(text, split_sentences(title_body(text, self.title)), self.title)

    def sentence_scores(self, ranking: Ranking) -> np.ndarray:
        """``[rows, top_n]``: each row's top-n sentence scores, highest first, NaN where there are fewer.

        Rows follow ``ranking`` (which must carry its query texts). Scores come from the cache where they
        can, so tuning α and the weights on this matrix calls the model at most once per (query, document).
        A document with fewer than ``top_n`` sentences is padded with NaN (read: no sentence; ``components``
        turns it into a contribution of 0), and so is every column of a document the source lacks when
        ``missing="keep"`` (with ``missing="error"`` such a ranking is refused, as by the stage).
        """
        if len(ranking) == 0:
            return np.zeros((0, self.top_n), dtype=np.float64)
        if self._texts is None:
            raise ValueError("Birch has no document source; build it with docs=index (or a Corpus)")
        qtext = as_queries(ranking).to_dict()
        queries = [qtext[q] for q in ranking.qid.tolist()]
        docids = ranking.docid.tolist()
        texts_source = self._texts

        def fetch(rows: list[int]) -> list[str | None]:
            texts = texts_source.texts([docids[i] for i in rows])
            absent = [docids[i] for i, t in zip(rows, texts, strict=True) if t is None]
            if absent and self.missing == "error":
                names = list(dict.fromkeys(absent))
                raise MissingDocumentsError(
                    f"{len(names)} docids of the ranking are not in the document source {texts_source!r}, e.g. "
                    f"{', '.join(map(repr, names[:5]))}; pass missing='keep' to score the others"
                )
            return texts

        return self._top(queries, docids, fetch)

    def _top(self, queries: Sequence[str], docids: Sequence[str], fetch: Callable[[list[int]], list]) -> np.ndarray:
        store = self._cache if self.cache else {}
        model = (self.scorer.cache_key, self.title)
        keys = [(model, q, d) for q, d in zip(queries, docids, strict=True)]
        todo: dict[tuple, int] = {}
        for i, k in enumerate(keys):
            if k not in store and k not in todo:
                todo[k] = i
        if todo:
            rows = list(todo.values())
            texts = fetch(rows)
            have = [(r, t) for r, t in zip(rows, texts, strict=True) if t is not None]
            if have and self.title != "inline":
                titled = self._titles.titled([docids[r] for r, _ in have], [t for _, t in have])
                have = [(r, t) for (r, _), t in zip(have, titled, strict=True)]
            units = [self.sentences(t) for _, t in have]
            flat_q = [queries[r] for (r, _), u in zip(have, units, strict=True) for _ in u]
            flat_s = [s for u in units for s in u]
            scores = np.asarray(self.scorer.score_pairs(flat_q, flat_s), dtype=np.float64) if flat_s else np.zeros(0)
            at = 0
            for (r, _), u in zip(have, units, strict=True):
                store[keys[r]] = -np.sort(-scores[at : at + len(u)])
                at += len(u)
        out = np.full((len(keys), self.top_n), np.nan)
        for i, k in enumerate(keys):
            s = store.get(k)
            if s is not None:
                m = min(len(s), self.top_n)
                out[i, :m] = s[:m]
        return out

    # ------------------------------------------------------------------------------------ combining
    def components(self, ranking: Ranking, top: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(S_doc [rows], evidence [rows, top_n])``, so that ``score = α·S_doc + (1−α)·evidence @ w``.

        ``S_doc`` is ``ranking.score``; ``evidence`` is ``top`` (``sentence_scores(ranking)`` when not
        given) with NaN padding as 0. With ``normalise="minmax"`` both are first rescaled to [0, 1] per query
        (the sentence scores of a query's candidates together, padding left out). Tuning scores every grid
        point from these two arrays.
        """
        if top is None:
            top = self.sentence_scores(ranking)
        top = np.asarray(top, dtype=np.float64)
        if top.shape != (len(ranking), self.top_n):
            raise ValueError(f"top must have shape ({len(ranking)}, {self.top_n}), not {top.shape}")
        first = ranking.score.astype(np.float64, copy=True)
        evidence = top.copy()
        if self.normalise == "minmax":
            for _, rows in ranking.groups():
                first[rows] = _minmax(first[rows])
                evidence[rows] = _minmax(evidence[rows])
        return first, np.nan_to_num(evidence, nan=0.0)

    def rescore(self, ranking: Ranking, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        top = self._top(queries, ranking.docid.tolist(), lambda rows: [texts[i] for i in rows])
        first, evidence = self.components(ranking, top)
        return self.alpha * first + (1.0 - self.alpha) * (evidence @ np.asarray(self.weights, dtype=np.float64))


def _prior(n: int) -> tuple[float, ...]:
    """The default weights ``(1, 1/2, …, 1/n)``."""
    return tuple(1.0 / i for i in range(1, n + 1))


def _minmax(x: np.ndarray) -> np.ndarray:
    """``(x − min) / (max − min)`` over the finite values of ``x`` (NaN stays NaN; a constant block is 0)."""
    finite = np.isfinite(x)
    if not finite.any():
        return x
    lo, hi = float(x[finite].min()), float(x[finite].max())
    if hi == lo:
        return np.where(finite, 0.0, x)
    return (x - lo) / (hi - lo)
