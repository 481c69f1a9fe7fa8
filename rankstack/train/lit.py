"""LiT: train the text side of a dual encoder against a frozen ("locked") image tower (Zhai et al. 2022).

The image tower never changes, so its features are computed once for every training image and the loop only
runs the text side: the projection alone (``train_layers=0``: the text encoder's pooled outputs are cached too,
and an epoch costs milliseconds) or with its top layers. The loss is CLIP's symmetric InfoNCE with a learnable
temperature; a caption batch never holds two captions of one image as each other's negatives (an image with
several captions in the batch counts all of them as positives).

Free extra pairs: the frozen tower's ImageNet classifier has one weight vector per class in its own feature
space, so ``"a photo of a {class}"`` paired with that direction is a training pair that costs no image
(``class_prompts=True``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankstack.models.layers import train_top_layers
from rankstack.multimodal.dual import CompositeDualEncoder
from rankstack.multimodal.images import ImageBatches
from rankstack.multimodal.towers import imagenet_class_names
from rankstack.train.examples import Example, TrainingSet
from rankstack.train.trainer import LoopSettings, TrainingLoop

_CLASS = "imagenet-class:"
_MAX_LOG_SCALE = float(np.log(100.0))  # CLIP clamps its logit scale at 100


@dataclasses.dataclass(frozen=True)
class LiTConfig(LoopSettings):
    """``learning_rate`` is the text encoder's (when ``train_layers`` > 0); the fresh projection and the
    temperature learn at ``head_learning_rate``. ``hard_negatives``: per caption, that many extra images,
    the nearest to its own image in the frozen feature space."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-5
    head_learning_rate: float = 1e-3
    train_layers: int = 0
    class_prompts: bool = True
    class_templates: tuple[str, ...] = ("a photo of a {}.",)
    hard_negatives: int = 0
    learn_temperature: bool = True


class LiTTrainer(TrainingLoop):
    """Train ``model`` (a ``CompositeDualEncoder``) on ``(text, image path)`` pairs; saves under ``output_dir``."""

    def __init__(self, model: CompositeDualEncoder, pairs: Sequence[tuple[str, str | os.PathLike[str]]],
                 config: LiTConfig, output_dir: str | Path):  # fmt: skip
        if not pairs:
            raise ValueError("LiT training needs at least one (text, image) pair")
        self.model, self.lit = model, config
        paths = sorted({str(p) for _, p in pairs})
        features = _tower_features(model, paths, config.show_progress)
        readable = [p for p in paths if p in features]
        if not readable:
            raise ValueError("none of the training images could be read")
        stacked = torch.stack([features[p] for p in readable])
        model.heads.image_center.copy_(stacked.mean(0))  # the frozen side's centring is part of the model
        self.features = features
        examples = [Example(f"pair-{i}", text, str(path)) for i, (text, path) in enumerate(pairs) if str(path) in features]
        if config.class_prompts:
            examples += self._class_examples(float((stacked - stacked.mean(0)).norm(dim=1).mean()))
        data = TrainingSet(examples, {}, {e.qid: frozenset([e.positive]) for e in examples})
        self.neighbours = _nearest(features, readable, config.hard_negatives)
        train_top_layers(model.text, config.train_layers)
        self.pooled: dict[str, torch.Tensor] | None = None
        if config.train_layers == 0:  # the text encoder is frozen: its pooled outputs never change
            texts = sorted({e.query for e in examples})
            with torch.inference_mode():
                pooled = torch.cat([model.pool_text(texts[i : i + 128]) for i in range(0, len(texts), 128)])
            self.pooled = {t: pooled[i].clone() for i, t in enumerate(texts)}
        model.heads.log_scale.requires_grad_(config.learn_temperature)
        modules = [model.heads] + ([model.text] if config.train_layers else [])
        super().__init__(model, modules, data, config, output_dir)

    def _class_examples(self, norm: float) -> list[Example]:
        """Class-name prompts paired with the classifier's class directions, placed at the typical distance of a
        centred training image from the centre."""
        weight, _ = self.model.tower.classifier()
        directions = torch.nn.functional.normalize(weight.to(self.model.device), dim=1) * norm
        names = imagenet_class_names()
        for c, direction in enumerate(directions):
            self.features[f"{_CLASS}{c}"] = self.model.heads.image_center + direction
        return [Example(f"class-{c}-{t}", template.format(name), f"{_CLASS}{c}")
                for c, name in enumerate(names) for t, template in enumerate(self.lit.class_templates)]  # fmt: skip

    def fresh_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.heads.parameters())

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        model = self.model
        texts = [e.query for e in examples]
        pooled = torch.stack([self.pooled[t] for t in texts]) if self.pooled is not None else model.pool_text(texts)
        t = torch.nn.functional.normalize(model.project_text(pooled), dim=-1)
        images = list(dict.fromkeys(e.positive for e in examples))
        if self.neighbours:
            rng = np.random.default_rng([self.lit.seed, step, 2])
            extra = [n for e in examples for n in _pick(self.neighbours.get(e.positive, []), self.lit.hard_negatives, rng)]
            images += [n for n in dict.fromkeys(extra) if n not in set(images)]
        column = {d: j for j, d in enumerate(images)}
        target = torch.tensor([column[e.positive] for e in examples], device=t.device)
        feats = torch.stack([self.features[d] for d in images])
        i = torch.nn.functional.normalize(model.project_image(feats), dim=-1)
        scale = model.heads.log_scale.clamp(max=_MAX_LOG_SCALE).exp()
        logits = scale * t @ i.T  # [texts, images]
        text_to_image = torch.nn.functional.cross_entropy(logits, target)
        # image -> text over the batch's own images: every caption of an image is one of its positives
        own = logits[:, : len(dict.fromkeys(e.positive for e in examples))].T
        positive = target.unsqueeze(0) == torch.arange(own.shape[0], device=t.device).unsqueeze(1)
        image_to_text = (own.logsumexp(1) - own.masked_fill(~positive, float("-inf")).logsumexp(1)).mean()
        return (text_to_image + image_to_text) / 2


def _tower_features(model: CompositeDualEncoder, paths: list[str], show: bool) -> dict[str, torch.Tensor]:
    features: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for rows, pixels in ImageBatches(paths, model.transform, 32, model.threads, model.max_pixels, show,
                                         desc="image features"):  # fmt: skip
            out = model.tower.features(torch.from_numpy(pixels))
            features.update({paths[r]: out[j].clone() for j, r in enumerate(rows)})
    return features


def _nearest(features: dict[str, torch.Tensor], keys: list[str], k: int) -> dict[str, list[str]]:
    """For each image, its ``4 k`` nearest other images by cosine of centred frozen features (a pool to draw from)."""
    if k <= 0 or len(keys) < 2:
        return {}
    x = torch.stack([features[p] for p in keys])
    x = torch.nn.functional.normalize(x - x.mean(0), dim=1)
    sims = x @ x.T
    sims.fill_diagonal_(float("-inf"))
    top = sims.topk(min(4 * k, len(keys) - 1), dim=1).indices.tolist()
    return {keys[i]: [keys[j] for j in row] for i, row in enumerate(top)}


def _pick(pool: list[str], k: int, rng: np.random.Generator) -> list[str]:
    if not pool:
        return []
    return [pool[i] for i in sorted(rng.choice(len(pool), size=min(k, len(pool)), replace=False).tolist())]


def train_lit(model: CompositeDualEncoder | None, pairs: Sequence[tuple[str, Any]], output_dir: str | Path,
              config: LiTConfig | None = None, resume: bool = False) -> CompositeDualEncoder:  # fmt: skip
    """Train (or resume) LiT-style and return the trained model, loaded from ``output_dir/final``.

    ``model`` defaults to EfficientNet-Lite0 + the packaged all-MiniLM-L6-v2 (``CompositeDualEncoder()``).
    """
    model = model if model is not None else CompositeDualEncoder()
    final = LiTTrainer(model, pairs, config or LiTConfig(), output_dir).train(resume=resume)
    return CompositeDualEncoder.load(final, device=model.device)
