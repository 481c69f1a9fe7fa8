"""Long documents: split into passages, score every passage, aggregate to one document score.

A cross-encoder reads at most 512 tokens, so a news article or web page is cut off after its first few
paragraphs. Dai & Callan (2019, "Deeper Text Understanding for IR with Contextual Neural Language
Modeling") split documents into overlapping windows of 150 words with a stride of 75, score each
(query, passage) pair with BERT, and combine the passage scores into a document score:

- FirstP: the first passage's score (the rest is never read);
- MaxP: the best passage's score (a document is as relevant as its most relevant part);
- SumP: the sum of passage scores (more relevant passages, more relevant document).

``PassageReranker`` wraps any pointwise scorer (a ``CrossEncoder``) into such a re-ranker and adds a fourth
aggregation, the passage-level cumulative gain of Wu et al. (2020), see ``cumulative_gain``. Every
(query, passage) pair of a stage call goes to the scorer in one ``score_pairs`` call, so the scorer's length
bucketing batches passages of different documents together.

The splitters (word windows, token windows, sentences) are plain functions, shared with Birch (sentences)
and BERT-QE (chunks) and with ICT pre-training (``split_sentences``).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from rankstack.rerank.base import Missing, PointwiseReranker
from rankstack.rerank.texts import DocSource, DocumentTexts
from rankstack.types import Document, Ranking

Aggregate = Literal["first", "max", "sum", "pcgm"]
Split = Literal["window", "sentence"]
TitleMode = Literal["prepend", "inline", "own"]
Gain = Literal["auto", "sigmoid", "exp"]

_AGGREGATES = ("first", "max", "sum", "pcgm")
_TITLE_MODES = ("prepend", "inline", "own")


# ------------------------------------------------------------------------------------------------ splitting
def window_spans(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``[start, end)`` spans of ``window`` items every ``stride`` items over ``n`` items.

    Windows start at 0, stride, 2·stride, … and stop with the first window that reaches the end, so the
    last window may be shorter and no window lies wholly inside the previous one. A sequence no longer than
    ``window`` (including an empty one) is a single span.

    >>> window_spans(10, 4, 2)
    [(0, 4), (2, 6), (4, 8), (6, 10)]
    """
    _check_window(window, stride)
    if n <= window:
        return [(0, n)]
    spans = []
    start = 0
    while True:
        end = min(start + window, n)
        spans.append((start, end))
        if end >= n:
            return spans
        start += stride


def split_words(text: str, window: int = 150, stride: int = 75) -> list[str]:
    """Windows of ``window`` whitespace-separated words every ``stride`` words (Dai & Callan: 150 and 75).

    Words inside a passage are joined by single spaces. An empty text gives one empty passage, so every
    document has at least one passage to score.
    """
    words = text.split()
    return [" ".join(words[a:b]) for a, b in window_spans(len(words), window, stride)]


def split_tokens(text: str, tokenizer: Any, window: int = 150, stride: int = 75) -> list[str]:
    """Windows of ``window`` model tokens every ``stride`` tokens, cut from ``text`` at token boundaries.

    ``tokenizer`` is a Hugging Face *fast* tokenizer (it must return offset mappings); the passages are
    substrings of ``text``, so the scorer re-tokenises the same pieces. Counting in model tokens bounds the
    pair length exactly, where 150 words can be anywhere from 150 to 400 word pieces.
    """
    return _token_windows([text], tokenizer, window, stride)[0]


def _token_windows(texts: Sequence[str], tokenizer: Any, window: int, stride: int) -> list[list[str]]:
    _check_window(window, stride)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{type(tokenizer).__name__} gives no character offsets; token windows need a fast tokenizer "
            "(AutoTokenizer.from_pretrained(..., use_fast=True)), or count windows in words (tokenizer=None)"
        )
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    out = []
    for text, offsets in zip(texts, enc["offset_mapping"], strict=True):
        if not offsets:
            out.append([""])
            continue
        out.append([text[offsets[a][0] : offsets[b - 1][1]] for a, b in window_spans(len(offsets), window, stride)])
    return out


def _check_window(window: int, stride: int) -> None:
    if int(window) < 1:
        raise ValueError(f"window must be at least 1, not {window}")
    if not 1 <= int(stride) <= int(window):
        raise ValueError(
            f"stride must be between 1 and window ({window}), not {stride}: a stride longer than the window "
            "would skip the words between windows"
        )


# Words that end in a full stop without ending a sentence. Lower-cased, without the stop.
_ABBREVIATION_WORDS = """mr mrs ms dr prof sr jr st mt vs etc al fig figs eq eqs no nos vol vols pp ed eds rev gen
col lt sgt capt gov sen rep inc ltd co corp dept univ approx est jan feb mar apr jun jul aug sep sept oct nov dec"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
# A sentence ends at a run of . ! ? (with closing quotes or brackets) followed by space and something that can
# start a sentence (a capital, a digit, an opening quote or bracket); a blank line ends one too.
_BOUNDARY = re.compile(r"(?P<end>[.!?]+[\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])|\n[^\S\n]*\n\s*")
_LAST_TOKEN = re.compile(r"(\S+)$")
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S, e.g, p.m (the final stop is the boundary's)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, stripped, empty ones dropped (an empty text has no sentences).

    A regular-expression splitter, no model: a sentence ends at ``.``, ``!`` or ``?`` followed by space and a
    capital, digit, quote or bracket, or at a blank line. A single full stop after a known abbreviation
    (Dr., Mr., vs., etc., et al., Jan., Inc., …), a single-letter initial (J. Smith) or a dotted acronym
    (U.S., e.g., p.m.) does not end a sentence; the price is that "… made in the U.S. The next …" stays one
    sentence, the cheaper mistake for ranking (a sentence too long rather than a name cut in two).

    >>> split_sentences("Dr. Smith met J. Doe in the U.S. Army. Did he? Yes.")
    ['Dr. Smith met J. Doe in the U.S. Army.', 'Did he?', 'Yes.']
    """
    out: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.group("end")
        if end == "." and _abbreviation_before(text, m.start()):
            continue
        cut = m.start() + len(end) if end else m.start()
        piece = text[start:cut].strip()
        if piece:
            out.append(piece)
        start = m.end()
    piece = text[start:].strip()
    if piece:
        out.append(piece)
    return out


def _abbreviation_before(text: str, stop: int) -> bool:
    # look back a few characters only (no abbreviation is longer), so long texts split in linear time
    m = _LAST_TOKEN.search(text, max(0, stop - 32), stop)
    if m is None:
        return False
    token = m.group(1).lstrip("\"'([")
    return (
        token.lower() in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()) or _DOTTED.fullmatch(token) is not None
    )


# ------------------------------------------------------------------------------------------------ titles
class TitledText(str):
    """A document's text (``Document.contents()``: title, space, body) that remembers its title.

    It is a ``str``, so it travels through code that expects document texts (``PointwiseReranker.rescore``
    hands texts to ``score_pairs`` unchanged), and a passage splitter that knows about titles can read
    ``title`` and ``body``. ``title`` is None when the text does not start with it.
    """

    title: str | None

    def __new__(cls, contents: str, title: str | None) -> TitledText:
        obj = super().__new__(cls, contents)
        obj.title = title if title and (contents == title or contents.startswith(title + " ")) else None
        return obj

    @property
    def body(self) -> str:
        return str(self)[len(self.title) + 1 :] if self.title else str(self)


class DocumentTitles:
    """``titles(docids) -> list[str | None]`` from the same sources ``DocumentTexts`` reads.

    ``DocumentTexts`` gives ``Document.contents()``, title and body in one string; splitters that treat the
    title apart need it separately. An index is asked again per docid (``index.docs[docid].title``); a
    Corpus or list of Documents is read once for its titles; a ``{docid: text}`` mapping has none.
    """

    def __init__(self, source: DocSource | None):
        if isinstance(source, DocumentTexts):
            source = source.source
        self.source = source
        self._lookup: Any = getattr(source, "docs", None) if source is not None else None
        self._table: dict[str, str] | None = None
        if source is None or isinstance(source, str | bytes):
            self._table = {}
        elif isinstance(source, Mapping):
            self._table = {str(k): v.title for k, v in source.items() if isinstance(v, Document) and v.title}

    def titles(self, docids: Sequence[str]) -> list[str | None]:
        if self._lookup is not None:
            out: list[str | None] = []
            for d in docids:
                try:
                    out.append(self._lookup[d].title)
                except KeyError:
                    out.append(None)
            return out
        if self._table is None:
            docs: Iterable[Document] = self.source
            self._table = {d.docid: d.title for d in docs if d.title}
        return [self._table.get(d) for d in docids]

    def titled(self, docids: Sequence[str], texts: Sequence[str]) -> list[str]:
        """``texts`` as ``TitledText`` (those already titled, and all texts when no title is known, as given)."""
        if all(isinstance(t, TitledText) for t in texts):
            return list(texts)
        titles = self.titles(docids)
        return [t if isinstance(t, TitledText) else TitledText(t, ti) for t, ti in zip(texts, titles, strict=True)]


def title_body(text: str, mode: TitleMode) -> str:
    """What a splitter reads under a title mode: the body alone when the title is handled apart."""
    if mode != "inline" and isinstance(text, TitledText) and text.title:
        return text.body
    return str(text)


def with_title(text: str, units: Sequence[str], mode: TitleMode) -> list[str]:
    """The units (passages, sentences) of one document under a title mode; never an empty list.

    ``units`` are the split of ``title_body(text, mode)``. ``"inline"``, or a text without a known title,
    keeps them as they are (the title, if any, starts the first unit). With a known title (``text`` a
    ``TitledText``), ``"prepend"`` puts ``title + " "`` before every unit and ``"own"`` adds the title as a
    unit of its own before the body's; an empty body then leaves the title alone. A document with nothing
    at all is one empty unit.
    """
    title = text.title if isinstance(text, TitledText) else None
    if mode == "inline" or not title:
        return list(units) or [""]
    body = [u for u in units if u]
    if mode == "prepend":
        return [f"{title} {u}" for u in body] or [title]
    return [title, *body]


# ------------------------------------------------------------------------------------------------ aggregation
def cumulative_gain(scores: np.ndarray, patience: float = 0.9, gain: Literal["sigmoid", "exp"] = "sigmoid") -> float:
    """Passage-level cumulative gain of one document: a reader's gain accumulated in reading order.

    Wu et al. (2020, "Leveraging Passage-level Cumulative Gain for Document Ranking") study how information
    gain accumulates as a user reads a document passage by passage, in context: the passage-level
    cumulative gain (PCG) after the k-th passage, whose value after the last passage is the document's
    gain. This is the *aggregation view* of that idea, with no training: it is not Wu et al.'s PCGM (a
    BERT-based sequential model trained to predict the PCG sequence). Each passage score ``s_k`` becomes a gain ``p_k ∈ [0, 1]`` (the
    probability that passage k satisfies the reader: ``sigmoid(s_k)`` for one-logit heads, ``exp(s_k)``
    for log-probability scores, clipped to 1), and a reader goes through the passages in order::

        CG_0 = 0,  R_0 = 1
        CG_k = CG_{k-1} + R_{k-1} · p_k          (what passage k adds)
        R_k  = γ · R_{k-1} · (1 − p_k)           (still reading and not yet satisfied)
        score = CG_m = Σ_k p_k · γ^(k−1) · Π_{j<k} (1 − p_j)

    Each passage adds its gain discounted by what the passages before it already gave (``1 − p_j``) and by
    its position (the reader continues past an unsatisfying passage with probability γ, ``patience``). So a
    second relevant passage adds less than the first, and late passages count less than early ones. With
    γ = 1 the score is the noisy-or ``1 − Π_k (1 − p_k)`` and reading order no longer matters; γ = 0.9 (the
    default, not tuned) is a reader who reads 10 unsatisfying passages on average before giving up.
    """
    p = _gains(np.asarray(scores, dtype=np.float64), gain)
    cg, reach = 0.0, 1.0
    for pk in p.tolist():
        cg += reach * pk
        reach *= patience * (1.0 - pk)
    return cg


def _gains(scores: np.ndarray, gain: str) -> np.ndarray:
    if gain == "exp":
        return np.minimum(np.exp(scores), 1.0)
    return 1.0 / (1.0 + np.exp(-scores))


def aggregate_scores(
    scores: np.ndarray,
    counts: Sequence[int] | np.ndarray,
    how: Aggregate,
    *,
    patience: float = 0.9,
    gain: Literal["sigmoid", "exp"] = "sigmoid",
) -> np.ndarray:
    """One score per document from its passages' scores (``counts[i]`` passages each, in reading order)."""
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) == 0:
        return np.zeros(0, dtype=np.float64)
    if (counts < 1).any():
        raise ValueError("every document needs at least one passage")
    if int(counts.sum()) != len(scores):
        raise ValueError(f"{len(scores)} passage scores for {int(counts.sum())} passages")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if how == "first":
        return scores[starts]
    if how == "max":
        return np.maximum.reduceat(scores, starts)
    if how == "sum":
        return np.add.reduceat(scores, starts)
    if how == "pcgm":
        return np.array(
            [cumulative_gain(scores[s : s + c], patience, gain) for s, c in zip(starts.tolist(), counts.tolist())],
            dtype=np.float64,
        )
    raise ValueError(f"aggregate must be one of {', '.join(_AGGREGATES)}, not {how!r}")


# ------------------------------------------------------------------------------------------------ the stage
class PassageReranker(PointwiseReranker):
    """Score long documents by their passages: FirstP, MaxP, SumP (Dai & Callan 2019) or cumulative gain.

    ``scorer``: any ``PointwiseReranker`` (a ``CrossEncoder``); its ``score_pairs`` scores (query, passage)
    pairs, all of a stage call in one call. ``split="window"`` cuts ``window``-word windows every ``stride``
    words (150 and 75, as Dai & Callan), counted in model tokens instead when ``tokenizer`` is given (a fast
    Hugging Face tokenizer, or ``"scorer"`` for the scorer's own); ``split="sentence"`` makes every sentence
    a passage (``split_sentences``). ``aggregate``: ``"first"`` (only the first passage is scored),
    ``"max"``, ``"sum"`` or ``"pcgm"`` (``cumulative_gain`` with ``patience`` and ``gain``; ``gain="auto"``
    reads ``exp`` for a scorer whose scores are log-probabilities (two-class heads, monoT5: ``scores_are_log_probs``),
    ``sigmoid`` otherwise).

    ``max_passages`` keeps the first that many passages of a document in reading order (the title counts as
    one under ``title="own"``, so FirstP then reads the title alone): it bounds the cost of very long documents, and keeps the part FirstP reads
    and every aggregation reads first. ``title`` (when the document source knows titles): ``"prepend"``
    (default) puts the title before every passage, as is common for MaxP, so a passage deep in the document
    still says what the document is about and the title does not use up the first window's words;
    ``"inline"`` leaves the title at the start of the text (only the first passage sees it); ``"own"``
    scores the title as a passage of its own. An empty document is one empty passage (with its title under
    ``"prepend"``/``"own"``), scored as the model sees it.

    Document scores are cached by (``cache_key``, query, docid); the key holds the scorer's key and every
    splitting and aggregation setting, so two configurations never share document scores. Passage scores
    are the scorer's (``score_texts``, keyed by query and passage text): FirstP, MaxP, SumP and PCGM over
    one scorer and one window score each passage once between them.
    """

    def __init__(
        self,
        scorer: PointwiseReranker,
        docs: DocSource | None = None,
        *,
        aggregate: Aggregate = "max",
        split: Split = "window",
        window: int = 150,
        stride: int = 75,
        tokenizer: Any = None,
        max_passages: int | None = None,
        title: TitleMode = "prepend",
        patience: float = 0.9,
        gain: Gain = "auto",
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress, cache=cache)
        if not isinstance(scorer, PointwiseReranker):
            raise TypeError(
                f"scorer must be a PointwiseReranker (e.g. a CrossEncoder) that scores (query, passage) pairs, "
                f"not {type(scorer).__name__}"
            )
        if aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(map(repr, _AGGREGATES))}, not {aggregate!r}")
        if split not in ("window", "sentence"):
            raise ValueError(f"split must be 'window' or 'sentence', not {split!r}")
        if title not in _TITLE_MODES:
            raise ValueError(f"title must be one of {', '.join(map(repr, _TITLE_MODES))}, not {title!r}")
        if gain not in ("auto", "sigmoid", "exp"):
            raise ValueError(f"gain must be 'auto', 'sigmoid' or 'exp', not {gain!r}")
        if not 0.0 < float(patience) <= 1.0:
            raise ValueError(f"patience must be in (0, 1], not {patience}")
        if max_passages is not None and int(max_passages) < 1:
            raise ValueError(f"max_passages must be at least 1 (or None for all), not {max_passages}")
        _check_window(window, stride)
        if split == "sentence" and tokenizer is not None:
            raise ValueError("tokenizer= sets the unit of window passages; it has no effect with split='sentence'")
        if isinstance(tokenizer, str) and tokenizer == "scorer":
            if getattr(scorer, "tokenizer", None) is None:
                raise ValueError(f"tokenizer='scorer' needs a scorer with a tokenizer; {scorer!r} has none")
            self._tokenizer = scorer.tokenizer
        elif isinstance(tokenizer, str):
            raise ValueError(f"tokenizer must be a Hugging Face tokenizer object or 'scorer', not {tokenizer!r}")
        else:
            self._tokenizer = tokenizer
        self.scorer = scorer
        self.aggregate: Aggregate = aggregate
        self.split: Split = split
        self.window, self.stride = int(window), int(stride)
        self.tokenizer = tokenizer
        self.max_passages = None if max_passages is None else int(max_passages)
        self.title: TitleMode = title
        self.patience = float(patience)
        self.gain: Gain = gain
        self._titles = DocumentTitles(docs)

    # ------------------------------------------------------------------------------------ identity
    @property
    def cache_key(self) -> Hashable:
        tok = None
        if self._tokenizer is not None:
            tok = getattr(self._tokenizer, "name_or_path", None) or type(self._tokenizer).__name__
        pcgm = (self.patience, self._gain()) if self.aggregate == "pcgm" else None
        return (
            "passages",
            self.scorer.cache_key,
            self.split,
            self.window,
            self.stride,
            tok,
            self.max_passages,
            self.aggregate,
            self.title,
            pcgm,
        )

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.tokenizer is not None and not isinstance(self.tokenizer, str):
            name = getattr(self.tokenizer, "name_or_path", type(self.tokenizer).__name__)
            text = text.replace(f"tokenizer={self.tokenizer!r}", f"tokenizer=<{name}>")
        return text

    def _gain(self) -> Literal["sigmoid", "exp"]:
        if self.gain != "auto":
            return self.gain
        return "exp" if getattr(self.scorer, "scores_are_log_probs", False) else "sigmoid"

    # ------------------------------------------------------------------------------------ passages
    def passages(self, texts: Sequence[str]) -> list[list[str]]:
        """The passages of each text that will be scored (after ``title`` and ``max_passages``).

        A ``TitledText`` is split with its title handled as ``title`` says; a plain string as it is.
        """
        cap = 1 if self.aggregate == "first" else self.max_passages
        pieces = [title_body(t, self.title) for t in texts]
        if self.split == "sentence":
            units = [split_sentences(p) for p in pieces]
        elif self._tokenizer is not None:
            units = _token_windows(pieces, self._tokenizer, self.window, self.stride)
        else:
            units = [split_words(p, self.window, self.stride) for p in pieces]
        out = []
        for text, body_units in zip(texts, units, strict=True):
            doc = with_title(text, body_units, self.title)
            out.append(doc[:cap] if cap is not None else doc)
        return out

    # ------------------------------------------------------------------------------------ scoring
    def rescore(self, ranking: Ranking, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        if self.title != "inline":
            texts = self._titles.titled(ranking.docid.tolist(), texts)
        return super().rescore(ranking, queries, texts)

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        """Document scores: every passage of every document scored in one ``scorer.score_pairs`` call.

        ``docs`` are document texts; a ``TitledText`` (what ``rescore`` passes) has its title handled as
        ``title`` says, a plain string is split as it is.
        """
        if not len(queries):
            return np.zeros(0, dtype=np.float64)
        passages = self.passages(docs)
        counts = [len(p) for p in passages]
        flat_q = [q for q, c in zip(queries, counts, strict=True) for _ in range(c)]
        flat_p = [p for ps in passages for p in ps]
        scores = np.asarray(self.scorer.score_texts(flat_q, flat_p), dtype=np.float64)
        return aggregate_scores(scores, counts, self.aggregate, patience=self.patience, gain=self._gain())
