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
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import Stemmer

from rankstack.text.stopwords import STOPWORDS

# One token: word characters, optionally joined by the mid-word punctuation UAX#29 keeps inside words.
# Han, Hiragana and Thai characters are single-character tokens as in StandardTokenizer (ideographic).
_IDEOGRAPHIC = r"[\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_WORD = (
    rf"{_IDEOGRAPHIC}|"
    r"(?:(?![\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])\w)+"
    r"(?:(?:(?<=[^\W\d_])[.'’:](?=[^\W\d_])|(?<=\d)[.,;'’](?=\d))"
    r"(?:(?![\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])\w)+)*"
)
_TOKEN_RE = re.compile(_WORD)
_MAX_TOKEN_LENGTH = 255  # StandardTokenizer's default; longer runs are split, as Lucene does


@dataclasses.dataclass(frozen=True)
class Analyzer:
    """Tokenise, lowercase, remove possessives and stopwords, stem.

    Parameters are stored in each index's manifest so queries are analysed exactly as documents were.
    ``stemmer`` is any PyStemmer algorithm ("porter" is Lucene's PorterStemFilter; "english" is Snowball).
    """

    lowercase: bool = True
    possessive: bool = True
    stopwords: str = "lucene"
    stemmer: str | None = "porter"

    def __post_init__(self) -> None:
        if self.stopwords not in STOPWORDS:
            raise ValueError(f"unknown stopword list {self.stopwords!r}; choose one of {sorted(STOPWORDS)}")
        if self.stemmer is not None and self.stemmer not in Stemmer.algorithms():
            raise ValueError(f"unknown stemmer {self.stemmer!r}; PyStemmer offers {Stemmer.algorithms()}")

    @cached_property
    def _stemmer(self) -> Any:
        return Stemmer.Stemmer(self.stemmer) if self.stemmer else None

    def tokenize(self, text: str) -> list[str]:
        """Surface tokens before stopping and stemming (lowercased if configured)."""
        tokens = _TOKEN_RE.findall(text)
        if any(len(t) > _MAX_TOKEN_LENGTH for t in tokens):
            tokens = [t[i : i + _MAX_TOKEN_LENGTH] for t in tokens for i in range(0, len(t), _MAX_TOKEN_LENGTH)]
        if self.possessive:
            tokens = [t[:-2] if t[-2:] in ("'s", "’s", "'S", "’S") else t for t in tokens]
        if self.lowercase:
            tokens = [t.lower() for t in tokens]
        return tokens

    def __call__(self, text: str) -> list[str]:
        """Index terms for ``text``, in order (repeats kept: term frequency matters)."""
        stop = STOPWORDS[self.stopwords]
        tokens = [t for t in self.tokenize(text) if t not in stop]
        stemmer = self._stemmer
        return stemmer.stemWords(tokens) if stemmer is not None else tokens

    def analyze_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self(t) for t in texts]

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Analyzer:
        return cls(**config)


def english_analyzer() -> Analyzer:
    """The default: Lucene EnglishAnalyzer equivalent (possessives, 33 stopwords, Porter)."""
    return Analyzer()
