"""Stopword lists, by name. ``lucene`` is Lucene's EnglishAnalyzer default set (what Pyserini uses)."""

from __future__ import annotations

LUCENE_ENGLISH = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)

STOPWORDS: dict[str, frozenset[str]] = {"lucene": LUCENE_ENGLISH, "none": frozenset()}
