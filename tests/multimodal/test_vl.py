"""The vision-language cross-encoder: joint scoring, a ViLT checkpoint through the same Stage, the re-ranking Stage in
both directions, and training that separates a caption's image from the others."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankstack import Queries, Ranking, RankstackError
from rankstack.models.model_dir import packaged_path
from rankstack.multimodal import ImageCollection
from rankstack.multimodal.vl import ViltScorer, VLCrossEncoder, VLReranker, load_vl_scorer
from rankstack.train.vl import VLConfig, VLTrainer

pytestmark = pytest.mark.collection


@pytest.fixture(scope="module")
def vl(tower):
    torch.manual_seed(0)
    return VLCrossEncoder(tower, "minilm", device="cpu")


def test_scores_pairs_alone_and_batched_and_reloads(vl, photos, tmp_path):
    texts = ["a plate of food", "a dog running on the grass", "two people on a beach"]
    images = [photos[0], photos[1], photos[0]]
    together = vl.score(texts, images)
    alone = np.array([vl.score([t], [i])[0] for t, i in zip(texts, images, strict=True)])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert vl.num_regions == 49
    with pytest.warns(UserWarning, match="nothing.jpg"):
        partial = vl.score(["x", "y"], [tmp_path / "nothing.jpg", photos[2]])
    assert np.isnan(partial[0]) and np.isfinite(partial[1])
    again = load_vl_scorer(vl.save(tmp_path / "vl"), device="cpu")
    assert isinstance(again, VLCrossEncoder)
    np.testing.assert_allclose(again.score(texts, images), together, atol=1e-5)


def test_vilt_checkpoint_scores_like_transformers(photos, tmp_path):
    from transformers import AutoTokenizer, ViltConfig, ViltForImageAndTextRetrieval, ViltImageProcessor, ViltProcessor

    torch.manual_seed(0)
    config = ViltConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=64,
                        patch_size=16, max_position_embeddings=40)  # fmt: skip
    reference = ViltForImageAndTextRetrieval(config).eval()
    reference.save_pretrained(tmp_path)
    processor = ViltProcessor(ViltImageProcessor(size={"shortest_edge": 64}, size_divisor=16),
                              AutoTokenizer.from_pretrained(packaged_path("minilm")))  # fmt: skip
    processor.save_pretrained(tmp_path)
    scorer = load_vl_scorer(tmp_path, device="cpu")
    assert isinstance(scorer, ViltScorer)
    texts, images = ["a dog", "food on a table"], [photos[0], photos[1]]
    ours = scorer.score(texts, images)
    from rankstack.multimodal.images import open_image

    batch = processor(images=[open_image(p) for p in images], text=texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**batch).logits[:, 0].numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)


class _ByLength:
    """A scorer whose score is the text length: the re-ranked order is known in advance."""

    def score(self, texts, images):
        return np.array([float(len(t)) for t in texts])


def test_reranker_both_directions_and_missing_documents(image_collection):
    col = ImageCollection(image_collection)
    image_ids = list(col.images)
    caption_ids = col.captions.qid.tolist()
    texts = col.captions.to_dict()
    stage = VLReranker(_ByLength(), images=col, texts=col.captions)
    queries = Queries(["q1"], ["a caption"])
    first = Ranking(["q1"] * 3, [image_ids[0], image_ids[1], "unknown"], [3.0, 2.0, 1.0], queries=queries)
    with pytest.warns(UserWarning, match="1 documents have no image"):
        out = stage(first)
    assert out.docid.tolist()[-1] == "unknown" and len(out) == 3
    image_query = Queries.from_images({"i1": str(col.images[image_ids[0]])})
    ranked = Ranking(["i1"] * 3, caption_ids[:3], [3.0, 2.0, 1.0], queries=image_query)
    out = stage(ranked)
    expected = sorted(caption_ids[:3], key=lambda c: -len(texts[c]))
    assert out.docid.tolist() == expected
    with pytest.raises(RankstackError, match="needs images"):
        VLReranker(_ByLength())


def test_training_separates_a_captions_image(image_collection, vl, tmp_path):
    train = ImageCollection(image_collection, where={"coco_split": "train2017"})
    pairs = train.pairs()
    config = VLConfig(epochs=5, batch_size=10, num_negatives=1, train_layers=2, show_progress=False, log_every=3)
    bottom = vl.text.encoder.layer[0].output.dense.weight.clone()
    trainer = VLTrainer(vl, pairs, config, tmp_path / "vl")
    trainer.train()
    losses = [e["loss"] for e in trainer.log_history if "loss" in e]
    assert losses[-1] < losses[0]
    assert torch.equal(vl.text.encoder.layer[0].output.dense.weight, bottom)  # below the trained layers: frozen
    paths = sorted({str(p) for _, p in pairs})
    grid = vl.score([t for t, _ in pairs for _ in paths], [q for _ in pairs for q in paths]).reshape(len(pairs), -1)
    own = np.array([paths.index(str(p)) for _, p in pairs])
    right = grid[np.arange(len(pairs)), own]
    wrong = (grid.sum(axis=1) - right) / (len(paths) - 1)
    assert np.mean(right > wrong) > 0.8
