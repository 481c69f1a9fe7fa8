"""`rankstack train` on a tiny BEIR folder: trains, saves a model directory that indexes and loads again."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from tests.dense.conftest import make_tiny_model
from tests.test_cli import write_beir


@pytest.mark.parametrize("negatives", ["none", "bm25"])
def test_cli_train_then_index_with_the_result(tmp_path, negatives):
    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    model = make_tiny_model(tmp_path / "model")
    runner = CliRunner()
    args = ["train", str(folder), "--model", str(model), "-o", str(tmp_path / "out"), "--negatives", negatives]
    result = runner.invoke(app, [*args, "--batch-size", "2", "--negative-depth", "3"])
    assert result.exit_code == 0, result.output
    final = tmp_path / "out" / "final"
    assert (final / "config.json").exists() and (final / "modules.json").exists()
    result = runner.invoke(app, ["index", str(folder), "-i", str(tmp_path / "idx"), "--dense", str(final)])
    assert result.exit_code == 0, result.output


def test_cli_train_rejects_unknown_negatives(tmp_path):
    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    args = ["train", str(folder), "--model", str(tmp_path), "-o", str(tmp_path / "out"), "--negatives", "random"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
