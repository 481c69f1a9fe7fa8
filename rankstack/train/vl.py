"""Training the vision-language cross-encoder on (caption, image) pairs with hard negatives from a dual encoder.

Each caption is one softmax group: its image against ``num_negatives`` other images drawn from the dual encoder's
top candidates for the caption (the images the re-ranker will actually be asked to separate) — the localized
contrastive estimation recipe of the text cross-encoders (``rankstack.train.rerank``). The image tower is frozen, so
every training image's region grid is computed once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankstack.models.layers import train_top_layers
from rankstack.multimodal.vl import VLCrossEncoder
from rankstack.train.examples import Example, TrainingSet
from rankstack.train.trainer import LoopSettings, TrainingLoop


@dataclasses.dataclass(frozen=True)
class VLConfig(LoopSettings):
    """``learning_rate``: the transformer's; the fresh region projection, positions and head use
    ``head_learning_rate``."""

    epochs: int = 10
    batch_size: int = 16
    num_negatives: int = 3
    train_layers: int | None = None  # the top N transformer layers learn (None: all, with the embeddings)
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3


class VLTrainer(TrainingLoop):
    """Train ``model`` on ``pairs`` of (caption, image path); ``candidates`` maps each caption to a ranked list of
    image paths to draw negatives from (a dual encoder's top k; its own image is skipped). Without candidates,
    negatives are the other training images at random."""

    def __init__(self, model: VLCrossEncoder, pairs: Sequence[tuple[str, str | os.PathLike[str]]], config: VLConfig,
                 output_dir: str | Path, candidates: Mapping[str, Sequence[str]] | None = None):  # fmt: skip
        if not pairs:
            raise ValueError("VL training needs at least one (text, image) pair")
        self.model, self.vl = model, config
        paths = sorted({str(p) for _, p in pairs} | {str(c) for cs in (candidates or {}).values() for c in cs})
        regions, kept = model.regions(paths)
        self.regions = {paths[i]: regions[j] for j, i in enumerate(kept)}
        examples = [Example(f"pair-{i}", text, str(p)) for i, (text, p) in enumerate(pairs) if str(p) in self.regions]
        pools = {e.qid: [str(c) for c in (candidates or {}).get(e.query, ()) if str(c) != e.positive and
                         str(c) in self.regions] for e in examples}  # fmt: skip
        everything = sorted({e.positive for e in examples})
        for e in examples:  # no candidates: random other images
            pools[e.qid] = pools[e.qid] or [p for p in everything if p != e.positive]
        data = TrainingSet(examples, {}, {e.qid: frozenset([e.positive]) for e in examples}, negatives=pools)
        if config.train_layers is not None:
            train_top_layers(model.text, config.train_layers)
        super().__init__(model, [model.text, model.heads], data, config, output_dir)

    def fresh_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.heads.parameters())

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.vl.seed, step, 3])
        groups = [[e.positive, *self._sample(self.data.negatives.get(e.qid, []), rng)] for e in examples]
        texts = [e.query for e, g in zip(examples, groups, strict=True) for _ in g]
        regions = torch.stack([self.regions[p] for g in groups for p in g])
        logits = self.model.forward(texts, regions)
        losses, start = [], 0
        for g in groups:
            losses.append(-torch.log_softmax(logits[start : start + len(g)], dim=0)[0])
            start += len(g)
        return torch.stack(losses).mean()


def train_vl(pairs: Sequence[tuple[str, Any]], output_dir: str | Path, config: VLConfig | None = None,
             candidates: Mapping[str, Sequence[str]] | None = None, model: VLCrossEncoder | None = None,
             resume: bool = False) -> VLCrossEncoder:  # fmt: skip
    """Train (or resume) and return the model loaded from ``output_dir/final``; ``model`` defaults to
    EfficientNet-Lite0 regions + the packaged all-MiniLM-L6-v2."""
    model = model if model is not None else VLCrossEncoder()
    final = VLTrainer(model, pairs, config or VLConfig(), output_dir, candidates).train(resume=resume)
    return VLCrossEncoder.load(final, device=model.device)
