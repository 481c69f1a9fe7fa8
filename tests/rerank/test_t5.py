"""monoT5 and duoT5 on a tiny random T5 (MiniLM's WordPiece tokenizer), checked against plain loops."""

from __future__ import annotations

import functools
import itertools
import json
from collections import defaultdict

import numpy as np
import pytest

from rankstack.models.model_dir import ModelDirectoryError
from rankstack.pipeline import Stage
from rankstack.rerank.prompts import fit_documents, label_token_id, share_budget
from rankstack.rerank.settings import CONFIG_FILE
from rankstack.rerank.t5 import DuoT5, MonoT5
from tests.rerank.conftest import make_tiny_cross_encoder, minilm_path, toy_docs, toy_ranking

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MONO = "Query: {query} Document: {document} Relevant:"
DUO = "Query: {query} Document0: {document0} Document1: {document1} Relevant:"
QUERY = "where does the fox live"
TEXTS = [
    "fox",
    "The fox lives near the forest. It is a fox of the forest and people watch it every single day of the year.",
    "A duck of the river.",
    "owl owl owl wolf bear frog fish " * 3,
]


def make_tiny_t5(path, seed=0):
    """A 2-layer, 32-wide T5ForConditionalGeneration with random weights over MiniLM's WordPiece vocabulary."""
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(seed)
    config = transformers.T5Config(
        vocab_size=tok.vocab_size,
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        decoder_start_token_id=tok.pad_token_id,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.sep_token_id,
    )
    transformers.T5ForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


class First(Stage):
    def __call__(self, inp):
        return toy_ranking()


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return make_tiny_t5(tmp_path_factory.mktemp("t5") / "model")


@pytest.fixture(scope="module")
def mono(t5_dir):
    return MonoT5(t5_dir, toy_docs(), device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def duo(t5_dir):
    return DuoT5(t5_dir, toy_docs(), device="cpu", batch_size=4)


# ------------------------------------------------------------------------------------ references
@functools.lru_cache(maxsize=4)
def load(path):
    tok = transformers.AutoTokenizer.from_pretrained(path)
    return tok, transformers.AutoModelForSeq2SeqLM.from_pretrained(path).eval()


def label_logits(path, text, true="true", false="false"):
    """(false, true) logits after one decoder step, from one unpadded forward pass on ``text``."""
    tok, model = load(path)
    ids = torch.tensor([tok(text)["input_ids"]])
    start = torch.tensor([[model.config.decoder_start_token_id]])
    with torch.no_grad():
        logits = model(input_ids=ids, decoder_input_ids=start).logits[0, 0].double()
    return logits[[tok.convert_tokens_to_ids(false), tok.convert_tokens_to_ids(true)]]


def ref_mono(path, query, doc, template=MONO, **labels):
    return float(torch.log_softmax(label_logits(path, template.format(query=query, document=doc), **labels), -1)[1])


def ref_duo(path, query, d0, d1):
    return float(torch.softmax(label_logits(path, DUO.format(query=query, document0=d0, document1=d1)), -1)[1])


def ref_duo_scores(path, query, texts):
    """pygaggle's DuoT5 loop: for every ordered pair, s[d0] += p and s[d1] += 1 - p."""
    scores = defaultdict(float)
    for i, j in itertools.permutations(range(len(texts)), 2):
        p = ref_duo(path, query, texts[i], texts[j])
        scores[i] += p
        scores[j] += 1 - p
    return [scores[i] for i in range(len(texts))]


# ------------------------------------------------------------------------------------ monoT5
def test_mono_scores_match_a_plain_loop_over_the_model(mono, t5_dir):
    queries = [QUERY, "cat", QUERY, "a much longer question about where the duck lives near water"]
    docs = [TEXTS[0], TEXTS[1], TEXTS[3], TEXTS[2]]
    got = mono.score_pairs(queries, docs)
    want = [ref_mono(t5_dir, q, d) for q, d in zip(queries, docs, strict=True)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.ptp(got) > 1e-4  # the scores differ, so a wrong formula would show
    assert (np.asarray(got) < 0).all()  # log-probabilities


def test_padding_never_changes_a_mono_score(t5_dir):
    docs = ["x", "the " * 60 + "fox", TEXTS[1], TEXTS[2], "fox " * 5]
    batched = MonoT5(t5_dir, device="cpu", batch_size=16, cache=False).score_pairs([QUERY] * 5, docs)
    alone = MonoT5(t5_dir, device="cpu", batch_size=1, cache=False).score_pairs([QUERY] * 5, docs)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    np.testing.assert_allclose(batched, [ref_mono(t5_dir, QUERY, d) for d in docs], atol=1e-5)


def test_mono_truncation_keeps_query_and_template_and_cuts_the_document(t5_dir):
    mono = MonoT5(t5_dir, device="cpu", max_length=40)
    tok = mono.tokenizer
    doc = "cat " * 100
    with pytest.warns(UserWarning, match="documents were cut"):
        (ids,) = mono.encode_prompts([QUERY], [(doc,)])
    overhead = len(tok(MONO.format(query=QUERY, document=""))["input_ids"])
    assert len(ids) == 40
    assert ids == tok(MONO.format(query=QUERY, document="cat " * (40 - overhead)))["input_ids"]
    assert tok.convert_ids_to_tokens(ids[-3:]) == ["relevant", ":", "[SEP]"]
    want = ref_mono(t5_dir, QUERY, "cat " * (40 - overhead))
    assert mono.score_pairs([QUERY], [doc])[0] == pytest.approx(want, abs=1e-5)


def test_mono_as_a_stage_with_a_score_cache(mono, t5_dir):
    mono.clear_cache()
    out = (First() % 3 >> mono)(toy_ranking().queries)
    texts = {d.docid: d.contents() for d in toy_docs()}
    qtext = toy_ranking().queries.to_dict()
    for qid in ["q1", "q7"]:
        got = out.for_qids([qid]).to_dict()[qid]
        assert got == pytest.approx({d: ref_mono(t5_dir, qtext[qid], texts[d]) for d in got}, abs=1e-5)
    calls = []
    handle = mono.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        again = (First() % 3 >> mono)(toy_ranking().queries)
    finally:
        handle.remove()
    assert not calls and again == out


def test_mono_pair_scores_have_gradients(mono):
    s = mono.pair_scores([QUERY, "cat"], [TEXTS[0], TEXTS[2]])
    assert s.shape == (2,) and s.requires_grad
    s.sum().backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in mono.model.parameters())
    mono.model.zero_grad()
    assert s.detach().double().numpy() == pytest.approx(
        mono.score_pairs([QUERY, "cat"], [TEXTS[0], TEXTS[2]]), abs=1e-5
    )


# ------------------------------------------------------------------------------------ duoT5
def test_duo_preferences_and_sym_sum_match_pygaggles_loop(duo, t5_dir):
    p = duo.preference_matrix(QUERY, TEXTS)
    for i, j in itertools.permutations(range(len(TEXTS)), 2):
        assert p[i, j] == pytest.approx(ref_duo(t5_dir, QUERY, TEXTS[i], TEXTS[j]), abs=1e-5)
    from rankstack.types import Queries, Ranking

    ranking = Ranking(["q"] * 4, ["a", "b", "c", "d"], [4.0, 3.0, 2.0, 1.0], queries=Queries(["q"], [QUERY]))
    duo_here = DuoT5(t5_dir, dict(zip("abcd", TEXTS, strict=True)), device="cpu")
    got = duo_here(ranking).to_dict()["q"]
    want = dict(zip("abcd", ref_duo_scores(t5_dir, QUERY, TEXTS), strict=True))
    assert got == pytest.approx(want, abs=1e-5)


def test_duo_truncation_shares_the_room_fairly_in_both_orders(t5_dir):
    duo = DuoT5(t5_dir, device="cpu", max_length=60)
    tok = duo.tokenizer
    cat_id, dog_id = tok.convert_tokens_to_ids(["cat", "dog"])
    with pytest.warns(UserWarning, match="documents were cut"):
        ab, ba, short = duo.encode_prompts(
            [QUERY] * 3, [("cat " * 80, "dog " * 50), ("dog " * 50, "cat " * 80), ("cat", "dog " * 80)]
        )
    for ids in (ab, ba, short):
        assert len(ids) <= 60 and tok.convert_ids_to_tokens(ids[-3:]) == ["relevant", ":", "[SEP]"]
    assert ab.count(cat_id) == ab.count(dog_id) == ba.count(cat_id) == ba.count(dog_id)
    overhead = len(tok(DUO.format(query=QUERY, document0="", document1=""))["input_ids"])
    assert ab.count(cat_id) == (60 - overhead) // 2
    assert short.count(cat_id) == 1 and short.count(dog_id) == 60 - overhead - 1  # a short document keeps all


def test_duo_as_the_last_stage_of_expando_mono_duo(t5_dir, mono):
    duo = DuoT5(t5_dir, toy_docs(), device="cpu")
    out = (First() % 4 >> mono % 3 >> duo)(toy_ranking().queries)
    assert all(len(out.for_qids([q])) == 3 for q in out.qids())
    texts = {d.docid: d.contents() for d in toy_docs()}
    qtext = toy_ranking().queries.to_dict()
    got = out.for_qids(["q3"]).to_dict()["q3"]
    docids = sorted(got)
    want = dict(zip(docids, ref_duo_scores(t5_dir, qtext["q3"], [texts[d] for d in docids]), strict=True))
    assert got == pytest.approx(want, abs=1e-5)
    calls = []
    handle = duo.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        duo.aggregate = "sum"
        summed = duo(out)
    finally:
        handle.remove()
    assert not calls  # the preference cache serves another aggregation
    assert summed.to_dict()["q3"] != pytest.approx(got)


def test_duo_pair_scores_are_log_preferences_with_gradients(duo):
    s = duo.pair_scores([QUERY, QUERY], [TEXTS[0], TEXTS[1]], [TEXTS[1], TEXTS[0]])
    assert s.requires_grad and s.shape == (2,)
    s.sum().backward()
    duo.model.zero_grad()
    p = duo.preference_matrix(QUERY, TEXTS[:2])
    assert np.exp(s.detach().double().numpy()) == pytest.approx([p[0, 1], p[1, 0]], abs=1e-5)


# ------------------------------------------------------------------------------------ labels, templates, saving
def test_label_words_are_looked_up_in_the_tokenizer_never_fixed_ids():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁true", -2.0), ("▁false", -2.0), ("true", -3.0)]
    vocab += [("false", -3.0), ("▁", -4.0)] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    backend = Tokenizer(models.Unigram(vocab, unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    sp = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")
    # as in T5's SentencePiece vocabulary: the word "true" is the word-initial piece "▁true"
    assert label_token_id(sp, "true") == 3 and label_token_id(sp, "false") == 4
    assert label_token_id(sp, "▁true") == 3
    with pytest.raises(ModelDirectoryError, match="'maybe' is not one token"):
        label_token_id(sp, "maybe")
    bert = transformers.AutoTokenizer.from_pretrained(minilm_path())
    assert label_token_id(bert, "true") == bert.convert_tokens_to_ids("true")


def test_custom_template_and_labels_round_trip_through_save(t5_dir, tmp_path):
    template = "Question: {query} Passage: {document} Answer:"
    src = MonoT5(t5_dir, device="cpu", template=template, true_token="yes", false_token="no", max_length=100)
    docs = [TEXTS[0], TEXTS[2]]
    want = [ref_mono(t5_dir, QUERY, d, template=template, true="yes", false="no") for d in docs]
    np.testing.assert_allclose(src.score_pairs([QUERY] * 2, docs), want, atol=1e-5)
    out = src.save(tmp_path / "mono")
    cfg = json.loads((out / CONFIG_FILE).read_text())
    tok = src.tokenizer
    assert cfg["family"] == "monoT5" and cfg["template"] == template
    assert (cfg["true_token"], cfg["false_token"], cfg["max_length"]) == ("yes", "no", 100)
    assert cfg["label_ids"] == {"false": tok.convert_tokens_to_ids("no"), "true": tok.convert_tokens_to_ids("yes")}
    back = MonoT5(out, device="cpu")
    assert (back.template, back.true_token, back.false_token, back.max_length) == (template, "yes", "no", 100)
    np.testing.assert_allclose(back.score_pairs([QUERY] * 2, docs), want, atol=1e-5)
    assert "Passage" in repr(back)
    # a tokenizer that no longer gives the saved ids is refused
    cfg["label_ids"]["true"] += 1
    (out / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ModelDirectoryError, match="tokenizer changed"):
        MonoT5(out, device="cpu")
    # and a monoT5 directory is not a duoT5 one
    with pytest.raises(ModelDirectoryError, match="saved as a 'monoT5' re-ranker"):
        DuoT5(out, device="cpu")


def test_duo_save_round_trip(duo, tmp_path):
    out = DuoT5(duo.path, device="cpu", aggregate="binary").save(tmp_path / "duo")
    assert json.loads((out / CONFIG_FILE).read_text())["aggregate"] == "binary"
    back = DuoT5(out, device="cpu")
    assert back.aggregate == "binary" and back.template == DUO
    np.testing.assert_allclose(
        back.preference_matrix(QUERY, TEXTS[:3]), duo.preference_matrix(QUERY, TEXTS[:3]), atol=1e-7
    )


def test_bad_input_is_refused_clearly(t5_dir, tmp_path):
    with pytest.raises(ModelDirectoryError, match="'xyzzyq' is not one token"):
        MonoT5(t5_dir, device="cpu", true_token="xyzzyq")
    with pytest.raises(ValueError, match="same token"):
        MonoT5(t5_dir, device="cpu", true_token="true", false_token="true")
    with pytest.raises(ValueError, match=r"lacks \{document\}"):
        MonoT5(t5_dir, device="cpu", template="Query: {query} Relevant:")
    with pytest.raises(ValueError, match="neither a known name"):
        DuoT5(t5_dir, device="cpu", template="{query} {document}")
    no_tok = tmp_path / "no-tokenizer"
    transformers.AutoModelForSeq2SeqLM.from_pretrained(t5_dir).save_pretrained(no_tok)
    with pytest.raises(ModelDirectoryError, match="missing a tokenizer"):
        MonoT5(no_tok, device="cpu")
    bert = make_tiny_cross_encoder(tmp_path / "bert")
    with pytest.raises(ModelDirectoryError, match="not an encoder-decoder"):
        MonoT5(bert, device="cpu")


def test_share_budget_and_fit_documents():
    assert share_budget([5, 5], 4) == [2, 2] and share_budget([1, 9, 9], 7) == [1, 3, 3]
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path())
    render = lambda ds: f"q: {ds[0]} | {ds[1]}"  # noqa: E731
    cut = fit_documents(tok, render, ["a b c d e f", "g h"], 9)
    assert cut == ["a b", "g h"] and len(tok(render(cut))["input_ids"]) == 9
    with pytest.raises(ValueError, match="without any document text"):
        fit_documents(tok, render, ["a", "b"], 3)
