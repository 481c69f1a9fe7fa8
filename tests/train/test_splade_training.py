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
    with pytest.raises(ValueError, match="teacher"):
        train_splade(mlm, toy_queries(), TASK_QRELS, corpus, tmp_path / "x", config=CONFIG.replace(loss="margin_mse"))
