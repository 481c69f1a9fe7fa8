"""SPLADE training on a tiny random masked LM: the ranking loss learns, FLOPS makes vectors sparser,
MarginMSE takes a teacher, and the saved directory loads back as the same encoder."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.sparse.splade import Splade
from rankstack.train.splade import SpladeConfig, SpladeTrainer, flops, train_splade
from tests.rerank.conftest import minilm_path, tiny_bert_config, toy_docs, toy_queries
from tests.train.test_rerank import TASK_QRELS, toy_set

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = SpladeConfig(
    epochs=6, batch_size=4, learning_rate=3e-3, num_negatives=2, query_max_length=16, doc_max_length=32,
    log_every=0, seed=5, show_progress=False, flops_query=0.0, flops_doc=0.0,
)  # fmt: skip


@pytest.fixture()
def mlm(tmp_path):
    path = tmp_path / "mlm"
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    transformers.BertForMaskedLM(tiny_bert_config(tokenizer.vocab_size)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def rank_loss(enc: Splade) -> float:
    """Mean softmax cross-entropy of the relevant documents (d0, d1) against the toy corpus."""
    docs = [d.contents() for d in toy_docs()]
    d = np.stack([enc.term_weights({"input_ids": [x]}).ravel() for x in enc.tokenizer(docs)["input_ids"]])
    total = 0.0
    for _, query in toy_queries():
        q = enc.term_weights({"input_ids": enc.tokenizer([query])["input_ids"]})[0]
        s = d @ q
        log_z = np.log(np.exp(s - s.max()).sum()) + s.max()
        total += float(np.mean([log_z - s[0], log_z - s[1]]))
    return total / len(toy_queries())


def density(enc: Splade) -> float:
    return float(np.mean([len(v) for v in enc.encode_documents([d.contents() for d in toy_docs()])]))


def test_contrastive_training_learns_and_flops_sparsifies(mlm, tmp_path):
    plain = Splade(mlm, device="cpu")
    before = rank_loss(plain)
    SpladeTrainer(plain, toy_set(), CONFIG, tmp_path / "plain").train()
    assert rank_loss(plain) < before - 0.3
    sparse = Splade(mlm, device="cpu")
    SpladeTrainer(sparse, toy_set(), CONFIG.replace(flops_doc=0.5, flops_query=0.5), tmp_path / "sparse").train()
    assert density(sparse) < 0.5 * density(plain)
    reloaded = Splade(tmp_path / "plain" / "final", device="cpu")
    ids = {"input_ids": plain.tokenizer([d.contents() for d in toy_docs()])["input_ids"]}
    np.testing.assert_allclose(reloaded.term_weights(ids), plain.term_weights(ids), atol=1e-5)


def test_flops_and_its_ramp():
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert float(flops(w)) == pytest.approx(2.0**2 + 0.0 + 1.0**2)
    trainer_like = SpladeTrainer.__new__(SpladeTrainer)
    trainer_like.config, trainer_like.total_steps = CONFIG.replace(flops_warmup_ratio=0.5), 10
    assert [round(trainer_like.flops_weight(s), 2) for s in (0, 1, 4, 9)] == [0.04, 0.16, 1.0, 1.0]
    with pytest.raises(ValueError, match="flops"):
        SpladeConfig(flops_doc=-1.0)


def test_train_splade_end_to_end_with_bm25_negatives_and_a_teacher(mlm, tmp_path):
    corpus = {d.docid: d.contents() for d in toy_docs()}

    def overlap(query, docs):  # a teacher (Scorer): shared words
        return [float(len(set(query.lower().split()) & set(d.lower().split()))) for d in docs]

    final = train_splade(mlm, toy_queries(), TASK_QRELS, corpus, tmp_path / "run", config=CONFIG.replace(epochs=1))
    assert (final / "model.safetensors").exists() and (tmp_path / "run" / "bm25-index" / "manifest.json").exists()
    distilled = train_splade(mlm, toy_queries(), TASK_QRELS, corpus, tmp_path / "kd", teacher=overlap,
                             config=CONFIG.replace(epochs=1, loss="margin_mse"))  # fmt: skip
    assert (distilled / "model.safetensors").exists()

    class PairTeacher:  # a pair model, as a CrossEncoder is: every pool scored in one call
        def __init__(self):
            self.pairs = []

        def score_pairs(self, queries, docs):
            self.pairs.append(len(queries))
            return overlap_pairs(queries, docs)

    def overlap_pairs(queries, docs):
        return [overlap(q, [d])[0] for q, d in zip(queries, docs, strict=True)]

    teacher = PairTeacher()
    paired = train_splade(mlm, toy_queries(), TASK_QRELS, corpus, tmp_path / "kd-pairs", teacher=teacher,
                          config=CONFIG.replace(epochs=1, loss="margin_mse"))  # fmt: skip
    assert (paired / "model.safetensors").exists() and len(teacher.pairs) == 1 and teacher.pairs[0] > len(TASK_QRELS)
    with pytest.raises(ValueError, match="teacher"):
        train_splade(mlm, toy_queries(), TASK_QRELS, corpus, tmp_path / "x", config=CONFIG.replace(loss="margin_mse"))


def token_rank_loss(enc: Splade) -> float:
    """``rank_loss`` with inference-free queries (their tokens weighted by the encoder's query table)."""
    docs = [d.contents() for d in toy_docs()]
    d = np.stack([enc.term_weights({"input_ids": [x]}).ravel() for x in enc.tokenizer(docs)["input_ids"]])
    q = enc.token_query_vectors([query for _, query in toy_queries()]).detach().numpy()
    s = q @ d.T
    log_z = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1)
    return float(np.mean(log_z - s[:, :2].mean(1)))


def test_inference_free_training_learns_the_query_table_and_saves_it(mlm, tmp_path):
    """query_mode="tokens": queries are their tokens weighted by a table learnt with the document encoder; only
    the query tokens' entries move, query FLOPS does not apply, and the final directory's idf.json is the
    table that encode_queries then uses."""
    enc = Splade(mlm, device="cpu", query_mode="tokens")
    before = token_rank_loss(enc)
    trainer = SpladeTrainer(enc, toy_set(), CONFIG.replace(flops_query=10.0), tmp_path / "free")
    assert trainer.optimizer.param_groups[-1]["lr_scale"] == pytest.approx(1e-2 / CONFIG.learning_rate)
    trainer.train()
    assert token_rank_loss(enc) < before - 0.3
    table = enc.query_table.detach()
    query_ids = {i for _, q in toy_queries() for i in enc.tokenizer(q, add_special_tokens=False)["input_ids"]}
    moved = set(torch.nonzero(table != 1.0).flatten().tolist())
    assert moved and moved <= query_ids
    final = Splade(tmp_path / "free" / "final", device="cpu", query_mode="tokens")
    query = toy_queries().text.tolist()[0]
    ids = dict.fromkeys(enc.tokenizer(query, add_special_tokens=False)["input_ids"])
    want = {enc._vocab[i]: float(table[i]) for i in ids if table[i] > 0}
    got = final.encode_queries([query])[0]
    assert got.keys() == want.keys() and got == pytest.approx(want, rel=1e-6)


def test_inference_free_resume_restores_the_query_table(mlm, tmp_path):
    from rankstack.train import checkpoint

    config = CONFIG.replace(epochs=2, save_every=2, keep_checkpoints=None)
    whole = Splade(mlm, device="cpu", query_mode="tokens")
    SpladeTrainer(whole, toy_set(), config, tmp_path / "whole").train()
    part = Splade(mlm, device="cpu", query_mode="tokens")
    trainer = SpladeTrainer(part, toy_set(), config, tmp_path / "part")
    part.model.train()
    for step in range(2):  # a crash after the first checkpoint
        trainer._optimise(step)
    trainer.step = 2
    checkpoint.save(tmp_path / "part" / "checkpoint-2", part, trainer._state(), trainer.data.negatives, trainer.optimizer)
    resumed = Splade(mlm, device="cpu", query_mode="tokens")
    SpladeTrainer(resumed, toy_set(), config, tmp_path / "part").train(resume=True)
    torch.testing.assert_close(resumed.query_table.detach(), whole.query_table.detach(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="inference-free"):
        Splade(mlm, device="cpu").query_table_parameter()
