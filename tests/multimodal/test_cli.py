"""The multimodal CLI from end to end on a tiny image collection: train, index both sides, search by text and by
image, run the experiment; and the errors a user meets."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rankstack.cli import app

pytestmark = pytest.mark.collection
runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_train_index_search_experiment(image_collection, photos, tmp_path):
    coll = str(image_collection)
    out = _ok(["train", coll, "--multimodal", "--model", "minilm", "--split", "test", "--where", "coco_split=train2017",
               "--epochs", "2", "--no-class-prompts", "-o", tmp_path / "lit"])  # fmt: skip
    assert "trained on 30 captions of 6 images" in out
    model = tmp_path / "lit" / "final"
    out = _ok(["index", coll, "-i", tmp_path / "images", "--images", "--model", model, "--where", "coco_split=val2017"])
    assert "encoded 4 images" in out
    _ok(["index", coll, "-i", tmp_path / "captions", "--captions", "--model", model])
    hits = _ok(["search", tmp_path / "images", "--query", "a plate of food", "-k", "2"]).strip().splitlines()
    assert [line.split()[0] for line in hits[-2:]] == ["1", "2"]
    assert all(line.endswith(".jpg") and "/images/" in line for line in hits[-2:])  # the photo's path is shown
    hits = _ok(["search", tmp_path / "captions", "--image", photos[0], "-k", "3"]).strip().splitlines()
    assert [line.split()[0] for line in hits[-3:]] == ["1", "2", "3"]
    assert all(len(line.split()) > 4 for line in hits[-3:])  # and a caption's text
    out = _ok(["train", coll, "--multimodal", "--vl", "--candidates", model, "--model", "minilm", "--split", "test",
               "--where", "coco_split=train2017", "--epochs", "1", "--batch-size", "15", "-o", tmp_path / "vl",
               "--attention-dropout", "0", "--precision", "bf16"])  # fmt: skip
    assert "trained a VL re-ranker on 30 captions" in out
    state = (tmp_path / "vl" / "trainer_state.json").read_text()
    assert '"attention_dropout": 0.0' in state and '"precision": "bf16"' in state
    table = _ok(["experiment", coll, "--images", model, "--where", "coco_split=val2017", "--vl-rerank",
                 tmp_path / "vl" / "final", "--rerank-depth", "3"])  # fmt: skip
    assert "text -> image, 20 queries" in table and "image -> text, 4 queries" in table
    assert "text proxy (BM25, other captions)" in table and table.count("VL re-ranker (top 3)") == 2


def test_multimodal_cli_errors(image_collection, photos, tmp_path):
    coll = str(image_collection)
    result = runner.invoke(app, ["index", coll, "-i", str(tmp_path / "x"), "--images"])
    assert result.exit_code == 2 and "need --model" in result.output
    result = runner.invoke(app, ["train", coll, "--multimodal", "--model", "minilm", "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "--split test --where coco_split=train2017" in result.output
    result = runner.invoke(app, ["index", coll, "-i", str(tmp_path / "x"), "--images", "--model", "m", "--where", "oops"])
    assert result.exit_code == 2 and "FIELD=VALUE" in result.output
    from rankstack.index import build_inverted_index
    from rankstack.types import Document

    build_inverted_index([Document("d1", "a dog")], tmp_path / "bm25", show_progress=False)
    result = runner.invoke(app, ["search", str(tmp_path / "bm25"), "--image", str(photos[0])])
    assert result.exit_code == 2 and "text-only inverted index" in result.output
    result = runner.invoke(app, ["experiment", coll, "--index-dir", str(tmp_path / "bm25-images")])
    assert result.exit_code == 2 and "is an image collection" in result.output and "--images MODEL" in result.output
    result = runner.invoke(app, ["train", coll, "--vl", "--model", "minilm", "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "use it with --multimodal" in result.output
    result = runner.invoke(app, ["search", str(tmp_path / "bm25"), "--image", str(photos[0]), "--query", "dog"])
    assert result.exit_code == 2 and "exactly one of" in result.output
