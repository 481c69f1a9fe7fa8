"""PROP pre-training: document language models, representative word-set pairs, and a run on a tiny BERT."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from rankstack.train.prop import DocumentModels, PropConfig, pretrain_prop, words
from tests.rerank.conftest import make_tiny_bert_encoder, toy_docs, toy_qrels, toy_queries

torch = pytest.importorskip("torch")

TEXTS = {"a": "The cat sat on the cat mat near a river", "b": "Dogs run in the park; dogs bark", "c": "river"}


def test_document_models_are_dirichlet_smoothed_unigrams():
    models = DocumentModels(TEXTS, mu=10.0)
    vocab, p = models.probabilities("a")
    collection = Counter(w for t in TEXTS.values() for w in words(t))
    total = sum(collection.values())
    tf = Counter(words(TEXTS["a"]))
    assert vocab == sorted(tf) and "the" not in vocab  # stopwords are not words of the model
    for w, got in zip(vocab, p, strict=True):
        assert got == pytest.approx((tf[w] + 10.0 * collection[w] / total) / (sum(tf.values()) + 10.0))


def test_the_more_likely_set_comes_first_and_both_have_one_length():
    models = DocumentModels(TEXTS, mu=10.0)
    vocab, p = models.probabilities("a")
    logp = dict(zip(vocab, np.log(p), strict=True))
    rng = np.random.default_rng(0)
    for _ in range(50):
        pair = models.sample_pair("a", rng, lam=3.0)
        if pair is None:
            continue
        good, bad = pair
        assert len(good) == len(bad) and len(set(good)) == len(good)
        assert sum(logp[w] for w in good) > sum(logp[w] for w in bad)
    assert models.sample_pair("c", rng, 3.0) is None  # one distinct word: nothing to compare


def test_prop_pretrains_a_cross_encoder_that_fine_tunes_and_resumes(tmp_path):
    from rankstack.rerank import CrossEncoder
    from rankstack.train import RerankConfig, train_reranker

    bert = make_tiny_bert_encoder(tmp_path / "bert")
    config = PropConfig(epochs=2, batch_size=4, max_length=48, save_every=3, show_progress=False, seed=1)
    final = pretrain_prop(bert, toy_docs(), tmp_path / "prop", config=config)
    assert (final / "prop_mlm_head.safetensors").exists()
    pretrained = CrossEncoder(final, require_head=True)  # an ordinary cross-encoder with a trained head
    assert math.isfinite(float(pretrained.score_pairs(["cat"], ["the cat lives near the river"])[0]))
    assert pretrain_prop(bert, toy_docs(), tmp_path / "prop", config=config, resume=True) == final
    tuned = train_reranker(pretrained, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "ft",
                           config=RerankConfig(batch_size=4, num_negatives=2, max_length=48, show_progress=False))  # fmt: skip
    assert (tuned / "config.json").exists()
