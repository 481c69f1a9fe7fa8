"""Zero-shot image classification with a dual encoder: class names become texts through prompt templates.

As in CLIP (Radford et al. 2021): each class's vector is the mean of its prompts' unit text vectors,
re-normalised (prompt ensembling); an image's class probabilities are the softmax of its scaled cosines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from rankstack.multimodal.dual import DualEncoder, load_dual_encoder

DEFAULT_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "a close-up photo of a {}.", "a photo of the {}.")


class ZeroShotClassifier:
    """``predict_proba(images) -> [n, classes]`` and ``predict(images) -> class names``."""

    def __init__(self, model: DualEncoder | str | os.PathLike[str], classes: Sequence[str],
                 templates: Sequence[str] = DEFAULT_TEMPLATES):  # fmt: skip
        if not classes:
            raise ValueError("give at least one class name")
        bad = [t for t in templates if "{}" not in t]
        if bad or not templates:
            raise ValueError(f"every prompt template needs a '{{}}' for the class name; these have none: {bad}")
        self.model = load_dual_encoder(model)
        self.classes, self.templates = list(classes), list(templates)
        prompts = [t.format(c) for c in self.classes for t in self.templates]
        vectors = self.model.encode_texts(prompts).reshape(len(self.classes), len(self.templates), -1).mean(axis=1)
        self.class_vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def __repr__(self) -> str:
        return f"ZeroShotClassifier({self.model!r}, {len(self.classes)} classes, {len(self.templates)} templates)"

    def predict_proba(self, images: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """Class probabilities per image; rows of images that could not be read are NaN (and warned about)."""
        vectors, kept = self.model.encode_images(images)
        logits = self.model.similarity(vectors, self.class_vectors)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        out = np.full((len(images), len(self.classes)), np.nan)
        out[kept] = probs / probs.sum(axis=1, keepdims=True)
        return out

    def predict(self, images: Sequence[str | os.PathLike[str]]) -> list[str | None]:
        """The most likely class per image (None for an image that could not be read)."""
        probs = self.predict_proba(images)
        return [None if np.isnan(row).all() else self.classes[int(np.nanargmax(row))] for row in probs]
