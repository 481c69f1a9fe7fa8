"""CEDR on a tiny random BERT: per-layer similarity channels, windows and the four heads against references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rankstack.rerank.cedr import CEDR, HEADS
from rankstack.rerank.kernels import kernel_mus, kernel_sigmas
from tests.rerank.conftest import make_tiny_bert_encoder, toy_docs, toy_qrels, toy_queries, toy_ranking

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bert_encoder(tmp_path_factory.mktemp("cedr") / "bert")


def _layers(model: CEDR, query: str, doc: str):
    """Reference inputs: one BERT pass over the tokenizer's own pair encoding (no rankstack code)."""
    enc = model.tokenizer(query, doc, return_tensors="pt")
    with torch.no_grad():
        out = model.bert(**enc, output_hidden_states=True)
    lq = len(model.tokenizer(query, add_special_tokens=False)["input_ids"])
    states = [h[0].double().numpy() for h in out.hidden_states]
    return [s[1 : 1 + lq] for s in states], [s[lq + 2 : -1] for s in states], states[-1][0]


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_cedr_knrm_equals_a_reference_computation(tiny):
    model = CEDR(tiny, head="knrm")
    query, doc = "where does the cat live", "the cat lives near the river and the cat sleeps"
    got = float(model.score_pairs([query], [doc])[0])
    qs, ds, cls = _layers(model, query, doc)
    feats = []
    for q, d in zip(qs, ds, strict=True):
        sim = _unit(q) @ _unit(d).T
        for mu, sigma in zip(kernel_mus(11), kernel_sigmas(11), strict=True):
            feats.append(sum(math.log(sum(math.exp(-((s - mu) ** 2) / (2 * sigma**2)) for s in row) + 1e-6)
                             for row in sim))  # fmt: skip
    out = model.model["head"]["out"]
    want = float(out.weight.detach().double().numpy()[0] @ np.concatenate([feats, cls]) + float(out.bias.detach()))
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_cedr_drmm_equals_a_reference_computation(tiny):
    model = CEDR(tiny, head="drmm")
    query, doc = "cat river", "the cat lives near the river"
    got = float(model.score_pairs([query], [doc])[0])
    qs, ds, cls = _layers(model, query, doc)
    hidden, out = model.model["head"]["hidden"], model.model["head"]["out"]
    w1, b1 = hidden.weight.detach().double().numpy(), hidden.bias.detach().double().numpy()
    w2, b2 = out.weight.detach().double().numpy()[0], float(out.bias.detach())
    want = 0.0
    for i in range(len(qs[0])):
        hist = []
        for q, d in zip(qs, ds, strict=True):
            h = np.zeros(11)
            for s in _unit(d) @ _unit(q[i]):
                h[10 if s >= 1 - 1e-6 else min(int((s + 1) / 2 * 10), 9)] += 1
            hist.append(np.log1p(h))
        want += w2 @ np.maximum(w1 @ np.concatenate([*hist, cls]) + b1, 0) + b2
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_long_documents_are_read_in_windows_whose_cls_vectors_are_averaged(tiny):
    model = CEDR(tiny, head="vanilla", max_length=16, query_max_length=4, max_windows=3)
    query = "cat"
    doc_ids = model.tokenizer("the cat lives near the river and it sleeps by the water all day long",
                              add_special_tokens=False)["input_ids"]  # fmt: skip
    size = 16 - 1 - 3
    windows = [doc_ids[i : i + size] for i in range(0, len(doc_ids), size)]
    assert len(windows) == 2
    cls = []
    q = model.tokenizer(query, add_special_tokens=False)["input_ids"]
    for w in windows:
        ids = torch.tensor([[model.tokenizer.cls_token_id, *q, model.tokenizer.sep_token_id, *w,
                             model.tokenizer.sep_token_id]])  # fmt: skip
        types = torch.tensor([[0] * (len(q) + 2) + [1] * (len(w) + 1)])
        with torch.no_grad():
            cls.append(model.bert(input_ids=ids, token_type_ids=types).last_hidden_state[0, 0].double().numpy())
    out = model.model["head"]["out"]
    want = float(out.weight.detach().double().numpy()[0] @ np.mean(cls, axis=0) + float(out.bias.detach()))
    got = float(model.score_pairs([query], [model.tokenizer.decode(doc_ids)])[0])
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_a_pair_scores_the_same_alone_and_in_a_batch(tiny, head):
    model = CEDR(tiny, head=head, max_length=24, query_max_length=6, max_windows=2)
    queries = ["cat", "where does the dog live today", "owl forest"]
    docs = ["the cat", "the dog lives near the farm and it runs in the fields every morning with the horse",
            "an owl of the forest watches the river at night"]  # fmt: skip
    batched = model.score_pairs(queries, docs)
    alone = [float(model.score_pairs([q], [d])[0]) for q, d in zip(queries, docs, strict=True)]
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("head", ["drmm", "pacrr"])
def test_a_batchs_gradients_are_the_sum_of_each_pairs(tiny, head):
    """The trainer's path (``pair_scores`` with gradients): a batch's loss backpropagates to every encoder weight
    exactly as its pairs' losses do one by one, windows and padding included."""
    model = CEDR(tiny, head=head, max_length=24, query_max_length=6, max_windows=2)
    queries = ["cat", "where does the dog live today", "owl forest"]
    docs = ["the cat", "the dog lives near the farm and it runs in the fields every morning with the horse",
            "an owl of the forest watches the river at night"]  # fmt: skip
    params = [p for p in model.model.parameters() if p.requires_grad]

    def grads(qs, ds):
        model.model.zero_grad(set_to_none=True)
        model.pair_scores(qs, ds).double().pow(2).sum().backward()
        return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]

    batched = grads(queries, docs)
    alone = [sum(g) for g in zip(*(grads([q], [d]) for q, d in zip(queries, docs, strict=True)), strict=True)]
    assert any(float(g.abs().sum()) > 0 for g in batched[:5])  # the encoder's own weights get gradients
    for b, a in zip(batched, alone, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_empty_texts_score_finitely(tiny, head):
    model = CEDR(tiny, head=head)
    assert np.isfinite(model.score_pairs(["", "cat", ""], ["the cat", "", ""])).all()


def test_saved_cedr_scores_the_same_and_bad_settings_are_refused(tmp_path, tiny):
    model = CEDR(tiny, head="pacrr", max_length=32, query_terms=4)
    before = model.score_pairs(["cat river"], ["the cat lives near the river"])
    saved = model.save(tmp_path / "m")
    again = CEDR(saved)
    assert again.head == "pacrr" and again.settings["query_terms"] == 4
    np.testing.assert_allclose(again.score_pairs(["cat river"], ["the cat lives near the river"]), before, rtol=1e-6)
    with pytest.raises(ValueError, match="holds a CEDR-pacrr"):
        CEDR(saved, head="knrm")
    with pytest.raises(ValueError, match="head must be one of"):
        CEDR(tiny, head="duet")
    with pytest.raises(TypeError, match="no setting"):
        CEDR(tiny, head="knrm", bins=3)
    with pytest.raises(ValueError, match="no document window"):
        CEDR(tiny, max_length=16, query_max_length=14)


def test_a_head_checkpoint_of_another_shape_is_refused_not_half_loaded(tmp_path, tiny):
    from safetensors.torch import load_file, save_file

    from rankstack.models.model_dir import ModelDirectoryError
    from rankstack.rerank.cedr import WEIGHTS_FILE

    saved = CEDR(tiny, head="knrm", max_length=32).save(tmp_path / "m")
    state = load_file(str(saved / WEIGHTS_FILE))
    first = sorted(state)[0]
    save_file({**{k: v for k, v in state.items() if k != first}, "extra.weight": state[first]}, str(saved / WEIGHTS_FILE))
    with pytest.raises(ModelDirectoryError, match=rf"does not fit CEDR-knrm: missing \['{first}'\], unexpected \['extra"):
        CEDR(saved)


def test_cedr_trains_with_the_rerankers_trainer(tmp_path, tiny):
    from rankstack.train import RerankConfig, train_reranker

    config = RerankConfig(epochs=1, batch_size=4, num_negatives=2, negative_depth=4, max_length=48,
                          show_progress=False)  # fmt: skip
    final = train_reranker(CEDR(tiny, head="knrm", max_length=48), toy_queries(), toy_qrels(), toy_docs(),
                           tmp_path / "out", config=config)  # fmt: skip
    trained = CEDR(final, docs={d.docid: d.text for d in toy_docs()})
    before = CEDR(tiny, head="knrm").model["head"]["out"].weight.detach()
    assert not torch.equal(trained.model["head"]["out"].weight.detach(), before)  # the head moved
    assert np.isfinite(trained(toy_ranking(3)).score).all()
