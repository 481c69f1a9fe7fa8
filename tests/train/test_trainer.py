"""The training loop on a tiny BERT: it learns, it is reproducible, it resumes exactly, its output loads anywhere."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rankstack.dense.encoder import BiEncoder
from rankstack.train import checkpoint
from rankstack.train.examples import TrainingSet, doc_texts
from rankstack.train.losses import InBatchContrastiveLoss
from rankstack.train.negatives import AnceRefresh
from rankstack.train.trainer import TrainConfig, Trainer, TrainingStateError
from tests.train.conftest import toy_docs, toy_qrels, toy_queries

torch = pytest.importorskip("torch")

CONFIG = TrainConfig(
    epochs=2,
    batch_size=4,
    learning_rate=1e-3,
    num_negatives=1,
    query_max_length=16,
    doc_max_length=32,
    log_every=2,
    seed=7,
    show_progress=False,
)


def toy_set(negatives: bool = True) -> TrainingSet:
    data = TrainingSet.from_qrels(toy_queries(), toy_qrels(), doc_texts(toy_docs()))
    if not negatives:
        return data
    docids = sorted(data.texts)
    return data.with_negatives({q: docids[:6] for q in data.positives})  # positives get filtered out


def weights(encoder: BiEncoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in encoder.query.model.state_dict().items()}


def assert_same_weights(a: dict, b: dict, exact: bool = False) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def retrieval_loss(encoder: BiEncoder, data: TrainingSet) -> float:
    """Each query's positive against the whole toy corpus (other positives ignored), dropout off."""
    docids = sorted(data.texts)
    q = torch.from_numpy(encoder.encode_queries([e.query for e in data.examples]))
    d = torch.from_numpy(encoder.encode_docs([data.texts[i] for i in docids]))
    pos = d[[docids.index(e.positive) for e in data.examples]]
    ignore = torch.tensor([[i in data.positives[e.qid] for i in docids] for e in data.examples])
    ignore = torch.cat([torch.zeros(len(pos), len(pos), dtype=torch.bool), ignore], dim=1)
    return InBatchContrastiveLoss(scale=20.0)(q, pos, d, ignore).item()


def test_learning_rate_warms_up_then_decays_to_zero(tiny_model_dir, tmp_path):
    trainer = Trainer(BiEncoder(tiny_model_dir), toy_set(), CONFIG.replace(epochs=5, warmup_ratio=0.2), tmp_path)
    assert (trainer.steps_per_epoch, trainer.total_steps, trainer.warmup_steps) == (4, 20, 4)
    lrs = [trainer.learning_rate(s) for s in range(20)]
    assert lrs[:4] == pytest.approx([2e-4, 4e-4, 6e-4, 8e-4])
    assert lrs[4] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3 / 16)
    assert all(a > b for a, b in itertools.pairwise(lrs[4:]))


def test_each_epoch_visits_every_example_once_in_a_seeded_order(tiny_model_dir, tmp_path):
    data = toy_set()
    trainer = Trainer(BiEncoder(tiny_model_dir), data, CONFIG, tmp_path)
    epoch0 = [e for s in range(4) for e in trainer.batch(s)]
    epoch1 = [e for s in range(4, 8) for e in trainer.batch(s)]
    assert sorted(epoch0, key=repr) == sorted(data.examples, key=repr) == sorted(epoch1, key=repr)
    assert epoch0 != epoch1 and len(trainer.batch(3)) == 1  # 13 examples: 4 + 4 + 4 + 1
    other = Trainer(BiEncoder(tiny_model_dir), data, CONFIG.replace(seed=8), tmp_path)
    assert [e for s in range(4) for e in other.batch(s)] != epoch0


def test_training_lowers_the_loss_and_logs_it(tiny_model_dir, tmp_path):
    encoder, data = BiEncoder(tiny_model_dir), toy_set()
    before = retrieval_loss(encoder, data)
    final = Trainer(encoder, data, CONFIG.replace(epochs=6, learning_rate=3e-3), tmp_path / "run").train()
    after = retrieval_loss(encoder, data)
    assert after < 0.4 * before, (before, after)
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"]]
    assert state["step"] == 24 and len(losses) == 12 and losses[-1] < losses[0]
    assert state["config"]["learning_rate"] == 3e-3
    assert final == tmp_path / "run" / "final"
    assert retrieval_loss(BiEncoder(final), data) == pytest.approx(after, rel=1e-4)


def test_same_seed_same_weights_other_seed_other_weights(tiny_model_dir, tmp_path):
    runs = []
    for i, seed in enumerate([7, 7, 8]):
        encoder = BiEncoder(tiny_model_dir)
        Trainer(encoder, toy_set(), CONFIG.replace(seed=seed), tmp_path / str(i)).train()
        runs.append(weights(encoder))
    assert_same_weights(runs[0], runs[1], exact=True)
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


class Interrupting:
    """An ANCE refresh that mines with the model, and can 'crash' at its n-th call (a killed job)."""

    def __init__(self, data: TrainingSet, crash_at: int | None = None):
        self.inner = AnceRefresh(data.query_texts(), data.texts, data.positives, depth=4, show_progress=False)
        self.crash_at, self.calls = crash_at, 0

    def __call__(self, encoder):
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt
        return self.inner(encoder)


def test_resume_after_a_crash_gives_the_uninterrupted_run(tiny_model_dir, tmp_path):
    config = CONFIG.replace(epochs=3, save_every=2, refresh_every=2, keep_checkpoints=1)
    whole = BiEncoder(tiny_model_dir)
    Trainer(whole, toy_set(), config, tmp_path / "whole", refresh=Interrupting(toy_set())).train()

    crashed = BiEncoder(tiny_model_dir)
    with pytest.raises(KeyboardInterrupt):  # refreshes at steps 2 and 4, checkpoint-2 saved; dies at step 6
        Trainer(crashed, toy_set(), config, tmp_path / "resumed", refresh=Interrupting(toy_set(), crash_at=3)).train()
    assert [p.name for p in checkpoint.checkpoints(tmp_path / "resumed")] == ["checkpoint-4"]  # keep 1
    with pytest.raises(TrainingStateError, match="resume=True"):
        Trainer(BiEncoder(tiny_model_dir), toy_set(), config, tmp_path / "resumed").train()

    resumed = BiEncoder(tiny_model_dir)  # fresh weights: everything must come from the checkpoint
    trainer = Trainer(resumed, toy_set(), config, tmp_path / "resumed", refresh=Interrupting(toy_set()))
    trainer.train(resume=True)
    assert_same_weights(weights(whole), weights(resumed))
    logs = [json.loads((tmp_path / d / "trainer_state.json").read_text())["log_history"] for d in ("whole", "resumed")]
    assert [e.get("event") for e in logs[0]] == [e.get("event") for e in logs[1]]
    np.testing.assert_allclose(
        [e["loss"] for e in logs[0] if "loss" in e], [e["loss"] for e in logs[1] if "loss" in e], rtol=1e-5
    )
    # resuming a finished run only loads its final model
    again = BiEncoder(tiny_model_dir)
    Trainer(again, toy_set(), config, tmp_path / "resumed").train(resume=True)
    assert_same_weights(weights(whole), weights(again))


def test_resume_with_other_data_is_refused(tiny_model_dir, tmp_path):
    config = CONFIG.replace(save_every=2)
    with pytest.raises(KeyboardInterrupt):
        Trainer(BiEncoder(tiny_model_dir), toy_set(), config, tmp_path, refresh=Interrupting(toy_set(), 1)).train()
    smaller = toy_set()
    smaller.examples = smaller.examples[:5]
    with pytest.raises(TrainingStateError, match="same data and configuration"):
        Trainer(BiEncoder(tiny_model_dir), smaller, config, tmp_path).train(resume=True)


def test_checkpoints_load_in_sentence_transformers_with_the_same_embeddings(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    encoder = BiEncoder(tiny_model_dir)
    final = Trainer(encoder, toy_set(), CONFIG.replace(save_every=3), tmp_path).train()
    texts = ["where does the fox live", "The owl lives near the forest. It is an owl."]
    ours = encoder.encode_docs(texts)
    theirs = SentenceTransformer(str(final), device="cpu").encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(BiEncoder(final).encode_docs(texts), ours, rtol=1e-5, atol=1e-6)
    assert not np.allclose(BiEncoder(tiny_model_dir).encode_docs(texts), ours, atol=1e-3)  # it did train
    ckpt = tmp_path / "checkpoint-3"
    assert (ckpt / "model.safetensors").exists() and (ckpt / "optimizer.pt").exists()
    assert SentenceTransformer(str(ckpt), device="cpu").encode(texts).shape == (2, 32)


def test_margin_mse_moves_student_margins_towards_the_teacher(tiny_model_dir, tmp_path):
    data = toy_set()
    # a teacher that likes each query's positive by 1.0 over every negative, and ranks negatives by docid
    data.teacher = {
        q: {d: (1.0 if d in data.positives[q] else -0.01 * int(d[1:])) for d in data.texts} for q in data.positives
    }
    encoder = BiEncoder(tiny_model_dir)

    def margin_error() -> float:
        q = encoder.encode_queries([e.query for e in data.examples])
        d = {i: v for i, v in zip(data.texts, encoder.encode_docs(list(data.texts.values())), strict=True)}
        errs = [
            (q[r] @ d[e.positive] - q[r] @ d[n] - (data.teacher[e.qid][e.positive] - data.teacher[e.qid][n])) ** 2
            for r, e in enumerate(data.examples)
            for n in data.negatives[e.qid]
        ]
        return float(np.mean(errs))

    before = margin_error()
    Trainer(
        encoder, data, CONFIG.replace(loss="margin_mse", epochs=10, learning_rate=3e-3, num_negatives=2), tmp_path
    ).train()
    assert margin_error() < 0.6 * before
    with pytest.raises(ValueError, match="teacher scores"):
        Trainer(encoder, toy_set(), CONFIG.replace(loss="margin_mse"), tmp_path / "x")


def test_config_is_validated():
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="triplet")
    with pytest.raises(ValueError, match="warmup_ratio"):
        TrainConfig(warmup_ratio=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        TrainConfig(save_every=-1)


def test_separate_towers_train_and_save_both(tiny_model_dir, tmp_path):
    encoder = BiEncoder(tiny_model_dir, doc_model=tiny_model_dir)
    before = {k: v.clone() for k, v in encoder.doc.model.state_dict().items()}
    final = Trainer(encoder, toy_set(), CONFIG, tmp_path).train()
    assert (Path(final) / "query" / "model.safetensors").exists() and (Path(final) / "doc" / "config.json").exists()
    assert any(not torch.equal(before[k], v) for k, v in encoder.doc.model.state_dict().items())
    shutil.rmtree(final)
