"""LiT training: the frozen tower stays frozen, the loss falls, class prompts come from the ImageNet head, the result
reloads, and a finished run is not trained over."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankstack.eval import evaluate
from rankstack.multimodal import CompositeDualEncoder, ImageCollection, build_image_index, imagenet_class_names
from rankstack.train import TrainingStateError
from rankstack.train.lit import LiTConfig, LiTTrainer, train_lit

pytestmark = pytest.mark.collection


def test_imagenet_class_names():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[207] == "golden retriever"


def test_lit_learns_the_training_pairs_and_reloads(image_collection, tower, tmp_path):
    train = ImageCollection(image_collection, where={"coco_split": "train2017"})
    model = CompositeDualEncoder(tower, "minilm", device="cpu")
    frozen = {k: v.clone() for k, v in tower.net.state_dict().items()}
    text_before = {k: v.clone() for k, v in model.text.state_dict().items()}
    config = LiTConfig(epochs=15, batch_size=16, class_prompts=False, show_progress=False, log_every=5)
    trainer = LiTTrainer(model, train.pairs(), config, tmp_path / "lit")
    final = trainer.train()
    losses = [e["loss"] for e in trainer.log_history if "loss" in e]
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(frozen[k], v) for k, v in tower.net.state_dict().items())
    assert all(torch.equal(text_before[k], v) for k, v in model.text.state_dict().items())  # projection only
    trained = CompositeDualEncoder.load(final, device="cpu")
    queries, qrels = train.text_to_image()
    index = build_image_index(train, trained, tmp_path / "index", show_progress=False)
    r1 = evaluate(index.dense(trained, k=6)(queries), qrels, ["R@1"])["R@1"]
    assert r1 > 0.6  # 30 captions of 6 images: chance is 1/6
    np.testing.assert_allclose(trained.heads.image_center.numpy(), model.heads.image_center.numpy())
    with pytest.raises(TrainingStateError, match="already holds a training run"):
        LiTTrainer(CompositeDualEncoder(tower, "minilm", device="cpu"), train.pairs(), config, tmp_path / "lit").train()


def test_lit_with_class_prompts_top_layers_and_hard_negatives(image_collection, tower, tmp_path):
    train = ImageCollection(image_collection, where={"coco_split": "train2017"})
    model = CompositeDualEncoder(tower, "minilm", device="cpu")
    config = LiTConfig(epochs=1, batch_size=64, train_layers=1, hard_negatives=2, show_progress=False)
    trainer = LiTTrainer(model, train.pairs(), config, tmp_path / "lit")
    assert len(trainer.data) == 30 + 1000  # captions + one prompt per ImageNet class
    assert trainer.data.examples[-1].query == "a photo of a toilet tissue."
    layers = model.text.encoder.layer
    assert all(p.requires_grad for p in layers[-1].parameters())
    assert not any(p.requires_grad for p in layers[0].parameters())
    top_before = layers[-1].output.dense.weight.clone()
    loss = trainer.loss(trainer.batch(0), 0)
    assert torch.isfinite(loss)
    trained = train_lit(model, train.pairs(), tmp_path / "lit", config, resume=False)
    assert not torch.equal(model.text.encoder.layer[-1].output.dense.weight, top_before)
    assert isinstance(trained, CompositeDualEncoder)
