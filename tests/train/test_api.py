"""train_biencoder end to end on the toy collection: every option runs, writes where it says, and resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankstack.dense.encoder import BiEncoder
from rankstack.train import TrainConfig, train_biencoder
from tests.train.conftest import toy_docs, toy_qrels, toy_queries

CONFIG = TrainConfig(
    epochs=2,
    batch_size=4,
    learning_rate=3e-3,
    negative_depth=5,
    query_max_length=16,
    doc_max_length=32,
    refresh_every=3,
    seed=1,
    show_progress=False,
)


def test_ict_warmup_then_ance_with_denoising_and_resume(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    ict = CONFIG.replace(epochs=1, batch_size=6)
    final = train_biencoder(
        tiny_model_dir,
        toy_queries(),
        toy_qrels(),
        toy_docs(),
        out,
        negatives="ance",
        config=CONFIG,
        ict_warmup=ict,
        denoise_margin=0.0,
    )
    assert final == out / "final" and (out / "ict" / "final" / "model.safetensors").exists()
    assert (out / "bm25-index" / "manifest.json").exists()
    ict_state = json.loads((out / "ict" / "trainer_state.json").read_text())
    assert ict_state["examples"] == 12 and ict_state["step"] == 2  # one pseudo-query per toy document
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["examples"] == 13 and state["step"] == 8
    assert [e["step"] for e in state["log_history"] if e.get("event")] == [3, 6]  # ANCE refreshes

    texts = [d.contents() for d in toy_docs()[:3]]
    trained = BiEncoder(final).encode_docs(texts)
    again = train_biencoder(
        tiny_model_dir,
        toy_queries(),
        toy_qrels(),
        toy_docs(),
        out,
        negatives="ance",
        config=CONFIG,
        ict_warmup=ict,
        resume=True,
    )
    assert again == final
    np.testing.assert_allclose(BiEncoder(again).encode_docs(texts), trained, rtol=1e-6)


def test_bm25_negatives_into_a_given_encoder_and_index(tiny_model_dir, tmp_path):
    from rankstack.index import build_inverted_index

    index = build_inverted_index(toy_docs(), tmp_path / "idx", show_progress=False)
    encoder = BiEncoder(tiny_model_dir)
    before = encoder.encode_queries(["where does the owl live"])
    final = train_biencoder(encoder, toy_queries(), toy_qrels(), index, tmp_path / "run", config=CONFIG)
    assert not (tmp_path / "run" / "bm25-index").exists()  # the corpus was the index, so it was reused
    assert not np.allclose(encoder.encode_queries(["where does the owl live"]), before)  # trained in place
    np.testing.assert_allclose(
        BiEncoder(final).encode_queries(["where does the owl live"]),
        encoder.encode_queries(["where does the owl live"]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_margin_mse_with_a_teacher(tiny_model_dir, tmp_path):
    def teacher(query, docs):  # likes documents sharing words with the query
        words = set(query.lower().split())
        return [len(words & set(d.lower().split())) for d in docs]

    config = CONFIG.replace(loss="margin_mse")
    final = train_biencoder(
        tiny_model_dir, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "run", config=config, teacher=teacher
    )
    assert (final / "model.safetensors").exists()
    with pytest.raises(ValueError, match="teacher is needed"):
        train_biencoder(tiny_model_dir, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "x", config=config)
    with pytest.raises(ValueError, match="hard negatives"):
        train_biencoder(
            tiny_model_dir,
            toy_queries(),
            toy_qrels(),
            toy_docs(),
            tmp_path / "x",
            config=config,
            teacher=teacher,
            negatives="none",
        )
    with pytest.raises(ValueError, match="negatives must be"):
        train_biencoder(tiny_model_dir, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "x", negatives="random")
