"""uniCOIL on a tiny random BERT: per-token weights max-pooled per token, against a plain computation from the
saved weights; the same head for queries; trainable with the sparse trainer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rankstack.sparse.unicoil import UniCoil
from rankstack.train.examples import TrainingSet, doc_texts
from rankstack.train.splade import SpladeConfig, SpladeTrainer
from tests.rerank.conftest import (
    make_tiny_bert_encoder,
    toy_docs,
    toy_qrels,
    toy_queries,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = ["the cat sat on the cat mat", "Vitamin D and bone density.", "", "dogs dogs dogs"]


@pytest.fixture()
def encoder_dir(tmp_path):
    return make_tiny_bert_encoder(tmp_path / "bert")


def fresh(path) -> UniCoil:
    with pytest.warns(UserWarning, match="no uniCOIL head"):
        enc = UniCoil(path, device="cpu")
    assert sum(map(len, enc.encode_documents(TEXTS))) > 5  # the fresh head weighs tokens (enough to test)
    return enc


def reference(path, texts):
    """BertModel + the saved tok_proj applied by hand; per token the max, specials left out."""
    from safetensors.torch import load_file

    tok = transformers.AutoTokenizer.from_pretrained(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bert = transformers.BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    state = load_file(str(path / "model.safetensors"))
    w, b = state["tok_proj.weight"], state["tok_proj.bias"]
    out = []
    for text in texts:
        ids = tok(text, truncation=True, max_length=512)["input_ids"]
        with torch.no_grad():
            h = bert(torch.tensor([ids])).last_hidden_state[0]
        weights = torch.relu(h @ w.T + b)[:, 0].tolist()
        vec = {}
        for i, x in zip(ids, weights, strict=True):
            if i in (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id) or x <= 0:
                continue
            token = tok.convert_ids_to_tokens(i)
            vec[token] = max(vec.get(token, 0.0), x)
        out.append(vec)
    return out


def test_documents_and_queries_equal_a_plain_computation(encoder_dir, tmp_path):
    enc = fresh(encoder_dir)
    saved = enc.save(tmp_path / "unicoil")
    again = UniCoil(saved, device="cpu")  # a uniCOIL checkpoint: no warning, same head
    for got, want in zip(again.encode_documents(TEXTS), reference(saved, TEXTS), strict=True):
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[t] for t in want], list(want.values()), rtol=1e-5, atol=1e-6)
    assert again.encode_queries(TEXTS[:1]) == again.encode_documents(TEXTS[:1])  # the same head
    assert "[CLS]" not in again.encode_documents(TEXTS)[0] and again.encode_documents([""]) == [{}]
    dense = again.forward(again.features(TEXTS)).detach().numpy()
    for row, vec in zip(dense, again.encode_documents(TEXTS), strict=True):
        ids = [again.tokenizer.convert_tokens_to_ids(t) for t in vec]
        np.testing.assert_allclose(row[ids], list(vec.values()), rtol=1e-5, atol=1e-6)
        assert np.count_nonzero(row) == len(vec)


def test_it_trains_with_the_sparse_trainer(encoder_dir, tmp_path):
    """uniCOIL only re-weights the tokens a text has, so its toy task is exact matching: each query's own
    animal document (a loss with the wrong sign would push the animal tokens down instead)."""
    enc = fresh(encoder_dir)
    docs = [d.contents() for d in toy_docs()]

    def own_document_loss() -> float:
        d = enc.forward(enc.features(docs)).detach().numpy()
        q = enc.forward(enc.features([text for _, text in toy_queries()])).detach().numpy()
        s = q @ d.T
        log_z = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1)
        return float(np.mean(log_z - np.diag(s)))

    data = TrainingSet.from_qrels(toy_queries(), toy_qrels(), doc_texts(toy_docs()))
    data = data.with_negatives({q: sorted(data.texts) for q in data.positives})
    before = own_document_loss()
    config = SpladeConfig(epochs=4, batch_size=4, learning_rate=1e-3, num_negatives=2, query_max_length=16,
                          doc_max_length=32, log_every=0, seed=5, show_progress=False, flops_query=0.0, flops_doc=0.0)  # fmt: skip
    SpladeTrainer(enc, data, config, tmp_path / "run").train()
    assert own_document_loss() < before - 0.3
