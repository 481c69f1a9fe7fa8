"""Dual encoders: CLIP's similarity against transformers' own logits, the tower against a plain forward,
a composite model saved and reloaded, and a directory whose two sides disagree refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rankstack.models.model_dir import ModelDirectoryError, packaged_path
from rankstack.multimodal import CompositeDualEncoder, HFDualEncoder, ZeroShotClassifier, load_dual_encoder
from rankstack.multimodal.images import load_pixels

pytestmark = pytest.mark.collection


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A randomly initialised CLIPModel with MiniLM's WordPiece tokenizer and a 32-pixel image processor."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    text = dict(vocab_size=30522, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=64, eos_token_id=102, pad_token_id=0, bos_token_id=101)  # fmt: skip
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                  patch_size=8)  # fmt: skip
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16, logit_scale_init_value=2.0))
    path = tmp_path_factory.mktemp("tiny-clip")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(packaged_path("minilm")).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path, model.eval()


def test_clip_similarity_equals_transformers_logits(tiny_clip, photos):
    path, reference = tiny_clip
    dual = load_dual_encoder(path, device="cpu")
    assert isinstance(dual, HFDualEncoder) and dual.dim == 16
    texts = ["a dog on a beach", "two plates of food on a table with a glass", "a cat"]
    images = photos[:3]
    t = dual.encode_texts(texts)
    i, kept = dual.encode_images(images)
    assert kept.tolist() == [0, 1, 2]
    ours = dual.similarity(t, i)
    batch = dual.tokenizer(texts, padding=True, return_tensors="pt")
    pixels = torch.from_numpy(np.stack([load_pixels(p, dual.transform) for p in images]))
    with torch.no_grad():
        out = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=pixels)
    np.testing.assert_allclose(ours, out.logits_per_text.numpy(), atol=1e-4, rtol=1e-5)
    # and an independent computation of the formula from the raw embeddings
    te = out.text_embeds.numpy() / np.linalg.norm(out.text_embeds.numpy(), axis=1, keepdims=True)
    ie = out.image_embeds.numpy() / np.linalg.norm(out.image_embeds.numpy(), axis=1, keepdims=True)
    np.testing.assert_allclose(ours, np.exp(2.0) * te @ ie.T, atol=1e-4)
    assert dual.transform.size == 32 and dual.transform.resize == 40


def test_tower_features_equal_a_plain_forward(tower, composite, photos, tmp_path, monkeypatch):
    from rankstack.multimodal import EfficientNetTower

    pixels = torch.from_numpy(np.stack([load_pixels(p, tower.transform) for p in photos[:4]]))
    with torch.no_grad():
        plain = tower.net._avg_pooling(tower.net.extract_features(pixels)).flatten(1)
        grid = tower.net.extract_features(pixels)
        weight, bias = tower.classifier()
        np.testing.assert_allclose((plain @ weight.T + bias).numpy(), tower.net(pixels).numpy(), atol=1e-4)
    eager = EfficientNetTower(device="cpu", backend="torch")
    monkeypatch.setenv("RANKSTACK_HOME", str(tmp_path))  # the ONNX export goes to a fresh cache
    onnx = EfficientNetTower(device="cpu", backend="onnx")
    with torch.no_grad():
        np.testing.assert_allclose(eager.features(pixels).numpy(), plain.numpy(), atol=1e-6)
        np.testing.assert_allclose(onnx.features(pixels).numpy(), plain.numpy(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(onnx.regions(pixels).numpy(), grid.flatten(2).transpose(1, 2).numpy(), atol=1e-4)
    assert list((tmp_path / "towers").glob("efficientnet-lite0-*.onnx"))
    assert eager.regions(pixels).shape == (4, 49, 1280)
    # the composite's image side: centred (at zero before training), normalised, no projection
    vectors, _ = composite.encode_images(photos[:4])
    expected = plain.numpy() / np.linalg.norm(plain.numpy(), axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_composite_save_load_round_trip(tower, photos, tmp_path):
    composite = CompositeDualEncoder(tower, "minilm", device="cpu")  # its own: the weights are changed here
    torch.manual_seed(1)
    with torch.no_grad():
        composite.heads.text_projection.weight.normal_()
        composite.heads.image_center.normal_()
    saved = composite.save(tmp_path / "dual")
    assert sorted(p.name for p in saved.iterdir()) == ["dual_encoder.json", "heads.safetensors", "text"]
    again = load_dual_encoder(saved, device="cpu")
    assert isinstance(again, CompositeDualEncoder) and again.fingerprint == composite.fingerprint
    texts = ["a bowl of soup", "a man riding a horse"]
    np.testing.assert_allclose(again.encode_texts(texts), composite.encode_texts(texts), atol=1e-6)
    np.testing.assert_allclose(again.encode_images(photos[:2])[0], composite.encode_images(photos[:2])[0], atol=1e-6)
    assert again.identity()["dim"] == 1280


def test_composite_with_sides_of_different_dimensions_is_refused(composite, tmp_path):
    from safetensors.torch import load_file, save_file

    saved = composite.save(tmp_path / "dual")
    state = load_file(str(saved / "heads.safetensors"))
    state["text_projection.weight"] = state["text_projection.weight"][:512].contiguous()
    state["text_projection.bias"] = state["text_projection.bias"][:512].contiguous()
    save_file(state, str(saved / "heads.safetensors"))
    with pytest.raises(ModelDirectoryError, match="512-dimensional vectors but the image side 1280"):
        CompositeDualEncoder.load(saved, device="cpu")
    config = json.loads((saved / "dual_encoder.json").read_text())
    (saved / "dual_encoder.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ModelDirectoryError, match="format_version"):
        CompositeDualEncoder.load(saved, device="cpu")


def test_zero_shot_probabilities(composite, photos, tmp_path):
    missing = tmp_path / "gone.jpg"
    classifier = ZeroShotClassifier(composite, ["dog", "pizza", "train"], templates=["a photo of a {}.", "a {}"])
    with pytest.warns(UserWarning, match="gone.jpg"):
        probs = classifier.predict_proba([photos[0], missing, photos[1]])
    assert probs.shape == (3, 3) and np.isnan(probs[1]).all()
    np.testing.assert_allclose(np.nansum(probs, axis=1)[[0, 2]], 1.0, atol=1e-6)
    with pytest.warns(UserWarning):
        labels = classifier.predict([photos[0], missing])
    assert labels[1] is None and labels[0] in ("dog", "pizza", "train")
    with pytest.raises(ValueError, match=r"'\{\}'"):
        ZeroShotClassifier(composite, ["dog"], templates=["a photo"])


def test_siglip_similarity_equals_transformers_logits(photos, tmp_path):
    from transformers import AutoTokenizer, SiglipConfig, SiglipImageProcessor, SiglipModel

    torch.manual_seed(0)
    text = dict(vocab_size=30522, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=16)  # fmt: skip
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                  patch_size=8)  # fmt: skip
    reference = SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval()
    with torch.no_grad():
        reference.logit_bias.fill_(-3.0)
    reference.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(packaged_path("minilm")).save_pretrained(tmp_path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    dual = load_dual_encoder(tmp_path, device="cpu")
    assert dual.transform.square and dual.transform.size == 32
    texts = ["a dog", "a table with plates of food on it"]
    ours = dual.similarity(dual.encode_texts(texts), dual.encode_images(photos[:2])[0])
    batch = dual.tokenizer(texts, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    pixels = torch.from_numpy(np.stack([load_pixels(p, dual.transform) for p in photos[:2]]))
    with torch.no_grad():
        out = reference(input_ids=batch["input_ids"], pixel_values=pixels)
    np.testing.assert_allclose(ours, out.logits_per_text.numpy(), atol=1e-4, rtol=1e-5)


def test_open_clip_models_load_through_the_extra(photos, monkeypatch):
    """open_clip cannot be installed here (its torchvision needs another torch); a stand-in module with its API
    checks the glue: names, tokenizer, preprocessing settings, logit scale."""
    import sys
    import types

    class Visual(torch.nn.Module):
        image_size = (32, 32)
        image_mean = (0.5, 0.5, 0.5)
        image_std = (0.25, 0.25, 0.25)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = Visual()
            self.text_projection = torch.nn.Parameter(torch.randn(8, 6))
            self.logit_scale = torch.nn.Parameter(torch.tensor(np.log(50.0)))
            self.pixels = torch.nn.Linear(3 * 32 * 32, 6)

        def encode_text(self, tokens):
            return tokens.float()[:, :8] @ self.text_projection

        def encode_image(self, pixels):
            return self.pixels(pixels.flatten(1))

    seen = {}

    def create_model_and_transforms(architecture, pretrained=None, device=None):
        seen.update(architecture=architecture, pretrained=pretrained)
        return Model(), None, None

    stub = types.SimpleNamespace(create_model_and_transforms=create_model_and_transforms,
                                 get_tokenizer=lambda name: lambda texts: torch.ones(len(texts), 77))  # fmt: skip
    monkeypatch.setitem(sys.modules, "open_clip", stub)
    dual = load_dual_encoder("open_clip:ViT-B-32/laion2b_s34b_b79k", device="cpu")
    assert seen == {"architecture": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}
    assert dual.name == "open_clip:ViT-B-32/laion2b_s34b_b79k" and dual.dim == 6
    assert dual.transform.size == 32 and dual.transform.std == (0.25, 0.25, 0.25)
    images, kept = dual.encode_images(photos[:2])
    assert images.shape == (2, 6) and kept.tolist() == [0, 1]
    np.testing.assert_allclose(np.linalg.norm(dual.encode_texts(["a", "b"]), axis=1), 1.0, atol=1e-6)
    assert abs(dual.logit_scale - 50.0) < 1e-3


def test_open_clip_missing_names_the_extra(monkeypatch):
    import sys

    from rankstack.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(MissingExtraError, match=r"rankstack\[open_clip\]"):
        load_dual_encoder("open_clip:ViT-B-32")


def test_fresh_heads_are_seeded(tower):
    a = CompositeDualEncoder(tower, "minilm", device="cpu")
    torch.rand(5)  # the global generator moves on; the heads do not depend on it
    b = CompositeDualEncoder(tower, "minilm", device="cpu")
    c = CompositeDualEncoder(tower, "minilm", device="cpu", seed=1)
    assert torch.equal(a.heads.text_projection.weight, b.heads.text_projection.weight)
    assert not torch.equal(a.heads.text_projection.weight, c.heads.text_projection.weight)
