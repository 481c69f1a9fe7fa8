"""duoBERT (DuoCrossEncoder) and the pairwise machinery, on tiny random BERTs checked against plain loops."""

from __future__ import annotations

import functools
import itertools
import json
import warnings

import numpy as np
import pytest

from rankstack.models.batching import symmetric_batches
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.pipeline import Stage
from rankstack.rerank.duo import DuoCrossEncoder, aggregate_preferences
from rankstack.rerank.settings import CONFIG_FILE
from tests.rerank.conftest import make_tiny_cross_encoder, minilm_path, tiny_bert_config, toy_docs, toy_ranking

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

QUERY = "where does the fox live"
TEXTS = [
    "fox",
    "The fox lives near the forest. It is a fox of the forest and people watch it every single day of the year.",
    "A duck of the river.",
    "owl owl owl wolf bear frog fish " * 3,
]


class First(Stage):
    """A first stage that returns the toy ranking whatever it is given."""

    def __call__(self, inp):
        return toy_ranking()


def make_tiny_duo(path, num_labels=2, seed=3, **overrides):
    """A 2-layer, 32-wide BertForSequenceClassification whose weights are large enough (initializer_range
    0.5) that preferences spread over (0, 1) and a wrong segment id or padding mask shows well above 1e-5."""
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(seed)
    config = tiny_bert_config(tok.vocab_size, num_labels=num_labels, initializer_range=0.5, **overrides)
    transformers.BertForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def duo_dir(tmp_path_factory):
    return make_tiny_duo(tmp_path_factory.mktemp("duo") / "model")


@pytest.fixture(scope="module")
def duo(duo_dir):
    return DuoCrossEncoder(duo_dir, toy_docs(), device="cpu", batch_size=4)


# ------------------------------------------------------------------------------------ references
@functools.lru_cache(maxsize=8)
def load(model_dir):
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    return tok, transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).eval()


def reference_p(model_dir, query, a, b, second_segment=1, head="two-class"):
    """p(a beats b) from one unpadded forward pass of the saved model, input built by hand."""
    tok, model = load(model_dir)
    q, x, y = (tok(t, add_special_tokens=False)["input_ids"] for t in (query, a, b))
    ids = [tok.cls_token_id, *q, tok.sep_token_id, *x, tok.sep_token_id, *y, tok.sep_token_id]
    types = [0] * (len(q) + 2) + [1] * (len(x) + 1) + [second_segment] * (len(y) + 1)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits[0].double()
    if head == "logit":
        return float(torch.sigmoid(logits[0]))
    return float(torch.softmax(logits, -1)[1])


def reference_matrix(model_dir, query, texts, **kw):
    n = len(texts)
    p = np.full((n, n), np.nan)
    for i, j in itertools.permutations(range(n), 2):
        p[i, j] = reference_p(model_dir, query, texts[i], texts[j], **kw)
    return p


def loop_aggregate(p, method):
    n = len(p)
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        if method == "sum":
            out.append(sum(p[i][j] for j in others))
        elif method == "binary":
            out.append(sum(1.0 for j in others if p[i][j] > 0.5))
        elif method == "min":
            out.append(min(p[i][j] for j in others))
        elif method == "max":
            out.append(max(p[i][j] for j in others))
        else:
            out.append(sum(p[i][j] + (1 - p[j][i]) for j in others))
    return out


# ------------------------------------------------------------------------------------ aggregation
@pytest.mark.parametrize("method", ["sum", "binary", "min", "max", "sym-sum"])
def test_aggregations_on_a_hand_made_matrix(method):
    p = [
        [np.nan, 0.9, 0.6, 0.2],
        [0.1, np.nan, 0.5, 0.7],
        [0.3, 0.55, np.nan, 0.45],
        [0.8, 0.2, 0.51, np.nan],
    ]
    got = aggregate_preferences(np.array(p), method)
    assert got == pytest.approx(loop_aggregate(p, method), abs=1e-12)


def test_aggregation_names_and_shapes():
    assert aggregate_preferences(np.array([[np.nan]]), "min").tolist() == [0.0]
    assert aggregate_preferences(np.array([[np.nan, 0.7], [0.4, np.nan]]), "SYM_SUM") == pytest.approx([1.3, 0.7])
    with pytest.raises(ValueError, match="aggregate must be one of"):
        aggregate_preferences(np.zeros((2, 2)), "mean")
    with pytest.raises(ValueError, match="square"):
        aggregate_preferences(np.zeros((2, 3)), "sum")


def test_symmetric_batches_keep_both_orders_together_longest_first():
    lengths = [5, 5, 9, 9, 2, 2, 7, 7, 3]
    batches = list(symmetric_batches(lengths, 4))
    assert batches == [[2, 3, 6, 7], [0, 1, 8], [4, 5]]  # units by length: 9, 7, 5 | 3 (odd row), 2
    assert list(symmetric_batches(lengths[:4], 1)) == [[2, 3], [0, 1]]  # a couple never splits


# ------------------------------------------------------------------------------------ scores against references
def test_preferences_match_a_plain_loop_over_the_model(duo, duo_dir):
    got = duo.preference_matrix(QUERY, TEXTS)
    want = reference_matrix(duo_dir, QUERY, TEXTS)
    np.testing.assert_allclose(got, want, atol=1e-5)
    off = ~np.eye(len(TEXTS), dtype=bool)
    assert np.ptp(got[off]) > 0.1  # preferences spread, so a wrong input or formula would show


def test_padding_and_batch_size_never_change_a_preference(duo_dir):
    texts = [*TEXTS, "the " * 40 + "fox", "x"]
    wide = DuoCrossEncoder(duo_dir, device="cpu", batch_size=64).preference_matrix(QUERY, texts)
    narrow = DuoCrossEncoder(duo_dir, device="cpu", batch_size=2).preference_matrix(QUERY, texts)
    np.testing.assert_allclose(wide, narrow, atol=1e-5)
    np.testing.assert_allclose(wide[0, 4], reference_p(duo_dir, QUERY, texts[0], texts[4]), atol=1e-5)


def test_both_orders_of_a_pair_are_built_and_batched_together(duo):
    batches = []

    def spy(module, args, kwargs):
        batches.append(kwargs["input_ids"].tolist())

    sep = duo.tokenizer.sep_token_id
    handle = duo.model.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        p = duo.preference_matrix(QUERY, TEXTS)
    finally:
        handle.remove()
    assert sum(len(b) for b in batches) == len(TEXTS) * (len(TEXTS) - 1)
    for batch in batches:
        segments = []
        for row in batch:
            cut = [k for k, t in enumerate(row) if t == sep]
            segments.append((tuple(row[cut[0] + 1 : cut[1]]), tuple(row[cut[1] + 1 : cut[2]])))
        for a, b in segments:
            assert (b, a) in segments  # its swapped twin shares the batch
    assert np.isfinite(p[~np.eye(len(TEXTS), dtype=bool)]).all()


def test_input_layout_lengths_and_segments_at_512(tmp_path):
    make_tiny_duo(tmp_path, max_position_embeddings=512, type_vocab_size=3)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    duo = DuoCrossEncoder(tmp_path, device="cpu")
    assert (duo.max_length, duo.query_max_length) == (512, 62)
    query = " ".join(f"w{i}" for i in range(100))
    doc_a, doc_b = "cat " * 400, "dog " * 300
    with pytest.warns(UserWarning, match="cut to fit max_length=512"):
        enc = duo.encode_pairs([query, "short query"], [doc_a, doc_a], [doc_b, doc_b])
    ids, types = enc["input_ids"][0], enc["token_type_ids"][0]
    sep = tok.sep_token_id
    cuts = [k for k, t in enumerate(ids) if t == sep]
    assert len(ids) == 512 and ids[0] == tok.cls_token_id and len(cuts) == 3
    assert cuts[0] - 1 == 62 and cuts[1] - cuts[0] - 1 == 223 and cuts[2] - cuts[1] - 1 == 223
    assert ids[1 : cuts[0]] == tok(query, add_special_tokens=False)["input_ids"][:62]
    assert types == [0] * 64 + [1] * 224 + [2] * 224  # duoBERT's three segments when the checkpoint has them
    short = enc["input_ids"][1]  # a short query leaves the documents more room: (512 - 4) // 2 - 1 = 253
    assert len(short) == 512 and short.count(tok.convert_tokens_to_ids("cat")) == 253
    p = duo.preference_matrix("short query", [doc_a, doc_b])
    assert np.isfinite(p[0, 1]) and np.isfinite(p[1, 0])


def test_max_length_scales_the_query_budget(duo_dir):
    duo = DuoCrossEncoder(duo_dir, device="cpu", max_length=64)
    assert duo.query_max_length == 62 * 64 // 512
    with pytest.raises(ValueError, match="no room for two documents"):
        DuoCrossEncoder(duo_dir, device="cpu", max_length=64, query_max_length=60)


# ------------------------------------------------------------------------------------ the stage
def test_duo_as_a_pipeline_stage(duo, duo_dir):
    duo.clear_cache()
    out = (First() % 3 >> duo)(toy_ranking().queries)
    first = toy_ranking().cutoff(3)
    texts = {d.docid: d.contents() for d in toy_docs()}
    qtext = toy_ranking().queries.to_dict()
    assert len(out) == len(first) and set(out.qids()) == set(first.qids())
    for qid in ["q0", "q5"]:
        docids = first.for_qids([qid]).docid.tolist()
        p = reference_matrix(duo_dir, qtext[qid], [texts[d] for d in docids])
        want = dict(zip(docids, loop_aggregate(p.tolist(), "sum"), strict=True))
        got = out.for_qids([qid]).to_dict()[qid]
        assert got == pytest.approx(want, abs=1e-5)
        assert out.for_qids([qid]).docid.tolist() == sorted(want, key=lambda d: (-want[d], d))


def test_the_pair_cache_spares_a_rerun_and_serves_every_aggregation(duo_dir):
    duo = DuoCrossEncoder(duo_dir, toy_docs(), device="cpu")
    ranking = toy_ranking(depth=3)
    first = duo(ranking)
    assert len(duo._cache) == len(ranking.qids()) * 3 * 2
    calls = []
    handle = duo.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        again = duo(ranking)
        duo.aggregate = "sym-sum"
        sym = duo(ranking)
    finally:
        handle.remove()
    assert not calls
    assert again == first
    p = duo.preference_matrix(ranking.queries.to_dict()["q2"], [d.contents() for d in toy_docs()[2:5]])
    assert sym.for_qids(["q2"]).to_dict()["q2"] == pytest.approx(
        dict(zip(["d2", "d3", "d4"], loop_aggregate(p.tolist(), "sym-sum"), strict=True)), abs=1e-5
    )


def test_a_query_with_one_candidate_keeps_it_without_a_model_call(duo):
    from rankstack.types import Queries, Ranking

    ranking = Ranking(["a", "b", "b"], ["d1", "d2", "d3"], [1.0, 2.0, 1.0], queries=Queries(["a", "b"], ["cat", "dog"]))
    calls = []
    handle = duo.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        out = duo(ranking)
    finally:
        handle.remove()
    assert out.to_dict()["a"] == {"d1": 0.0}
    assert len(calls) == 1 and len(out) == 3


# ------------------------------------------------------------------------------------ training, saving
def test_pair_scores_are_log_preferences_with_gradients(duo):
    s = duo.pair_scores([QUERY, QUERY], [TEXTS[0], TEXTS[2]], [TEXTS[2], TEXTS[0]])
    assert s.shape == (2,) and s.requires_grad
    s.sum().backward()
    grads = [p.grad for p in duo.model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    duo.model.zero_grad()
    p = duo.preference_matrix(QUERY, [TEXTS[0], TEXTS[2]])
    assert np.exp(s.detach().double().numpy()) == pytest.approx([p[0, 1], p[1, 0]], abs=1e-5)


def test_save_and_reload_round_trip(duo, tmp_path):
    src = DuoCrossEncoder(duo.path, device="cpu", aggregate="min", max_length=100, query_max_length=10)
    out = src.save(tmp_path / "saved")
    cfg = json.loads((out / CONFIG_FILE).read_text())
    assert cfg["family"] == "duoBERT" and cfg["head"] == "two-class" and cfg["aggregate"] == "min"
    assert (cfg["max_length"], cfg["query_max_length"]) == (100, 10)
    back = DuoCrossEncoder(out, device="cpu")
    assert (back.aggregate, back.max_length, back.query_max_length) == ("min", 100, 10)
    np.testing.assert_allclose(back.preference_matrix(QUERY, TEXTS), src.preference_matrix(QUERY, TEXTS), atol=1e-7)
    assert DuoCrossEncoder(out, device="cpu", aggregate="sum").aggregate == "sum"  # arguments win


# ------------------------------------------------------------------------------------ bad input
def test_a_one_logit_checkpoint_is_refused_unless_read_as_a_pairwise_logit(tmp_path):
    path = make_tiny_duo(tmp_path / "one", num_labels=1, seed=5)
    with pytest.raises(ModelDirectoryError, match="one-logit head: a pointwise cross-encoder"):
        DuoCrossEncoder(path, device="cpu")
    duo = DuoCrossEncoder(path, device="cpu", head="logit")
    got = duo.preference_matrix(QUERY, TEXTS[:3])
    np.testing.assert_allclose(got, reference_matrix(path, QUERY, TEXTS[:3], head="logit"), atol=1e-5)


def test_a_bare_encoder_gets_a_fresh_two_class_head_with_a_warning(tmp_path):
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path())
    transformers.BertModel(tiny_bert_config(tok.vocab_size)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="no sequence-classification head"):
        duo = DuoCrossEncoder(tmp_path, device="cpu")
    assert duo.model.config.num_labels == 2
    assert duo.pair_scores([QUERY], [TEXTS[0]], [TEXTS[1]]).shape == (1,)


def test_bad_directories_and_arguments(duo_dir, tmp_path):
    bare = tmp_path / "no-tokenizer"
    transformers.BertForSequenceClassification(tiny_bert_config(100, num_labels=2)).save_pretrained(bare)
    with pytest.raises(ModelDirectoryError, match="missing a tokenizer"):
        DuoCrossEncoder(bare, device="cpu")
    three = make_tiny_cross_encoder(tmp_path / "three", num_labels=3)
    with pytest.raises(ModelDirectoryError, match="3-label head"):
        DuoCrossEncoder(three, device="cpu")
    with pytest.raises(ValueError, match="aggregate must be one of"):
        DuoCrossEncoder(duo_dir, device="cpu", aggregate="avg")
    with pytest.raises(ValueError, match="head must be"):
        DuoCrossEncoder(duo_dir, device="cpu", head="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "DuoCrossEncoder(" in repr(DuoCrossEncoder(duo_dir, device="cpu"))
