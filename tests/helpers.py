"""Tiny synthetic corpora for unit tests, a brute-force BM25 to check the engine against, and fixed stages."""

from __future__ import annotations

import math
import random
from collections import Counter

from rankstack.index import decode_norm, encode_norm
from rankstack.pipeline import Stage
from rankstack.text import Analyzer
from rankstack.types import Document, Queries, Ranking

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


class Fixed(Stage):
    """Returns a fixed ranking; records the k it was asked for (to check cut-off push-down)."""

    def __init__(self, name, rows, k=1000):
        self.name, self.rows, self.k = name, rows, k

    def __call__(self, inp):
        r = Ranking([q for q, _, _ in self.rows], [d for _, d, _ in self.rows], [s for _, _, s in self.rows])
        return r.cutoff(self.k)

    def with_cutoff(self, k):
        return Fixed(self.name, self.rows, min(k, self.k))

    def __repr__(self):
        return self.name if self.k == 1000 else f"{self.name}[k={self.k}]"


A = Fixed("A", [("1", "a", 3.0), ("1", "b", 2.0), ("1", "c", 1.0)])
B = Fixed("B", [("1", "c", 30.0), ("1", "a", 20.0), ("1", "d", 10.0)])
Q = Queries(["1"], ["q"])
