"""An analyser that turns text into index terms, close to Lucene's ``EnglishAnalyzer``.

Pyserini's BM25 numbers come from Lucene's analysis chain: StandardTokenizer (Unicode UAX#29 word
breaks) -> EnglishPossessiveFilter -> LowerCaseFilter -> StopFilter (33 words) -> PorterStemFilter.
Matching that chain, not just "split on non-letters", is what lets rankstack's BM25 reproduce Pyserini's
effectiveness. The tokeniser here is a regular expression following the UAX#29 rules that matter for
English text: letters and digits join (``covid19``), ``.``/``'``/``:`` join two letters (``u.s.a``,
``don't``), ``.``/``,``/``;``/``'`` join two digits (``3.5``, ``1,000``) and ``_`` joins anything.
"""

from __future__ import annotations

import dataclasses
import re
from array import array
from collections.abc import Iterable
from functools import cache, cached_property
from typing import Any

import numpy as np
import regex
import Stemmer

from rankstack.text.porter import porter_stem, stem_many
from rankstack.text.stopwords import STOPWORDS

# Word characters are UAX#29's: letters, combining marks, decimal digits and connectors ("_"); not
# other numerics such as "²" or "½". Han and Hiragana characters are one token each, as in Lucene.
# Emoji (and symbols such as ©, ®, ™) are tokens too, with their modifiers and ZWJ sequences.
_SINGLE = r"[\p{Han}\p{Hiragana}]"
_WORD_CHAR = r"(?:(?![\p{Han}\p{Hiragana}])[\p{L}\p{M}\p{Nd}\p{Pc}])"
# Mid-word punctuation: MidLetter and MidNumLet(Q) join two letters, MidNum and MidNumLet(Q) two digits.
_MID_LETTER = ":\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a"
_MID_NUM = ",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b"
_MID_NUM_LET = ".'\u2018\u2019\u2024\ufe52\uff07\uff0e"
_EMOJI = (
    r"[\U0001F1E6-\U0001F1FF]{2}|"  # flags: a pair of regional indicators
    r"\p{Extended_Pictographic}(?:[\ufe0f\U0001F3FB-\U0001F3FF]|\u200d\p{Extended_Pictographic})*"
)
_FORMAT = r"\p{Cf}*"  # format characters (soft hyphen, ...) stay inside a word (UAX#29 rule WB4)
_WORD = (
    rf"{_SINGLE}|{_EMOJI}|"
    rf"{_WORD_CHAR}(?:{_FORMAT}{_WORD_CHAR})*"
    rf"(?:(?:(?<=\p{{L}}\p{{M}}*)[{_MID_LETTER}{_MID_NUM_LET}](?=\p{{L}})|(?<=\p{{Nd}})[{_MID_NUM}{_MID_NUM_LET}](?=\p{{Nd}}))"
    rf"{_WORD_CHAR}(?:{_FORMAT}{_WORD_CHAR})*)*"
)
_TOKEN_RE = regex.compile(_WORD)
# The same rules restricted to ASCII, where they are simple enough for the (much faster) stdlib ``re``:
# in ASCII, MidLetter is ":", MidNum "," and ";", MidNumLet "." and "'"; no marks, formats, Han or emoji.
# The joiner is matched first and its neighbours checked after (lookbehind over the two characters): at the end
# of most words the next character is no joiner and the match ends there, 13% faster on SciFact than trying
# the two lookbehind branches first.
_ASCII_TOKEN_RE = re.compile(
    r"[A-Za-z0-9_]+(?:[:.',;](?:(?<=[A-Za-z][:.'])(?=[A-Za-z])|(?<=[0-9][,;.'])(?=[0-9]))[A-Za-z0-9_]+)*"
)
# a whitespace-delimited chunk holding a non-ASCII character; starting only after whitespace (and lazy up to
# that character) keeps the search linear: "\S*[^\x00-\x7f]" would backtrack through every ASCII word
_NON_ASCII_CHUNK = re.compile(r"(?<!\S)\S*?[^\x00-\x7f]\S*")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_HAS_WORD = regex.compile(r"[\p{L}\p{Nd}\p{Extended_Pictographic}]")
_MAX_TOKEN_LENGTH = 255  # StandardTokenizer's default; longer runs are split, as Lucene does
_APOSTROPHES = "'\u2019\uff07"  # EnglishPossessiveFilter strips 's after any of these


@dataclasses.dataclass(frozen=True)
class Analyzer:
    """Tokenise, lowercase, remove possessives and stopwords, stem.

    Parameters are stored in each index's manifest so queries are analysed exactly as documents were.
    ``stemmer``: "porter" is Lucene's PorterStemFilter (``porter.py``; the Pyserini default), any other
    name is a PyStemmer (Snowball) algorithm, e.g. "english" as bm25s uses; None turns stemming off.
    """

    lowercase: bool = True
    possessive: bool = True
    stopwords: str = "lucene"
    stemmer: str | None = "porter"

    def __post_init__(self) -> None:
        if self.stopwords not in STOPWORDS:
            raise ValueError(f"unknown stopword list {self.stopwords!r}; choose one of {sorted(STOPWORDS)}")
        if self.stemmer not in (None, "porter") and self.stemmer not in Stemmer.algorithms():
            raise ValueError(f"unknown stemmer {self.stemmer!r}; PyStemmer offers {Stemmer.algorithms()}")

    @cached_property
    def _stemmer(self) -> Any:
        return Stemmer.Stemmer(self.stemmer) if self.stemmer not in (None, "porter") else None

    def tokenize(self, text: str) -> list[str]:
        """Surface tokens before stopping and stemming (lowercased if configured)."""
        lowered = self.lowercase and text.isascii()
        tokens = self._surface_tokens(text)
        if "_" in text:  # a run of connectors alone ("____") is no word: Lucene emits nothing for it
            tokens = [t for t in tokens if "_" not in t or _HAS_WORD.search(t)]
        if tokens and max(map(len, tokens)) > _MAX_TOKEN_LENGTH:
            tokens = [t[i : i + _MAX_TOKEN_LENGTH] for t in tokens for i in range(0, len(t), _MAX_TOKEN_LENGTH)]
        if self.possessive and ("'" in text or not text.isascii()):  # no apostrophe, no possessive
            tokens = [t[:-2] if len(t) > 2 and t[-1] in "sS" and t[-2] in _APOSTROPHES else t for t in tokens]
        if self.lowercase and not lowered:
            tokens = [t.lower() for t in tokens]
        return tokens

    def _surface_tokens(self, text: str) -> list[str]:
        """The tokenizer's matches, before any filter; ASCII text comes out lowercased already (when the
        analyzer lowercases), other text only in its ASCII stretches."""
        if text.isascii():  # the common case, about six times faster (equivalence is tested)
            return _ASCII_TOKEN_RE.findall(text.lower() if self.lowercase else text)
        return self._mixed_tokens(text)

    def _mixed_tokens(self, text: str) -> list[str]:
        """Tokens of text with some non-ASCII: the whitespace-delimited chunks that hold a non-ASCII
        character go through the full Unicode rules, the ASCII stretches between them through the fast
        ones. Exact, because no token contains whitespace and the rules look no further than the token's
        own neighbouring characters (tested against ``_TOKEN_RE`` over the whole text)."""
        tokens: list[str] = []
        lower = self.lowercase
        pos = 0
        for chunk in _NON_ASCII_CHUNK.finditer(text):
            if chunk.start() > pos:
                stretch = text[pos : chunk.start()]
                tokens += _ASCII_TOKEN_RE.findall(stretch.lower() if lower else stretch)
            tokens += _TOKEN_RE.findall(chunk.group())
            pos = chunk.end()
        if pos < len(text):
            stretch = text[pos:]
            tokens += _ASCII_TOKEN_RE.findall(stretch.lower() if lower else stretch)
        return tokens

    def _bulk_surface_tokens(self, text: str) -> list[str]:
        """``_surface_tokens`` for index builds, where most non-ASCII text (Greek letters, dashes, symbols) is
        tokenised whole by a stdlib ``re`` over Unicode classes (``_bmp_tokenizer``: compiled once, so not for
        one query) and comes out lowercased; text with marks, format characters or characters beyond the Basic
        Multilingual Plane takes the exact path (equality with ``_TOKEN_RE`` is tested)."""
        if not text.isascii() and not any(map(_needs_exact, set(_NON_ASCII.findall(text)))):
            return _bmp_tokenizer()[0].findall(text.lower() if self.lowercase else text)
        return self._surface_tokens(text)

    def term_of_raw(self, token: str) -> str | None:
        """``term`` for a surface token from the compiled batch scan (``query_scan.py``): possessive removed first."""
        return self.term(self._without_possessive(token))

    def _without_possessive(self, token: str) -> str:
        """EnglishPossessiveFilter on one token (``tokenize`` inlines the same test over a list)."""
        if self.possessive and len(token) > 2 and token[-1] in "sS" and token[-2] in _APOSTROPHES:
            return token[:-2]
        return token

    def __call__(self, text: str) -> list[str]:
        """Index terms for ``text``, in order (repeats kept: term frequency matters)."""
        stop = STOPWORDS[self.stopwords]
        tokens = [t for t in self.tokenize(text) if t not in stop]
        if self.stemmer == "porter":
            return stem_many(tokens)
        return self._stemmer.stemWords(tokens) if self.stemmer else tokens

    def term(self, token: str) -> str | None:
        """The index term for one token from ``tokenize`` (None for a stopword): ``__call__`` per token."""
        if token in STOPWORDS[self.stopwords]:
            return None
        if self.stemmer == "porter":
            return porter_stem(token)
        return self._stemmer.stemWord(token) if self.stemmer else token

    def analyze_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self(t) for t in texts]

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Analyzer:
        return cls(**config)


class TermMapper:
    """Texts -> term ids for indexing many documents, with one dictionary lookup per token.

    The cache maps a surface token (as the tokenizer's regular expression finds it) straight to its term
    id, or -1 for a stopword or a token that is no word: possessive removal, lowercasing, stopping and
    stemming run once per distinct surface form, not once per occurrence. ``vocab`` assigns ids to new
    terms (in order of first sight, as ``vocab[term]`` does). Equal, document by document, to
    ``analyzer(text)`` (tested); a text with a token longer than 255 characters takes that exact path.

    Past ``compiled_after`` characters, or from the start in a process where a rankstack kernel has run
    already, batches go through the compiled scan and token table of ``query_scan.py`` instead (about six
    times faster per character; only texts it flags as complex, and each distinct new token, come back to
    Python). Not sooner, because starting numba in a fresh process costs ~0.6 s, which the faster scan
    repays after ~15 million characters. Same ids either way (tested); ``compiled_after=None``: never.
    """

    compiled_after: int | None = 16_000_000

    def __init__(self, analyzer: Analyzer, vocab: dict[str, int]):
        self.analyzer = analyzer
        self.vocab = vocab
        self.cache = _SurfaceIds(self)
        self.characters = 0  # characters mapped so far
        self._table: Any = None  # the compiled path's surface token -> id table, once it is taken

    def surface_id(self, token: str) -> int:
        a = self.analyzer
        if "_" in token and not _HAS_WORD.search(token):
            return -1
        token = a._without_possessive(token)
        term = a.term(token.lower() if a.lowercase else token)
        return -1 if term is None else self.vocab[term]

    def map(self, texts: list[str]) -> tuple[array | np.ndarray, list[int] | np.ndarray]:
        """(term ids of all texts, one after another, -1 for dropped tokens, as a compact int64 array;
        tokens per text). Ids of new terms are given in the order the terms first occur, as a
        document-by-document build gives them."""
        if self._compiled():
            return self._map_compiled(texts)
        self.characters += sum(map(len, texts))
        # one list grown in place, converted once: ~20% less than a list per text extended into the array
        ids: list[int] = []
        counts: list[int] = []
        tokens_of, lookup = self.analyzer._bulk_surface_tokens, self.cache.__getitem__
        for text in texts:
            start = len(ids)
            try:
                ids += map(lookup, tokens_of(text))
            except _LongToken:
                del ids[start:]
                ids += self._exact_ids(text)
            counts.append(len(ids) - start)
        return array("q", ids), counts

    def _compiled(self) -> bool:
        if self._table is not None:
            return True
        if self.compiled_after is None:
            return False
        from rankstack import jit

        if self.characters < self.compiled_after and not jit.started():
            return False
        from rankstack.text import query_scan

        jit.announce(query_scan._scan_lookup, query_scan._claim, what="analysis kernels")
        self._table = query_scan.TokenTable(lower=self.analyzer.lowercase)
        return True

    def _map_compiled(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``map`` through the compiled scan: tokens the table lacks are resolved in Python, once each and in
        order of first occurrence, and complex texts take the per-text path at their place in that order, so
        new terms get the ids ``map`` would give them."""
        table = self._table
        batch = table.tokenize(texts, lookup=True, missing=_ABSENT)
        self.characters += len(batch.text)
        values = batch.values
        absent = np.flatnonzero(values == _ABSENT)
        counts = np.bincount(batch.rows, minlength=len(texts))
        complex_rows = np.flatnonzero(batch.complex_rows).tolist()
        if not complex_rows:
            self._resolve(batch, absent, values)
            return values, counts
        cuts = np.searchsorted(batch.rows[absent], complex_rows).tolist()
        done = 0
        slow: dict[int, list[int]] = {}
        for row, cut in zip(complex_rows, cuts):
            self._resolve(batch, absent[done:cut], values)
            done = cut
            slow[row] = self._text_ids(texts[row])
        self._resolve(batch, absent[done:], values)
        scan_starts = np.cumsum(counts) - counts  # where each text's tokens start in the scan's output
        for row, ids in slow.items():
            counts[row] = len(ids)
        starts = np.cumsum(counts) - counts  # and in the output, with the complex texts' tokens in place
        out = np.empty(int(counts.sum()), dtype=np.int64)
        rows = batch.rows
        out[starts[rows] + np.arange(len(rows)) - scan_starts[rows]] = values
        for row, ids in slow.items():
            out[starts[row] : starts[row] + len(ids)] = ids
        return out, counts

    def _resolve(self, batch: Any, positions: np.ndarray, values: np.ndarray) -> None:
        """Fill ``values`` at ``positions`` (tokens the table lacked): each distinct token is analysed once."""
        if not len(positions):
            return
        table = self._table
        slots, added = table.claim(batch, positions, _ABSENT)
        text, lower, surface_id = batch.text, table.lower, self.surface_id
        spans = zip(batch.starts[positions[added]].tolist(), batch.ends[positions[added]].tolist())
        ids = [surface_id(text[lo:hi].lower() if lower else text[lo:hi]) for lo, hi in spans]
        table.set_values(slots[added], np.asarray(ids, dtype=np.int64))
        values[positions] = table.values(slots)

    def _text_ids(self, text: str) -> list[int]:
        """One text's ids on the per-text path: one cached lookup per surface token."""
        try:
            return list(map(self.cache.__getitem__, self.analyzer._bulk_surface_tokens(text)))
        except _LongToken:
            return self._exact_ids(text)

    def _exact_ids(self, text: str) -> list[int]:
        """A text holding a token over Lucene's length, split as Lucene does on the analyzer's own path (the terms
        looked up before the long token was met got ids in the order that path gives them)."""
        return [self.vocab[t] for t in self.analyzer(text)]


_ABSENT = -2  # a token the compiled path's table has not seen (ids are >= 0, dropped tokens -1)


class _SurfaceIds(dict):
    def __init__(self, mapper: TermMapper):
        super().__init__()
        self.mapper = mapper

    def __missing__(self, token: str) -> int:
        if len(token) > _MAX_TOKEN_LENGTH:  # never cached: each text holding one takes the exact path
            raise _LongToken
        tid = self[token] = self.mapper.surface_id(token)
        return tid


class _LongToken(Exception):
    """A surface token longer than Lucene's limit: its text is analysed by ``Analyzer.__call__``, which splits it."""


@cache
def _needs_exact(char: str) -> bool:
    """Whether text holding this (non-ASCII) character must take the exact tokeniser (``EXACT_ONLY``, surrogates,
    or beyond the Basic Multilingual Plane)."""
    return _bmp_tokenizer()[1].match(char) is not None


@cache
def _bmp_tokenizer() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """``_TOKEN_RE``'s rules in the stdlib ``re`` for text whose characters all lie outside ``EXACT_ONLY``:
    without marks or format characters every lookbehind has a fixed width, and an emoji is one character;
    and the pattern that finds the characters outside it."""
    from rankstack.text import unicode_classes as u

    def escaped(chars: str) -> str:
        return "".join(f"\\u{ord(c):04x}" for c in chars)

    word, letter, digit = f"[{u.WORD}]", f"[{u.LETTER}]", f"[{u.DIGIT}]"
    join = (
        rf"(?:(?<={letter})[{escaped(_MID_LETTER + _MID_NUM_LET)}](?={letter})"
        rf"|(?<={digit})[{escaped(_MID_NUM + _MID_NUM_LET)}](?={digit}))"
    )
    token = re.compile(rf"[{u.SINGLE}]|[{u.PICTOGRAPHIC}]|{word}+(?:{join}{word}+)*")
    return token, re.compile(rf"[{u.EXACT_ONLY}\ud800-\udfff]|[^\x00-\uffff]")


def english_analyzer() -> Analyzer:
    """The default: Lucene EnglishAnalyzer equivalent (possessives, 33 stopwords, Porter)."""
    return Analyzer()
