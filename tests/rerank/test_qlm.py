"""Query likelihood on tiny random GPT-2 and T5 models (MiniLM's WordPiece tokenizer), checked against the
models' own language-modelling loss on one unpadded example at a time."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from rankstack.models.model_dir import ModelDirectoryError
from rankstack.pipeline import Stage
from rankstack.rerank.qlm import QueryLikelihood
from rankstack.rerank.settings import CONFIG_FILE
from tests.rerank.conftest import minilm_path, toy_docs, toy_ranking
from tests.rerank.test_t5 import make_tiny_t5

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

QUERY = "where does the fox live"
DOCS = [
    "fox",
    "The fox lives near the forest. It is a fox of the forest and people watch it every single day of the year.",
    "A duck of the river.",
    "owl owl owl wolf bear frog fish " * 4,
]


def make_tiny_gpt2(path, seed=0):
    """A 2-layer, 32-wide GPT2LMHeadModel with random weights over MiniLM's WordPiece vocabulary (initializer
    range 0.5, so log-probabilities spread and a padding or position error shows well above 1e-5)."""
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=tok.vocab_size,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=96,
        initializer_range=0.5,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


class First(Stage):
    def __call__(self, inp):
        return toy_ranking()


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    # named like a seq2seq model on purpose: the family comes from config.json, never from the name
    return make_tiny_gpt2(tmp_path_factory.mktemp("qlm") / "t5-small")


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return make_tiny_t5(tmp_path_factory.mktemp("qlm") / "gpt2", seed=7)


@pytest.fixture(scope="module")
def causal(gpt2_dir):
    return QueryLikelihood(gpt2_dir, toy_docs(), device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def seq2seq(t5_dir):
    return QueryLikelihood(t5_dir, toy_docs(), device="cpu", batch_size=4)


# ------------------------------------------------------------------------------------ references
@functools.lru_cache(maxsize=4)
def load(path, loader):
    tok = transformers.AutoTokenizer.from_pretrained(path)
    return tok, getattr(transformers, loader).from_pretrained(path).eval()


def ref_causal(path, query, doc, normalize=True, eos=False, template="Document: {document} Query:"):
    """-(LM loss over the query tokens) of ``[CLS] prompt query`` (the WordPiece tokenizer's leading special)."""
    tok, model = load(path, "AutoModelForCausalLM")
    prompt = tok(template.format(document=doc), add_special_tokens=False)["input_ids"]
    target = tok(query, add_special_tokens=False)["input_ids"] + ([tok.sep_token_id] if eos else [])
    ids = [tok.cls_token_id, *prompt, *target]
    labels = [-100] * (1 + len(prompt)) + target
    with torch.no_grad():
        loss = float(model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss)
    return -loss if normalize else -loss * len(target)


def ref_seq2seq(path, query, doc, normalize=True, eos=True):
    """-(LM loss) of the query (then [SEP], the config's EOS) given the document, as T5 computes it."""
    tok, model = load(path, "AutoModelForSeq2SeqLM")
    target = tok(query, add_special_tokens=False)["input_ids"] + ([tok.sep_token_id] if eos else [])
    with torch.no_grad():
        loss = float(model(input_ids=torch.tensor([tok(doc)["input_ids"]]), labels=torch.tensor([target])).loss)
    return -loss if normalize else -loss * len(target)


# ------------------------------------------------------------------------------------ scores against references
def test_the_family_is_read_from_the_config_not_the_name(causal, seq2seq, gpt2_dir, t5_dir):
    assert gpt2_dir.name == "t5-small" and causal.family == "causal"
    assert t5_dir.name == "gpt2" and seq2seq.family == "seq2seq"
    assert causal.template == "Document: {document} Query:" and causal.query_template == " {query}"
    assert seq2seq.template == "{document}" and seq2seq.eos and not causal.eos


@pytest.mark.parametrize("normalize", [True, False])
def test_causal_scores_match_the_models_own_loss(gpt2_dir, normalize):
    qlm = QueryLikelihood(gpt2_dir, device="cpu", normalize=normalize, batch_size=8)
    queries = [QUERY, "cat", QUERY, "a much longer question about the duck near the river water"]
    got = qlm.score_pairs(queries, DOCS)
    want = [ref_causal(gpt2_dir, q, d, normalize=normalize) for q, d in zip(queries, DOCS, strict=True)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.ptp(got) > 0.5


@pytest.mark.parametrize("normalize", [True, False])
def test_seq2seq_scores_match_the_models_own_loss(t5_dir, normalize):
    qlm = QueryLikelihood(t5_dir, device="cpu", normalize=normalize, batch_size=8)
    queries = [QUERY, "cat", QUERY, "a much longer question about the duck near the river water"]
    got = qlm.score_pairs(queries, DOCS)
    want = [ref_seq2seq(t5_dir, q, d, normalize=normalize) for q, d in zip(queries, DOCS, strict=True)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.ptp(got) > 0.1


def test_eos_is_scored_only_when_asked(gpt2_dir, t5_dir):
    c = QueryLikelihood(gpt2_dir, device="cpu", eos=True).score_pairs([QUERY], [DOCS[1]])[0]
    assert c == pytest.approx(ref_causal(gpt2_dir, QUERY, DOCS[1], eos=True), abs=1e-5)
    s = QueryLikelihood(t5_dir, device="cpu", eos=False).score_pairs([QUERY], [DOCS[1]])[0]
    assert s == pytest.approx(ref_seq2seq(t5_dir, QUERY, DOCS[1], eos=False), abs=1e-5)
    assert s != pytest.approx(ref_seq2seq(t5_dir, QUERY, DOCS[1], eos=True), abs=1e-4)


@pytest.mark.parametrize("which", ["gpt2_dir", "t5_dir"])
def test_padding_never_changes_a_score(which, request):
    path = request.getfixturevalue(which)
    queries = ["x", QUERY, "a much longer question about the duck near the river water and more", "cat"]
    docs = ["the " * 50 + "fox", "y", DOCS[1], DOCS[2]]
    batched = QueryLikelihood(path, device="cpu", batch_size=16, cache=False).score_pairs(queries, docs)
    alone = QueryLikelihood(path, device="cpu", batch_size=1, cache=False).score_pairs(queries, docs)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    ref = ref_causal if which == "gpt2_dir" else ref_seq2seq
    np.testing.assert_allclose(batched, [ref(path, q, d) for q, d in zip(queries, docs, strict=True)], atol=1e-5)


# ------------------------------------------------------------------------------------ truncation
def test_causal_truncation_cuts_the_document_and_keeps_every_query_token(gpt2_dir):
    assert QueryLikelihood(gpt2_dir, device="cpu", max_length=1000).max_length == 96  # the model's n_positions
    qlm = QueryLikelihood(gpt2_dir, device="cpu", max_length=40)
    tok = qlm.tokenizer
    qids = tok(QUERY, add_special_tokens=False)["input_ids"]
    with pytest.warns(UserWarning, match="were cut to fit max_length=40"):
        ((ids, scored),) = qlm.encode([QUERY], ["cat " * 100])
    assert len(ids) == 40 and ids[-len(qids) :] == qids and scored == list(range(40 - len(qids), 40))
    room = 40 - 1 - len(tok("Document: Query:", add_special_tokens=False)["input_ids"]) - len(qids)
    got = qlm.score_pairs([QUERY], ["cat " * 100])[0]
    assert got == pytest.approx(ref_causal(gpt2_dir, QUERY, "cat " * room), abs=1e-5)


def test_seq2seq_truncation_cuts_the_encoder_input(t5_dir):
    qlm = QueryLikelihood(t5_dir, device="cpu", max_length=30)
    with pytest.warns(UserWarning, match="were cut"):
        ((enc, target),) = qlm.encode([QUERY], ["cat " * 100])
    tok = qlm.tokenizer
    assert enc == tok("cat " * 28)["input_ids"]  # [CLS] 28 x cat [SEP]
    assert target == tok(QUERY, add_special_tokens=False)["input_ids"] + [tok.sep_token_id]
    assert qlm.score_pairs([QUERY], ["cat " * 100])[0] == pytest.approx(
        ref_seq2seq(t5_dir, QUERY, "cat " * 28), abs=1e-5
    )


# ------------------------------------------------------------------------------------ the stage, training, saving
def test_query_likelihood_as_a_stage_with_a_cache(causal, gpt2_dir):
    causal.clear_cache()
    out = (First() % 3 >> causal)(toy_ranking().queries)
    texts = {d.docid: d.contents() for d in toy_docs()}
    qtext = toy_ranking().queries.to_dict()
    got = out.for_qids(["q4"]).to_dict()["q4"]
    assert got == pytest.approx({d: ref_causal(gpt2_dir, qtext["q4"], texts[d]) for d in got}, abs=1e-5)
    calls = []
    handle = causal.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        again = (First() % 3 >> causal)(toy_ranking().queries)
    finally:
        handle.remove()
    assert not calls and again == out


@pytest.mark.parametrize("which", ["causal", "seq2seq"])
def test_pair_scores_have_gradients(which, request):
    qlm = request.getfixturevalue(which)
    s = qlm.pair_scores([QUERY, "cat"], [DOCS[1], DOCS[2]])
    assert s.shape == (2,) and s.requires_grad
    s.sum().backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in qlm.model.parameters())
    qlm.model.zero_grad()
    assert s.detach().double().numpy() == pytest.approx(qlm.score_pairs([QUERY, "cat"], [DOCS[1], DOCS[2]]), abs=1e-5)


def test_save_and_reload_round_trip(gpt2_dir, tmp_path):
    template = "Passage: {document}\nQuestion:"
    src = QueryLikelihood(gpt2_dir, device="cpu", template=template, normalize=False, max_length=80)
    want = [ref_causal(gpt2_dir, QUERY, d, normalize=False, template=template) for d in DOCS]
    np.testing.assert_allclose(src.score_pairs([QUERY] * 4, DOCS), want, atol=1e-5)
    out = src.save(tmp_path / "qlm")
    cfg = json.loads((out / CONFIG_FILE).read_text())
    assert cfg["family"] == "query-likelihood" and cfg["model_family"] == "causal"
    assert (cfg["template"], cfg["query_template"], cfg["normalize"], cfg["eos"]) == (
        template,
        " {query}",
        False,
        False,
    )
    back = QueryLikelihood(out, device="cpu")
    assert (back.template, back.normalize, back.max_length) == (template, False, 80)
    np.testing.assert_allclose(back.score_pairs([QUERY] * 4, DOCS), want, atol=1e-5)


def test_bad_input_is_refused_clearly(gpt2_dir, tmp_path):
    with pytest.raises(ValueError, match=r"lacks \{document\}"):
        QueryLikelihood(gpt2_dir, device="cpu", template="Query:")
    with pytest.raises(ValueError, match=r"lacks \{query\}"):
        QueryLikelihood(gpt2_dir, device="cpu", query_template=" q")
    no_tok = tmp_path / "no-tokenizer"
    transformers.AutoModelForCausalLM.from_pretrained(gpt2_dir).save_pretrained(no_tok)
    with pytest.raises(ModelDirectoryError, match="missing a tokenizer"):
        QueryLikelihood(no_tok, device="cpu")
    (gpt2_dir / CONFIG_FILE).write_text(json.dumps({"family": "monoT5", "format_version": 1}))
    try:
        with pytest.raises(ModelDirectoryError, match="saved as a 'monoT5' re-ranker"):
            QueryLikelihood(gpt2_dir, device="cpu")
    finally:
        (gpt2_dir / CONFIG_FILE).unlink()
