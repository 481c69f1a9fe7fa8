"""Tiny synthetic corpora for unit tests, and a brute-force BM25 to check the engine against."""

from __future__ import annotations

import math
import random
from collections import Counter

from rankstack.index import decode_norm, encode_norm
from rankstack.text import Analyzer
from rankstack.types import Document

WORDS = [f"w{i}" for i in range(40)]


def random_docs(n: int, seed: int = 0, max_len: int = 30, prefix: str = "d") -> list[Document]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        length = rng.randint(0, max_len)
        # Zipf-ish: low word numbers are frequent
        words = [WORDS[min(int(rng.paretovariate(1.2)) - 1, len(WORDS) - 1)] for _ in range(length)]
        docs.append(Document(f"{prefix}{i}", " ".join(words), title=None))
    return docs


def random_queries(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS[:25]) for _ in range(rng.randint(1, 6))) for _ in range(n)]


def brute_force_bm25(
    docs: list[Document], query: str, k1: float = 0.9, b: float = 0.4, analyzer: Analyzer | None = None
):
    """Lucene BM25 written the slow, obvious way: {docid: score} for every matching document."""
    analyzer = analyzer or Analyzer()
    bags = [Counter(analyzer(d.contents())) for d in docs]
    lengths = [sum(bag.values()) for bag in bags]
    n = sum(1 for x in lengths if x > 0)
    avgdl = sum(lengths) / n
    q = Counter(analyzer(query))
    out = {}
    for doc, bag, dl in zip(docs, bags, lengths, strict=True):
        score = 0.0
        for term, boost in q.items():
            tf = bag.get(term, 0)
            if tf == 0:
                continue
            df = sum(1 for other in bags if term in other)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            norm = k1 * (1 - b + b * decode_norm(encode_norm(dl)) / avgdl)
            score += boost * idf * tf / (tf + norm)
        if score > 0:
            out[doc.docid] = score
    return out
