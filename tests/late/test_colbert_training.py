"""Training ColBERT (contrastive and KL distillation), exact resume, and the CLI from training to search."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.late import ColBERTEncoder, ColBERTReranker, maxsim
from rankstack.train import ColBERTConfig, TrainingSet, train_colbert
from rankstack.train.colbert import ColBERTTrainer
from rankstack.train.examples import doc_texts
from rankstack.train.losses import kl_distillation
from tests.rerank.conftest import make_tiny_bert_encoder, toy_docs, toy_qrels, toy_queries
from tests.test_cli import write_beir

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return make_tiny_bert_encoder(tmp_path_factory.mktemp("colbert-train") / "bert")


def fresh(bert_dir) -> ColBERTEncoder:
    return ColBERTEncoder(bert_dir, dim=16, query_length=8, doc_length=32, device="cpu")


def own_document_margin(encoder) -> float:
    """Mean over queries of (MaxSim with its own document - best MaxSim with another): > 0 ranks it first."""
    docs = [d.contents() for d in toy_docs()]
    q = encoder.encode_queries(toy_queries().text.tolist())
    d = encoder.encode_docs(docs)
    scores = np.array([[maxsim(qi, dj) for dj in d] for qi in q])
    own = np.diag(scores).copy()
    np.fill_diagonal(scores, -np.inf)
    return float(np.mean(own - scores.max(axis=1)))


def test_kl_distillation_equals_the_formula():
    student = torch.tensor([[1.0, 0.5, -1.0], [0.2, 0.1, 0.0]])
    teacher = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 9.0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    got = float(kl_distillation(student, teacher, valid))
    rows = []
    for s, t, v in zip(student.numpy(), teacher.numpy(), valid.numpy(), strict=True):
        p = np.exp(t[v]) / np.exp(t[v]).sum()
        q = np.exp(s[v]) / np.exp(s[v]).sum()
        rows.append(float((p * np.log(p / q)).sum()))
    assert got == pytest.approx(np.mean(rows), abs=1e-6)


def test_contrastive_training_ranks_each_query_s_own_document_first(bert_dir, tmp_path):
    encoder = fresh(bert_dir)
    before = own_document_margin(encoder)
    config = ColBERTConfig(epochs=20, batch_size=4, learning_rate=3e-3, head_learning_rate=None, num_negatives=1,
                           negative_depth=4, doc_max_length=32, show_progress=False, log_every=0)  # fmt: skip
    final = train_colbert(encoder, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "run", config=config)
    assert own_document_margin(encoder) > max(before, 0.0)
    loaded = ColBERTEncoder(final, device="cpu")
    np.testing.assert_allclose(loaded.encode_queries(["the cat"]), encoder.encode_queries(["the cat"]), atol=1e-5)


def kl_to_teacher(student, teacher, groups) -> float:
    """KL(teacher || student) over each query's group of documents, with the whole group (no sampling)."""
    texts = {d.docid: d.contents() for d in toy_docs()}
    queries = toy_queries().to_dict()
    rows_s, rows_t = [], []
    for qid, group in groups.items():
        docs = [texts[d] for d in group]
        rows_s.append(student.score_texts([queries[qid]] * len(docs), docs))
        rows_t.append(teacher.score_texts([queries[qid]] * len(docs), docs))
    s, t = torch.tensor(np.array(rows_s)), torch.tensor(np.array(rows_t))
    return float(kl_distillation(s, t, torch.ones_like(s, dtype=torch.bool)))


def test_kl_distillation_moves_the_student_towards_the_teacher(bert_dir, tmp_path):
    teacher_model = fresh(bert_dir)
    config = ColBERTConfig(epochs=20, batch_size=4, learning_rate=3e-3, head_learning_rate=None, num_negatives=3,
                           negative_depth=3, doc_max_length=32, show_progress=False, log_every=0)  # fmt: skip
    train_colbert(teacher_model, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "teacher", config=config)
    texts = {d.docid: d.contents() for d in toy_docs()}
    teacher = ColBERTReranker(teacher_model, docs=texts)
    student_model = ColBERTEncoder(bert_dir, dim=16, query_length=8, doc_length=32, device="cpu", seed=7)
    student = ColBERTReranker(student_model, docs=texts, cache=False)
    from rankstack.train.api import _bm25_index
    from rankstack.train.examples import bm25_negatives

    data = TrainingSet.from_qrels(toy_queries(), toy_qrels(), doc_texts(toy_docs()))
    index = _bm25_index(None, toy_docs(), tmp_path / "bm25")
    negatives = bm25_negatives(data.query_texts(), data.positives, index, 3)
    groups = {qid: [f"d{qid[1:]}", *negatives[qid][:3]] for qid in negatives if len(negatives[qid]) >= 3}
    before = kl_to_teacher(student, teacher, groups)
    train_colbert(student_model, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "student",
                  config=config.replace(loss="kl", epochs=10), teacher=teacher, bm25_index=index)  # fmt: skip
    after = kl_to_teacher(student, teacher, groups)
    assert after < 0.5 * before
    with pytest.raises(ValueError, match="teacher is needed"):
        train_colbert(student_model, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "x", config=config.replace(loss="kl"))


def test_a_resumed_run_equals_an_uninterrupted_one(bert_dir, tmp_path):
    from rankstack.train import checkpoint

    config = ColBERTConfig(epochs=2, batch_size=4, show_progress=False, log_every=0, learning_rate=1e-3)
    data = TrainingSet.from_qrels(toy_queries(), toy_qrels(), doc_texts(toy_docs()))
    whole = fresh(bert_dir)
    ColBERTTrainer(whole, data, config, tmp_path / "whole").train()
    part = fresh(bert_dir)
    trainer = ColBERTTrainer(part, data, config, tmp_path / "part")
    part.net.train()  # the first 2 steps only, as train() runs them: a crash after the first checkpoint
    for step in range(2):
        trainer._optimise(step)
    trainer.step = 2
    checkpoint.save(tmp_path / "part" / "checkpoint-2", part, trainer._state(), trainer.data.negatives, trainer.optimizer)
    resumed = fresh(bert_dir)  # fresh weights and projection: everything must come from the checkpoint
    ColBERTTrainer(resumed, data, config, tmp_path / "part").train(resume=True)
    for (k, a), (_, b) in zip(whole.net.state_dict().items(), resumed.net.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.allclose(whole.linear.weight, fresh(bert_dir).linear.weight)  # training changed it


def test_cli_train_index_and_search(bert_dir, tmp_path):
    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", str(folder), "--colbert", "--model", str(bert_dir), "-o", str(out),
                                 "--batch-size", "2", "--negative-depth", "3", "--doc-max-length", "32",
                                 "--attention-dropout", "0", "--precision", "bf16"])  # fmt: skip
    assert result.exit_code == 0, result.output
    state = (out / "trainer_state.json").read_text()
    assert '"attention_dropout": 0.0' in state and '"precision": "bf16"' in state
    final = out / "final"
    assert (final / "1_Dense" / "model.safetensors").exists()
    idx = tmp_path / "idx"
    result = runner.invoke(app, ["index", str(folder), "-i", str(idx), "--colbert", str(final), "--bits", "2"])
    assert result.exit_code == 0, result.output
    assert "token vectors" in result.output
    result = runner.invoke(app, ["search", str(idx), "--query", "cat", "-k", "2"])
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 2
    result = runner.invoke(app, ["search", str(idx), "--queries", str(folder), "--exact", "-o", str(tmp_path / "r.trec")])
    assert result.exit_code == 0, result.output and (tmp_path / "r.trec").stat().st_size > 0
    result = runner.invoke(app, ["train", str(folder), "--colbert", "--model", str(bert_dir), "-o", str(tmp_path / "o2"),
                                 "--loss", "kl"])  # fmt: skip
    assert result.exit_code != 0 and "--teacher" in result.output
    result = runner.invoke(app, ["train", str(folder), "--colbert", "--model", str(bert_dir), "-o", str(tmp_path / "o3"),
                                 "--loss", "kl", "--teacher", "bm25", "--batch-size", "2", "--num-negatives", "2",
                                 "--negative-depth", "3", "--doc-max-length", "32"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"loss": "kl"' in (tmp_path / "o3" / "final" / "trainer_state.json").read_text()


def test_a_fresh_projection_trains_at_the_head_learning_rate(bert_dir, tmp_path):
    data = TrainingSet.from_qrels(toy_queries(), toy_qrels(), doc_texts(toy_docs()))
    encoder = fresh(bert_dir)
    trainer = ColBERTTrainer(encoder, data, ColBERTConfig(learning_rate=1e-5, head_learning_rate=1e-3), tmp_path)
    scaled = [g for g in trainer.optimizer.param_groups if g.get("lr_scale")]
    assert [p is encoder.linear.weight for g in scaled for p in g["params"]] == [True]
    assert scaled[0]["lr_scale"] == pytest.approx(100.0)
    saved = ColBERTEncoder(encoder.save(tmp_path / "m"), device="cpu")  # a trained projection is not fresh
    again = ColBERTTrainer(saved, data, ColBERTConfig(learning_rate=1e-5, head_learning_rate=1e-3), tmp_path / "2")
    assert not any(g.get("lr_scale") for g in again.optimizer.param_groups)
