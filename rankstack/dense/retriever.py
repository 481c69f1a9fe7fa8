"""Dense first-stage retrieval: encode queries, search a vector index by inner product.

The DPR / ANCE / RepBERT family (Karpukhin et al. 2020; Xiong et al. 2021; Zhan et al. 2020) share this
shape: one vector per query and per document, relevance = their inner product (cosine when the model
normalises). What differs is how the encoder was trained (``rankstack.train``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.dense.encoder import BiEncoder
from rankstack.index.vectors import AnnConfig, AnnKind, VectorIndex, check_model, hits_ranking, write_vector_index
from rankstack.pipeline import Stage, as_queries, refuse_image_queries
from rankstack.types import Corpus, Document, Queries, Ranking

ModelLike = BiEncoder | str | os.PathLike[str]


def as_encoder(model: ModelLike, **kwargs: Any) -> BiEncoder:
    return model if isinstance(model, BiEncoder) else BiEncoder(model, **kwargs)


def build_dense_index(
    corpus: Corpus | Iterable[Document],
    model: ModelLike,
    path: str | Path,
    ann: AnnKind | AnnConfig = "flat",
    dtype: str = "float32",
    chunk_size: int = 4096,
    overwrite: bool = False,
    show_progress: bool = True,
) -> VectorIndex:
    """Encode ``corpus`` with the model's document encoder, streaming, and write a vector index.

    The manifest records the model (name, revision, weight fingerprint, pooling, prefixes), so the index
    refuses to be searched with a different one. ``ann``: "flat" (exact), "hnsw" or "ivfpq", or an
    ``AnnConfig`` with their parameters.
    """
    encoder = as_encoder(model)
    config = ann if isinstance(ann, AnnConfig) else AnnConfig(kind=ann)
    blocks = encoder.stream_docs(corpus, chunk_size=chunk_size, show_progress=show_progress)
    return write_vector_index(path, blocks, encoder.identity(), config, dtype=dtype, overwrite=overwrite)


class DenseRetriever(Stage):
    """Top ``k`` documents per query by inner product between query and document vectors.

    ``model`` defaults to the model recorded in the index manifest. A model whose weights or pooling
    differ from the index's is refused (``allow_other_model=True`` turns that into a warning, e.g. for an
    ONNX int8 export of the same model); a dimension mismatch is always an error. ``exact=True`` ignores
    the index's HNSW / IVF-PQ structure and scores every document.
    """

    def __init__(
        self,
        index: VectorIndex | str | Path,
        model: ModelLike | None = None,
        k: int = 1000,
        exact: bool = False,
        ef_search: int | None = None,
        nprobe: int | None = None,
        allow_other_model: bool = False,
        batch_size: int = 256,
    ):
        self.index = index if isinstance(index, VectorIndex) else VectorIndex(index)
        self.encoder = as_encoder(model if model is not None else self.index.model["model"])
        check_model(self.index.model, self.encoder.identity(), self.index.path, strict=not allow_other_model)
        self.k, self.exact, self.ef_search, self.nprobe = int(k), exact, ef_search, nprobe
        self.allow_other_model, self.batch_size = allow_other_model, batch_size

    def with_cutoff(self, k: int) -> DenseRetriever:
        return self._capped(k)  # type: ignore[return-value]

    def __repr__(self) -> str:
        extra = ", exact=True" if self.exact else ""
        return f"{self.index!r}.dense({self.encoder!r}, k={self.k}{extra})"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        refuse_image_queries(queries, f"{self.index.path} (vectors of {self.index.model.get('model')!r})")
        vectors = self.encoder.encode_queries(queries.text.tolist())
        qids = queries.qid
        pos_parts, score_parts = [], []
        for lo in range(0, len(vectors), self.batch_size):
            pos, scores = self.index.search(
                vectors[lo : lo + self.batch_size], self.k, self.exact, self.ef_search, self.nprobe
            )
            pos_parts.append(pos)
            score_parts.append(scores)
        if not pos_parts:
            return Ranking.empty(queries)
        return hits_ranking(self.index, qids, np.vstack(pos_parts), np.vstack(score_parts), queries)
