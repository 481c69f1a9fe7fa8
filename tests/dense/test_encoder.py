from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from rankstack.dense import BiEncoder, TextEncoder, export_onnx
from rankstack.models.model_dir import ModelDirectoryError
from tests.dense.conftest import make_tiny_model, torch

TEXTS = [
    "Vitamin D deficiency is associated with an increased risk of fracture.",
    "hello",
    "The quick brown fox jumps over the lazy dog. " * 40,  # longer than 256 tokens: truncated
    "Ḿüñïçødé text, emoji 🙂 and CJK 漢字 mixed in.",
    "BRCA1 mutations and breast cancer",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_minilm_embeddings_equal_sentence_transformers(minilm):
    st_mod = pytest.importorskip("sentence_transformers")
    reference = st_mod.SentenceTransformer(str(minilm), device="cpu").encode(TEXTS, convert_to_numpy=True)
    with pytest.warns(UserWarning, match="truncated"):
        ours = BiEncoder(minilm).encode_docs(TEXTS)
    assert ours.shape == (len(TEXTS), 384)
    assert cosines(ours, reference).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # the model's Normalize module


def test_minilm_settings_come_from_sentence_transformers_configs(minilm):
    enc = TextEncoder(minilm)
    assert (enc.settings.pooling, enc.settings.normalize, enc.max_length, enc.dim) == ("mean", True, 256, 384)


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_pooling_matches_a_direct_computation(tiny_model, pooling):
    enc = TextEncoder(tiny_model, pooling=pooling, normalize=False)
    texts = ["a short one", "a somewhat longer text with more words in it", "x"]
    got = enc.encode(texts)
    for text, vec in zip(texts, got):
        ids = enc.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = enc.model(**ids).last_hidden_state[0]
        expected = {"mean": hidden.mean(0), "cls": hidden[0], "last": hidden[-1]}[pooling].numpy()
        np.testing.assert_allclose(vec, expected, rtol=1e-4, atol=1e-5)


def test_length_bucketing_does_not_change_vectors(tiny_model):
    texts = [("word " * n).strip() for n in (3, 40, 1, 17, 60, 2, 9)]
    one_by_one = TextEncoder(tiny_model, batch_size=1).encode(texts)
    bucketed = TextEncoder(tiny_model, batch_size=4).encode(texts)
    np.testing.assert_allclose(bucketed, one_by_one, atol=1e-5)


def test_truncation_is_warned_once(tiny_model):
    enc = TextEncoder(tiny_model, max_length=16)
    long = ["many words " * 30]
    with pytest.warns(UserWarning, match=r"1 of 1 texts are longer than max_length=16"):
        enc.encode(long)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.encode(long)  # said once per encoder
    assert len(enc.tokenize(long)[0]) == 16


def test_a_text_exactly_at_the_limit_is_not_reported(tiny_model):
    enc = TextEncoder(tiny_model, max_length=7)
    text = "one two three four five"  # [CLS] + 5 words + [SEP] = 7 tokens
    assert len(enc.tokenize([text])[0]) == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.encode([text])


def test_empty_texts_warn_and_still_encode(tiny_model):
    enc = TextEncoder(tiny_model)
    with pytest.warns(UserWarning, match="1 of 2 texts are empty"):
        out = enc.encode(["", "not empty"])
    assert out.shape == (2, 32) and np.isfinite(out).all()
    assert enc.encode([]).shape == (0, 32)


def test_prefixes_are_prepended(tiny_model):
    bi = BiEncoder(tiny_model, query_prefix="query: ", doc_prefix="passage: ")
    plain = TextEncoder(tiny_model)
    np.testing.assert_allclose(bi.encode_queries(["cats"]), plain.encode(["query: cats"]), atol=1e-6)
    np.testing.assert_allclose(bi.encode_docs(["cats"]), plain.encode(["passage: cats"]), atol=1e-6)
    assert bi.query.model is bi.doc.model  # one copy of the weights


def test_separate_query_and_document_towers(tiny_model, tiny_model_b):
    bi = BiEncoder(tiny_model, doc_model=tiny_model_b)
    assert bi.query.model is not bi.doc.model
    np.testing.assert_allclose(bi.encode_queries(["x y"]), TextEncoder(tiny_model).encode(["x y"]), atol=1e-6)
    np.testing.assert_allclose(bi.encode_docs(["x y"]), TextEncoder(tiny_model_b).encode(["x y"]), atol=1e-6)
    assert "doc_model" in repr(bi)


def test_saved_model_loads_in_sentence_transformers(tmp_path, tiny_model):
    st_mod = pytest.importorskip("sentence_transformers")
    bi = BiEncoder(tiny_model, pooling="cls", query_prefix="q: ", doc_prefix="d: ")
    out = bi.save(tmp_path / "saved")
    st = st_mod.SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(st.encode(["d: some text"]), bi.encode_docs(["some text"]), atol=1e-5)
    reloaded = BiEncoder(out)
    assert (reloaded.query.prefix, reloaded.doc.prefix, reloaded.doc.settings.pooling) == ("q: ", "d: ", "cls")
    np.testing.assert_allclose(reloaded.encode_queries(["x"]), bi.encode_queries(["x"]), atol=1e-6)


def test_a_shorter_query_limit_is_not_saved_as_the_model_limit(tmp_path, tiny_model):
    bi = BiEncoder(tiny_model, query_max_length=8, max_length=48)
    assert (bi.query.max_length, bi.doc.max_length) == (8, 48)
    reloaded = BiEncoder(bi.save(tmp_path / "saved"))
    assert reloaded.doc.max_length == 48


def test_missing_files_are_named(tmp_path, tiny_model):
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(tiny_model / "config.json", broken / "config.json")
    with pytest.raises(ModelDirectoryError, match=r"missing weights .* a tokenizer"):
        TextEncoder(broken)
    with pytest.raises(ModelDirectoryError, match="is a file"):
        TextEncoder(tiny_model / "config.json")


def test_unknown_hub_id_offline_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelDirectoryError, match="neither a local model directory nor downloadable"):
        TextEncoder("no-such-org/no-such-model")


def test_unsupported_pooling_in_config(tmp_path, tiny_model):
    copy = shutil.copytree(tiny_model, tmp_path / "m")
    cfg = json.loads((copy / "1_Pooling" / "config.json").read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
    (copy / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirectoryError, match="pooling"):
        TextEncoder(copy)


def test_onnx_export_matches_pytorch(tmp_path, tiny_model):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    out = export_onnx(tiny_model, tmp_path / "onnx-model")
    assert (out / "onnx" / "model.onnx").exists() and (out / "onnx" / "model_qint8.onnx").exists()
    assert not (out / "model.safetensors").exists()  # the export does not copy the PyTorch weights
    texts = ["a short text", "a longer text with a few more words " * 3, "x"]
    reference = TextEncoder(tiny_model).encode(texts)
    fp32 = TextEncoder(out, backend="onnx", quantized=False).encode(texts)
    int8 = TextEncoder(out, backend="onnx").encode(texts)
    assert cosines(fp32, reference).min() > 0.99999
    assert cosines(int8, reference).min() > 0.98
    # an ONNX copy keeps the identity of the weights it came from
    assert TextEncoder(out, backend="onnx").fingerprint == TextEncoder(tiny_model).fingerprint


def test_onnx_backend_without_export_says_how(tiny_model):
    pytest.importorskip("onnxruntime")
    with pytest.raises(ModelDirectoryError, match="export_onnx"):
        TextEncoder(tiny_model, backend="onnx")


def test_embed_has_gradients(tiny_model):
    enc = TextEncoder(tiny_model)
    feats = enc.features(["trainable"])
    vec = enc.embed(**feats)
    vec.sum().backward()
    assert any(p.grad is not None for p in enc.model.parameters())


def test_tiny_model_helper_is_deterministic(tmp_path):
    a = TextEncoder(make_tiny_model(tmp_path / "a", seed=3)).encode(["same"])
    b = TextEncoder(make_tiny_model(tmp_path / "b", seed=3)).encode(["same"])
    np.testing.assert_array_equal(a, b)
