"""Text-to-image and image-to-text retrieval over the dense vector index.

An image index holds one unit vector per image from a dual encoder's image side; a caption index holds the text
side's vectors of texts. The manifest records the dual encoder and the rows' modality, so one stage serves every
direction: ``MultimodalRetriever`` encodes each query by what it is (text, or an image path in
``Queries.image``) and searches by inner product (= cosine).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import RankstackError
from rankstack.index.vectors import AnnConfig, AnnKind, VectorIndex, check_model, hits_ranking, write_vector_index
from rankstack.models.lazy import chunked
from rankstack.multimodal.dual import DualEncoder, load_dual_encoder
from rankstack.pipeline import Stage, as_queries
from rankstack.types import Corpus, Document, Queries, Ranking

ModelLike = DualEncoder | str | os.PathLike[str]


def _identity(model: DualEncoder, modality: str, source: str | None) -> dict[str, Any]:
    identity = {**model.identity(), "modality": modality}
    if source is not None:
        identity["source"] = source
    return identity


def build_image_index(
    images: Mapping[str, str | os.PathLike[str]] | Any,
    model: ModelLike,
    path: str | Path,
    ann: AnnKind | AnnConfig = "flat",
    chunk_size: int = 1024,
    overwrite: bool = False,
    show_progress: bool = True,
) -> VectorIndex:
    """Encode images (docid -> path, or an ``ImageCollection``) with the model's image side into a vector index.

    Files that cannot be read are warned about by path and left out; the rest of their batch is kept. The build
    is atomic (written aside, renamed into place).
    """
    encoder = load_dual_encoder(model)
    source = str(images.root) if hasattr(images, "root") else None
    mapping = images.images if hasattr(images, "images") else images
    config = ann if isinstance(ann, AnnConfig) else AnnConfig(kind=ann)
    skipped: list[str] = []

    def blocks() -> Iterable[tuple[list[str], np.ndarray]]:
        for chunk in chunked(mapping.items(), chunk_size):
            docids = [d for d, _ in chunk]
            vectors, kept = encoder.encode_images([p for _, p in chunk], show_progress=show_progress)
            skipped.extend(docids[i] for i in sorted(set(range(len(chunk))) - set(kept.tolist())))
            yield [docids[i] for i in kept], vectors

    index = write_vector_index(path, blocks(), _identity(encoder, "image", source), config, overwrite=overwrite)
    if skipped:
        warnings.warn(f"{len(skipped)} images could not be read and are not in {path}: {skipped[:10]}", stacklevel=2)
    return index


def build_text_index(
    texts: Mapping[str, str] | Queries | Corpus | Iterable[Document],
    model: ModelLike,
    path: str | Path,
    ann: AnnKind | AnnConfig = "flat",
    chunk_size: int = 4096,
    overwrite: bool = False,
    show_progress: bool = True,
    source: str | os.PathLike[str] | None = None,
) -> VectorIndex:
    """Encode texts (captions, alt text) with the model's text side: the index image queries search. ``source``
    (recorded in the manifest) is the collection folder the texts came from."""
    encoder = load_dual_encoder(model)
    if isinstance(texts, Queries):
        items: Iterable[tuple[str, str]] = iter(texts)
    elif isinstance(texts, Mapping):
        items = texts.items()
    else:
        items = ((d.docid, d.contents()) for d in texts)
    config = ann if isinstance(ann, AnnConfig) else AnnConfig(kind=ann)

    def blocks() -> Iterable[tuple[list[str], np.ndarray]]:
        for chunk in chunked(items, chunk_size):
            yield [d for d, _ in chunk], encoder.encode_texts([t for _, t in chunk], show_progress=show_progress)

    identity = _identity(encoder, "text", None if source is None else str(source))
    return write_vector_index(path, blocks(), identity, config, overwrite=overwrite)


class MultimodalRetriever(Stage):
    """Top ``k`` rows of a dual-encoder index per query: text queries through the text side, image queries
    (``Queries.image``) through the image side, so the same stage runs text->image, image->text, image->image.

    ``model`` defaults to the dual encoder recorded in the index manifest; another one is refused unless its
    weights match (``allow_other_model=True`` warns instead).
    """

    def __init__(
        self,
        index: VectorIndex | str | Path,
        model: ModelLike | None = None,
        k: int = 1000,
        exact: bool = False,
        allow_other_model: bool = False,
        **search: Any,
    ):
        self.index = index if isinstance(index, VectorIndex) else VectorIndex(index)
        if not self.index.is_multimodal:
            raise RankstackError(
                f"{self.index.path} holds text vectors of the text-only model {self.index.model.get('model')!r}; "
                "text-image search needs an index built with a dual encoder: rankstack index COLL --images --model M"
            )
        self.model = load_dual_encoder(model if model is not None else self.index.model["model"])
        check_model(self.index.model, self.model.identity(), self.index.path, strict=not allow_other_model)
        self.k, self.exact, self.search_options = int(k), exact, search

    def with_cutoff(self, k: int) -> MultimodalRetriever:
        return self._capped(k)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"{self.index!r}.dense({self.model!r}, k={self.k})"

    def encode(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, positions)``: one vector per query that could be encoded, and which queries they are."""
        n = len(queries)
        images = queries.image if queries.image is not None else np.full(n, "", dtype=object)
        is_image = np.asarray([bool(p) for p in images.tolist()], dtype=bool)
        vectors = np.zeros((n, self.model.dim), dtype=np.float32)
        ok = ~is_image
        if ok.any():
            vectors[ok] = self.model.encode_texts(queries.text[ok].tolist())
        if is_image.any():
            where = np.flatnonzero(is_image)
            image_vectors, kept = self.model.encode_images(images[where].tolist())
            vectors[where[kept]] = image_vectors
            ok[where[kept]] = True  # image queries that failed to load were warned about and get no results
        positions = np.flatnonzero(ok)
        return vectors[positions], positions

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        vectors, positions = self.encode(queries)
        if not len(positions):
            return Ranking.empty(queries)
        pos, scores = self.index.search(vectors, self.k, self.exact, **self.search_options)
        return hits_ranking(self.index, queries.qid[positions], pos, scores, queries)
