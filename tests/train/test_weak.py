"""Weak supervision: pseudo-queries from titles and first sentences, the REINFORCE selector, an end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankstack.train.weak import SelectiveRerankerTrainer, pair_features, pseudo_queries, train_weakly
from rankstack.types import Document
from tests.rerank.conftest import toy_docs, toy_qrels, toy_queries

torch = pytest.importorskip("torch")


def test_titles_and_first_sentences_become_queries_for_their_documents():
    docs = [Document("d1", "Vitamin D helps bones. It is made in skin.", title="Vitamin D and bone health"),
            Document("d2", "Short.", title="Two words")]  # fmt: skip
    queries, qrels = pseudo_queries(docs, "both", min_words=3)
    assert queries.to_dict() == {"title:d1": "Vitamin D and bone health", "sentence:d1": "Vitamin D helps bones."}
    assert qrels.docid.tolist() == ["d1", "d1"]
    assert pseudo_queries(docs, "title", min_words=2)[0].qid.tolist() == ["title:d1", "title:d2"]
    with pytest.raises(ValueError, match="source must be"):
        pseudo_queries(docs, "anchor")
    with pytest.raises(ValueError, match="no document"):
        pseudo_queries(docs, "first_sentence", min_words=10)


def test_the_selector_follows_reinforce(tmp_path, monkeypatch):
    from rankstack.rerank import InteractionReranker
    from rankstack.train import RerankConfig
    from rankstack.train.examples import Example, TrainingSet
    from rankstack.train.weak import Reward
    from rankstack.types import Qrels, Queries, Ranking
    from tests.rerank.test_matchzoo import make_static_model

    texts = {d.docid: d.text for d in toy_docs()}
    data = TrainingSet([Example("q0", "cat", "d0")], texts, {"q0": frozenset({"d0"})})
    run = Ranking(["q0"], ["d0"], [1.0], queries=Queries(["q0"], ["cat"]))
    reward = Reward(run, Qrels(["q0"], ["d0"], [1]), texts)
    model = InteractionReranker(make_static_model(tmp_path / "s"), family="knrm")
    trainer = SelectiveRerankerTrainer(model, data, RerankConfig(show_progress=False), tmp_path / "o", reward=reward,
                                       selector_lr=0.5)  # fmt: skip
    metrics = iter([0.2, 0.5])
    monkeypatch.setattr(trainer, "dev_metric", lambda: next(metrics))
    f1, f2 = np.array([1.0, 0.3, 1.0, 0.2, 0.0]), np.array([1.0, 0.5, 0.2, 0.4, 1.0])
    start = trainer.selector.copy()
    trainer._update_selector()  # the first evaluation only sets the baseline
    assert np.array_equal(trainer.selector, start)
    trainer._decisions = [(f1, 1.0, 0.8), (f2, 0.0, 0.6)]
    trainer._update_selector()
    g = (0.5 - 0.2) * ((1 - 0.8) * f1 + (0 - 0.6) * f2) / 2  # reward x mean (a - p) f
    m, v = 0.1 * g, 0.001 * g**2  # Adam's first step: bias-corrected m / sqrt(v) = sign(g)
    want = start + 0.5 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    np.testing.assert_allclose(trainer.selector, want)
    assert np.abs(trainer.selector - start)[g != 0] == pytest.approx(0.5, rel=1e-4)  # a step of lr, whatever |g|
    assert trainer.log_history[-1]["nDCG@10"] == 0.5


def test_pair_features_see_overlap_and_titles():
    from rankstack.train.examples import Example

    f = pair_features(Example("title:d", "cat river owl", "d"), "The cat lives near the river.")
    assert f[0] == 1.0 and f[2] == pytest.approx(2 / 3) and f[4] == 1.0


def test_train_weakly_runs_end_to_end_and_logs_the_selector(tmp_path):
    from rankstack.rerank import InteractionReranker
    from rankstack.train import RerankConfig
    from tests.rerank.test_matchzoo import make_static_model

    model = InteractionReranker(make_static_model(tmp_path / "s"), family="knrm")
    config = RerankConfig(epochs=2, batch_size=4, num_negatives=2, negative_depth=4, learning_rate=1e-2,
                          head_learning_rate=1e-1, show_progress=False)  # fmt: skip
    final = train_weakly(model, toy_docs(), toy_queries(), toy_qrels(), tmp_path / "out", source="first_sentence",
                         config=config, dev_depth=5, reward_every=2)  # fmt: skip
    state = json.loads((final / "trainer_state.json").read_text())
    events = [e for e in state["log_history"] if e.get("event") == "selector"]
    assert len(events) >= 2 and len(state["selector"]) == 5
    assert InteractionReranker(final).family == "knrm"
