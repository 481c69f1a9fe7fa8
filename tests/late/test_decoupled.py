"""PreTTR, DC-BERT, the poly-encoder and MORES against reference computations; caching, storage, training."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.late.decoupled import DCBert, Mores, PolyEncoder, PreTTR, _attend, _interaction_block, poly_score
from tests.rerank.conftest import make_tiny_bert_encoder, toy_docs, toy_queries, toy_ranking

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

FAMILIES = [(PreTTR, {"layer": 1}), (DCBert, {}), (PolyEncoder, {"codes": 4}), (Mores, {})]
QUERIES = ["where does the cat live", "dog"]
DOCS = ["The cat lives near the river, far from the city.", "A dog barks."]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return make_tiny_bert_encoder(tmp_path_factory.mktemp("decoupled") / "bert")


def bert(path):
    return transformers.BertModel.from_pretrained(path, add_pooling_layer=False).eval()


def mask4d(keep):
    """[L, L] booleans -> an additive [1, 1, L, L] mask."""
    return torch.where(torch.as_tensor(keep)[None, None], 0.0, torch.finfo(torch.float32).min)


def test_prettr_equals_a_cross_encoder_whose_lower_layers_see_query_and_document_apart(bert_dir):
    model = PreTTR(bert_dir, layer=1, query_max_length=8, device="cpu")
    tok = model.tokenizer
    q = [tok.cls_token_id, *tok("where does the cat live", add_special_tokens=False)["input_ids"], tok.sep_token_id]
    d = [*tok(DOCS[0], add_special_tokens=False)["input_ids"], tok.sep_token_id]
    ids = torch.tensor([q + d])
    positions = torch.tensor([list(range(len(q))) + [8 + j for j in range(len(d))]])
    types = torch.tensor([[0] * len(q) + [1] * len(d)])
    ref = bert(bert_dir)
    with torch.no_grad():
        h = ref.embeddings(input_ids=ids, token_type_ids=types, position_ids=positions)
        n = len(q) + len(d)
        apart = np.zeros((n, n), bool)
        apart[: len(q), : len(q)] = True
        apart[len(q) :, len(q) :] = True
        for i, layer in enumerate(ref.encoder.layer):
            out = layer(h, attention_mask=mask4d(apart if i < 1 else np.ones((n, n), bool)))
            h = out[0] if isinstance(out, tuple) else out
        want = float(model.model["head"](h[:, 0]).squeeze())
        got = float(model.pair_scores(["where does the cat live"], [DOCS[0]])[0])
    assert got == pytest.approx(want, abs=1e-5)


def test_poly_score_equals_explicit_loops():
    rng = np.random.default_rng(0)
    states, codes, doc = rng.normal(size=(2, 5, 4)), rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    got = poly_score(*(torch.tensor(x) for x in (states, mask, codes, doc))).numpy()
    for b in range(2):
        live = states[b][mask[b] == 1]
        poly = []
        for c in codes:
            w = np.exp(live @ c)
            poly.append((w / w.sum()) @ live)
        poly = np.array(poly)
        a = np.exp(poly @ doc[b])
        query = (a / a.sum()) @ poly
        assert got[b] == pytest.approx(float(query @ doc[b]), abs=1e-8)


def test_a_mores_block_with_memory_equal_to_its_input_is_the_bert_layer(bert_dir):
    """Self-attention sub-layer + FFN of an interaction block reproduce the BERT layer it was copied from."""
    ref = bert(bert_dir)
    layer = ref.encoder.layer[-1]
    block = _interaction_block(layer)
    x = torch.randn(2, 6, 32)
    keep = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6])
    with torch.no_grad():
        want = layer(x, attention_mask=(1.0 - keep[:, None, None, :].float()) * torch.finfo(torch.float32).min)
        want = want[0] if isinstance(want, tuple) else want
        h = _attend(x, x, keep, block, "self_", 2)
        got = block["ff_norm"](h + block["ff2"](torch.nn.functional.gelu(block["ff1"](h))))
    torch.testing.assert_close(got[keep.bool()], want[keep.bool()], atol=1e-5, rtol=1e-5)


def test_dcbert_equals_its_formula(bert_dir):
    model = DCBert(bert_dir, query_max_length=8, device="cpu")
    ref = bert(bert_dir)
    tok = model.tokenizer
    with torch.no_grad():
        q = ref(**tok(["dog"], return_tensors="pt")).last_hidden_state
        d = ref(**tok([DOCS[1]], return_tensors="pt")).last_hidden_state
        seg = model.model["segments"].weight
        h = torch.cat([q + seg[0], d + seg[1]], 1)
        for layer in model.model["interaction"]:
            out = layer(h, attention_mask=torch.zeros(1, 1, 1, h.shape[1]))
            h = out[0] if isinstance(out, tuple) else out
        want = float(model.model["head"](h[:, 0]))
        got = float(model.pair_scores(["dog"], [DOCS[1]])[0])
    assert got == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize(("family", "settings"), FAMILIES)
def test_cached_scoring_equals_the_training_forward_and_survives_saving(family, settings, bert_dir, tmp_path):
    model = family(bert_dir, query_max_length=8, device="cpu", **settings)
    with torch.no_grad():
        direct = model.pair_scores(QUERIES * 2, DOCS + DOCS[::-1]).numpy()
    cached = model.score_pairs(QUERIES * 2, DOCS + DOCS[::-1])
    np.testing.assert_allclose(cached, direct, atol=2e-3)  # document states are cached in float16
    assert len(model._states) == 2  # each document's side computed once
    again = family(model.save(tmp_path / "saved"), query_max_length=8, device="cpu")
    assert not again.fresh_head and again.settings == model.settings
    np.testing.assert_allclose(again.score_pairs(QUERIES, DOCS), model.score_pairs(QUERIES, DOCS), atol=1e-6)
    other = next(f for f, _ in FAMILIES if f is not family)
    with pytest.raises(ValueError, match=f"holds a {family.family} re-ranker"):
        other(tmp_path / "saved")


def test_stored_states_give_the_same_scores_and_belong_to_one_model(bert_dir, tmp_path):
    corpus = toy_docs()
    model = PreTTR(bert_dir, layer=1, query_max_length=8, device="cpu", docs=corpus)
    index = model.store(corpus, tmp_path / "states")
    assert index.num_docs == len(corpus) and index.bits == 0
    ranking = toy_ranking(depth=3)
    computed = model(ranking).to_pandas()
    served = PreTTR(bert_dir, layer=1, query_max_length=8, device="cpu", docs=corpus)
    served.use_store(index)
    got = served(ranking).to_pandas()
    assert len(served._states) == len({d for d in ranking.docid.tolist()})  # every state came from the store
    merged = computed.merge(got, on=["qid", "docid"])
    np.testing.assert_allclose(merged.score_x, merged.score_y, atol=2e-3)
    with pytest.raises(ValueError, match="another model"):
        PreTTR(bert_dir, layer=0, query_max_length=8, device="cpu").use_store(index)


@pytest.mark.parametrize(("family", "settings"), FAMILIES)
def test_each_family_trains_with_the_reranker_trainer(family, settings, bert_dir, tmp_path):
    """The toy task of the cross-encoder tests (d0 and d1 relevant to every query), which a tiny random model
    learns in a few dozen steps; a wrong sign or target would learn the opposite preference."""
    from rankstack.train import RerankerTrainer
    from tests.train.test_rerank import CONFIG, toy_set

    def positive_rank_loss(model) -> float:
        docs = [d.contents() for d in toy_docs()]
        total = 0.0
        for _, query in toy_queries():
            s = model.score_pairs([query] * len(docs), docs)
            total += float(np.log(np.exp(s - s.max()).sum()) + s.max()) - float(s[:2].mean())
        return total / len(toy_queries())

    model = family(bert_dir, query_max_length=16, max_length=48, device="cpu", cache=False, **settings)
    before = positive_rank_loss(model)
    final = RerankerTrainer(model, toy_set(), CONFIG.replace(loss="lce", epochs=6), tmp_path / "run").train()
    assert positive_rank_loss(model) < before - 0.1  # (the document-state cache was dropped after training)
    reloaded = family(final, query_max_length=16, max_length=48, device="cpu", cache=False)
    docs = [d.contents() for d in toy_docs()]
    np.testing.assert_allclose(reloaded.score_pairs(QUERIES[:1] * 12, docs), model.score_pairs(QUERIES[:1] * 12, docs),
                               atol=1e-4)  # fmt: skip


def test_cli_trains_a_family_then_reranks_with_it(bert_dir, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from rankstack.cli import app
    from tests.test_cli import write_beir

    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", str(folder), "--reranker", "--family", "poly", "--model", str(bert_dir),
                                 "-o", str(out), "--batch-size", "2", "--num-negatives", "2", "--negative-depth", "3",
                                 "--doc-max-length", "48", "--query-max-length", "8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "final" / "late_reranker.json").exists()
    runner.invoke(app, ["index", str(folder), "-i", str(tmp_path / "idx")])
    runner.invoke(app, ["search", str(tmp_path / "idx"), "--queries", str(folder), "-o", str(tmp_path / "bm25.trec")])
    result = runner.invoke(app, ["rerank", str(tmp_path / "bm25.trec"), "--model", str(out / "final"), "--index",
                                 str(tmp_path / "idx"), "--queries", str(folder), "-o", str(tmp_path / "poly.trec")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "poly.trec").read_text().count("\n") == (tmp_path / "bm25.trec").read_text().count("\n")
    result = runner.invoke(app, ["train", str(folder), "--family", "poly", "--model", str(bert_dir), "-o", str(out)])
    assert result.exit_code != 0 and "--reranker" in result.output
