"""ColBERT's encoder, MaxSim and the MaxSim re-ranker, against independent reference computations."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

from rankstack.late import ColBERTEncoder, ColBERTReranker, maxsim, maxsim_packed, pack
from rankstack.late.interaction import maxsim_torch
from tests.rerank.conftest import make_tiny_bert_encoder, toy_docs, toy_ranking

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors = pytest.importorskip("safetensors.torch")

DOCS = ["The cat, the dog; and the bird!", "Vitamin D and bone density.", "a b c d e f g h i j k l m n o p q r s t u v"]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return make_tiny_bert_encoder(tmp_path_factory.mktemp("colbert") / "bert")


@pytest.fixture(scope="module")
def encoder(bert_dir):
    return ColBERTEncoder(bert_dir, dim=16, query_length=12, doc_length=10, device="cpu")


def reference_vectors(path, weight, ids, attention, keep):
    """BertModel's last hidden states, the projection applied by hand, L2-normalised; rows where ``keep``."""
    model = transformers.BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids]), attention_mask=torch.tensor([attention])).last_hidden_state[0]
    out = hidden.numpy() @ weight.T
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out[np.asarray(keep, dtype=bool)]


def test_queries_carry_the_marker_and_mask_augmentation(encoder):
    tok = encoder.tokenizer
    ids, attention = encoder.tokenize_queries(["cat dog"])
    words = tok.convert_ids_to_tokens(ids[0].tolist())
    assert words == ["[CLS]", "[unused0]", "cat", "dog", "[SEP]"] + ["[MASK]"] * 7
    assert attention[0].tolist() == [1] * 5 + [0] * 7  # ColBERTv2: the expansion tokens are not attended to
    long_ids, _ = encoder.tokenize_queries(["word " * 50])
    assert long_ids.shape == (1, 12) and long_ids[0, -1] == tok.sep_token_id  # cut, still ends with [SEP]


def test_documents_carry_their_marker_and_are_cut_at_doc_length(encoder):
    with pytest.warns(UserWarning, match="doc_length=10"):
        ids = encoder.tokenize_docs(DOCS)
    words = encoder.tokenizer.convert_ids_to_tokens(ids[1])
    assert words[:3] == ["[CLS]", "[unused1]", "vitamin"] and words[-1] == "[SEP]"
    assert max(len(x) for x in ids) == 10


def test_vectors_equal_a_plain_computation(encoder, bert_dir):
    weight = encoder.linear.weight.detach().numpy()
    q = encoder.encode_queries(["cat dog"])[0]
    ids, attention = encoder.tokenize_queries(["cat dog"])
    ref = reference_vectors(bert_dir, weight, ids[0].tolist(), attention[0].tolist(), [1] * 12)
    np.testing.assert_allclose(q, ref, atol=1e-5)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    docs = encoder.encode_docs(DOCS[:2])
    for text, got in zip(DOCS[:2], docs, strict=True):
        tokens = encoder.tokenize_docs([text])[0]
        skip = {i for w in string.punctuation for i in encoder.tokenizer(w, add_special_tokens=False)["input_ids"]}
        keep = [t not in skip for t in tokens]
        np.testing.assert_allclose(got, reference_vectors(bert_dir, weight, tokens, [1] * len(tokens), keep), atol=1e-5)
    assert len(docs[0]) == 10 - 2  # cut at 10 tokens: "," and ";" are skipped ("!" fell past the cut)


def test_attend_to_expansion_changes_the_query_vectors(bert_dir):
    off = ColBERTEncoder(bert_dir, dim=16, query_length=12, device="cpu")
    on = ColBERTEncoder(bert_dir, dim=16, query_length=12, device="cpu", attend_to_expansion=True)
    assert on.tokenize_queries(["cat"])[1].all()
    assert not np.allclose(off.encode_queries(["cat"]), on.encode_queries(["cat"]))


def test_maxsim_equals_a_brute_force_reference():
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(3, 5, 8)).astype(np.float32)
    docs = [rng.normal(size=(n, 8)).astype(np.float32) for n in (4, 1, 0, 9, 2)]
    vectors, offsets = pack(docs)
    got = maxsim_packed(queries, vectors, offsets)
    for qi, q in enumerate(queries):
        for di, d in enumerate(docs):
            want = sum(max(float(a @ b) for b in d) for a in q) if len(d) else 0.0
            assert got[qi, di] == pytest.approx(want, abs=1e-4)
            assert maxsim(q, d) == pytest.approx(want, abs=1e-4)
    width = max(len(d) for d in docs)
    padded = np.zeros((len(docs), width, 8), np.float32)
    mask = np.zeros((len(docs), width), bool)
    for i, d in enumerate(docs):
        padded[i, : len(d)], mask[i, : len(d)] = d, True
    torch_scores = maxsim_torch(torch.from_numpy(queries), torch.from_numpy(padded), torch.from_numpy(mask))
    np.testing.assert_allclose(torch_scores.numpy(), got, atol=1e-4)


def test_maxsim_packed_blocks_give_the_same_scores(monkeypatch):
    import rankstack.late.interaction as ms

    rng = np.random.default_rng(1)
    queries = rng.normal(size=(2, 4, 8)).astype(np.float32)
    vectors, offsets = pack([rng.normal(size=(int(n), 8)).astype(np.float32) for n in rng.integers(0, 7, size=40)])
    whole = maxsim_packed(queries, vectors, offsets)
    monkeypatch.setattr(ms, "_SCORES_PER_BLOCK", 40)  # a few documents per block
    np.testing.assert_allclose(ms.maxsim_packed(queries, vectors, offsets), whole, atol=1e-6)


def test_save_writes_a_pylate_directory_that_loads_back(encoder, tmp_path):
    out = encoder.save(tmp_path / "saved")
    modules = json.loads((out / "modules.json").read_text())
    assert modules[1]["path"] == "1_Dense" and (out / "1_Dense" / "model.safetensors").exists()
    st = json.loads((out / "config_sentence_transformers.json").read_text())
    assert (st["query_prefix"], st["document_prefix"], st["query_length"], st["document_length"]) == (
        "[unused0]", "[unused1]", 12, 10)  # fmt: skip
    again = ColBERTEncoder(out, device="cpu")
    assert again.layout == "pylate" and again.settings == encoder.settings
    np.testing.assert_allclose(again.encode_queries(["cat dog"]), encoder.encode_queries(["cat dog"]), atol=1e-6)
    with pytest.raises(ValueError, match="bare encoder only"):
        ColBERTEncoder(out, dim=8)


def test_a_stanford_checkpoint_loads_with_its_projection(encoder, bert_dir, tmp_path):
    """colbert-ir/colbertv2.0's layout: BERT weights under ``bert.`` plus ``linear.weight`` in one file,
    settings in artifact.metadata."""
    out = tmp_path / "stanford"
    out.mkdir()
    model = transformers.BertModel.from_pretrained(bert_dir, add_pooling_layer=False)
    state = {f"bert.{k}": v.contiguous() for k, v in model.state_dict().items()}
    state["linear.weight"] = encoder.linear.weight.detach().clone()
    safetensors.save_file(state, str(out / "model.safetensors"))
    config = json.loads((bert_dir / "config.json").read_text())
    config["architectures"] = ["HF_ColBERT"]
    (out / "config.json").write_text(json.dumps(config))
    encoder.tokenizer.save_pretrained(out)
    (out / "artifact.metadata").write_text(json.dumps({"dim": 16, "query_maxlen": 12, "doc_maxlen": 10,
        "query_token_id": "[unused0]", "doc_token_id": "[unused1]", "mask_punctuation": True,
        "attend_to_mask_tokens": False}))  # fmt: skip
    loaded = ColBERTEncoder(out, device="cpu")
    assert loaded.layout == "stanford" and loaded.dim == 16
    np.testing.assert_allclose(loaded.encode_queries(["cat dog"]), encoder.encode_queries(["cat dog"]), atol=1e-5)
    (out / "model.safetensors").unlink()
    safetensors.save_file({k: v for k, v in state.items() if k != "linear.weight"}, str(out / "model.safetensors"))
    with pytest.raises(Exception, match="without its projection"):
        ColBERTEncoder(out, device="cpu")


def test_a_vocabulary_without_unused_tokens_gets_added_markers(tmp_path):
    from tests.rerank.conftest import tiny_bert_config

    path = tmp_path / "bert"
    path.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cat", "dog", "."]
    tokenizer = transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    tokenizer.save_pretrained(path)
    transformers.BertModel(tiny_bert_config(tokenizer.vocab_size), add_pooling_layer=False).save_pretrained(path)
    enc = ColBERTEncoder(path, dim=8, device="cpu")
    assert (enc.settings.query_marker, enc.settings.doc_marker) == ("[Q]", "[D]")
    words = enc.tokenizer.convert_ids_to_tokens(enc.tokenize_queries(["cat"])[0][0].tolist())
    assert words[:4] == ["[CLS]", "[Q]", "cat", "[SEP]"]
    assert enc.encode_queries(["cat"]).shape == (1, 32, 8)
    assert len(enc.encode_docs(["cat dog."])[0]) == 5  # [CLS] [D] cat dog [SEP]: "." is skipped


def test_empty_queries_are_refused(encoder):
    with pytest.raises(ValueError, match="empty queries"):
        encoder.encode_queries(["cat", "  "])


def test_the_reranker_orders_candidates_by_maxsim(encoder):
    docs = {d.docid: d.contents() for d in toy_docs()}
    ranking = toy_ranking(depth=4)
    reranker = ColBERTReranker(encoder, docs=docs)
    out = reranker(ranking)
    frame = out.to_pandas()
    qtext = ranking.queries.to_dict()
    for row in frame.head(6).itertuples():
        want = maxsim(encoder.encode_queries([qtext[row.qid]])[0], encoder.encode_docs([docs[row.docid]])[0])
        assert row.score == pytest.approx(want, abs=1e-4)
    for _, group in frame.groupby("qid"):
        assert list(group.score) == sorted(group.score, reverse=True)
    assert len(out) == len(ranking)
    again = reranker(ranking)  # cached: identical
    np.testing.assert_array_equal(again.score, out.score)
