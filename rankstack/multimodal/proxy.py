"""The text-proxy baseline: find images through the other texts attached to them (captions, alt text).

This is how photo collections with alt text are searched without any image model: retrieve texts, then give
each image the best score among its texts. When the queries are themselves captions of the collection (as in
COCO evaluations), a query's own caption is left out, so an image is found only through its *other* captions.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rankstack.pipeline import Stage, as_queries
from rankstack.types import Queries, Ranking


class TextProxy(Stage):
    """Images ranked by their texts: ``texts`` is any text retriever over a caption index (BM25, dense), and
    ``text_image`` maps each caption's docid to its image's docid. ``aggregate``: "max" (the best caption) or
    "sum" (every caption that matched). ``leave_out_query=True`` drops the caption whose docid is the query's qid.
    """

    def __init__(self, texts: Stage, text_image: Mapping[str, str], k: int = 100, aggregate: str = "max",
                 leave_out_query: bool = True):  # fmt: skip
        if aggregate not in ("max", "sum"):
            raise ValueError(f"aggregate must be 'max' or 'sum', not {aggregate!r}")
        self.texts, self.text_image, self.k = texts, dict(text_image), int(k)
        self.aggregate, self.leave_out_query = aggregate, leave_out_query

    def __repr__(self) -> str:
        return f"TextProxy({self.texts!r}, {len(self.text_image)} texts, k={self.k}, aggregate={self.aggregate!r})"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        found = self.texts(queries)
        qids, docids, scores = found.qid.tolist(), found.docid.tolist(), found.score.tolist()
        best: dict[tuple[str, str], float] = {}
        for qid, docid, score in zip(qids, docids, scores, strict=True):
            if self.leave_out_query and docid == qid:
                continue
            image = self.text_image.get(docid)
            if image is None:
                continue
            key = (qid, image)
            if key not in best:
                best[key] = score
            else:
                best[key] = max(best[key], score) if self.aggregate == "max" else best[key] + score
        if not best:
            return Ranking.empty(queries)
        keys = list(best)
        ranking = Ranking([q for q, _ in keys], [d for _, d in keys], np.fromiter(best.values(), float), queries=queries)
        return ranking.cutoff(self.k)
