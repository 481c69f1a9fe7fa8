"""Image collections in BEIR-like layout: corpus rows name an ``image`` file (relative to the collection folder),
queries are captions, and ``qrels/test.tsv`` says which image each caption describes.

The same files give both directions: text-to-image (captions search images) and image-to-text (images search
the captions; ``qrels/test_image_to_text.tsv`` where present, else the caption qrels inverted). A corpus field
such as COCO's ``coco_split`` selects the images of one split, and with them their captions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rankstack.data import Collection, load_collection
from rankstack.errors import RankstackError
from rankstack.types import Qrels, Queries


def _quietly(corpus: Any) -> Iterator[Any]:
    reader_log = logging.getLogger("rankstack.data.readers")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    try:
        yield from corpus
    finally:
        reader_log.setLevel(level)


class ImageCollection:
    """An image collection: ``images`` (docid -> absolute path), ``captions`` (Queries) and the caption -> image
    judgments, optionally restricted to the images whose corpus ``field`` equals ``value``."""

    def __init__(self, collection: Collection | str | Path, where: Mapping[str, Any] | None = None,
                 split: str = "test"):  # fmt: skip
        self.collection = collection if isinstance(collection, Collection) else load_collection(collection)
        self.root = self.collection.path
        self.where = dict(where or {})
        images: dict[str, Path] = {}
        for doc in _quietly(self.collection.corpus):  # image rows have no text: the reader's warning says nothing
            relative = doc.fields.get("image")
            if relative is None:
                raise RankstackError(
                    f"{self.collection.name}: corpus row {doc.docid!r} has no 'image' field; an image collection names "
                    "each row's image file (relative to the collection folder)"
                )
            if all(doc.fields.get(k) == v for k, v in self.where.items()):
                images[doc.docid] = self.root / str(relative)
        if not images:
            raise RankstackError(f"{self.collection.name}: no image matches {self.where}")
        self.images = images
        judged = self.collection.qrels(split)
        keep = [i for i, d in enumerate(judged.docid.tolist()) if d in images]
        self.qrels = Qrels(judged.qid[keep], judged.docid[keep], judged.relevance[keep])
        self.caption_image = dict(zip(self.qrels.qid.tolist(), self.qrels.docid.tolist(), strict=True))
        self.captions = self.collection.queries.subset(self.caption_image)

    def __repr__(self) -> str:
        where = f", where={self.where}" if self.where else ""
        return f"ImageCollection({self.collection.name!r}{where}: {len(self.images)} images, {len(self.captions)} captions)"

    def text_to_image(self) -> tuple[Queries, Qrels]:
        """Caption queries and their judged images."""
        return self.captions, self.qrels

    def image_to_text(self) -> tuple[Queries, Qrels]:
        """Image queries (``Queries.image`` holds the paths) and the captions that describe each."""
        queries = Queries.from_images({docid: str(path) for docid, path in self.images.items()})
        qrels = Qrels(self.qrels.docid, self.qrels.qid, self.qrels.relevance)
        return queries, qrels

    def pairs(self) -> list[tuple[str, Path]]:
        """(caption text, image path) for every judged caption: training pairs."""
        texts = self.captions.to_dict()
        return [(texts[q], self.images[d]) for q, d in self.caption_image.items() if q in texts]
