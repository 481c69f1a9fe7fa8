"""One trainer for every re-ranker family: monoT5, query likelihood (seq2seq and causal), duoBERT and duoT5.

Tiny random models learn the toy task of ``test_rerank`` (d0 and d1 are relevant for every query), save
directories that reload to the same scores (checked against plain forward passes over the saved weights),
and resume exactly. A pairwise model's loss is checked against a plain loop over the model's outputs.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from rankstack.rerank import CrossEncoder, DuoCrossEncoder, DuoT5, MonoT5, QueryLikelihood
from rankstack.rerank.settings import CONFIG_FILE
from rankstack.train import checkpoint
from rankstack.train.examples import TrainingSet, doc_texts
from rankstack.train.losses import PreferenceLoss, PreferenceMarginMSELoss
from rankstack.train.rerank import (
    RerankConfig,
    RerankerTrainer,
    _training_view,
    check_loss,
    score_kind,
    train_reranker,
)
from tests.helpers import Fixed
from tests.rerank.conftest import (
    make_tiny_cross_encoder,
    minilm_path,
    tiny_bert_config,
    toy_docs,
    toy_queries,
    toy_ranking,
)
from tests.rerank.test_duo import reference_p
from tests.rerank.test_qlm import make_tiny_gpt2, ref_causal, ref_seq2seq
from tests.rerank.test_t5 import make_tiny_t5, ref_duo, ref_mono
from tests.train.test_rerank import CONFIG, TASK_QRELS, positive_rank_loss, toy_set

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = {d.docid: d.contents() for d in toy_docs()}
QUERIES = dict(toy_queries())


def make_tiny_duo_bert(path):
    """A tiny two-class BERT with three segment types, duoBERT's input (``[CLS] q [SEP]`` 0, ``d_a [SEP]`` 1,
    ``d_b [SEP]`` 2): with BERT's usual two, the order of the documents shows only in the position embeddings,
    and a tiny random model takes far more steps to learn it."""
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(1)
    config = tiny_bert_config(tok.vocab_size, num_labels=2, type_vocab_size=3)
    transformers.BertForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_tiny_duo_t5(path):
    """``make_tiny_t5`` with the first layer's relative-attention bias 10x wider and no dropout. T5 knows where
    a token is only through that bias; at its initial scale a 32-wide random T5 barely tells Document0 from
    Document1 (p(a beats b) and p(b beats a) agree to 1e-3) and needs hundreds of steps to learn the order,
    which duo training is all about; dropout at 0.1 on 32 dimensions drowns that signal for as long."""
    make_tiny_t5(path, seed=1)
    model = transformers.T5ForConditionalGeneration.from_pretrained(path, dropout_rate=0.0)
    with torch.no_grad():
        model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.mul_(10.0)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {
        "t5": make_tiny_t5(root / "t5"),
        "gpt2": make_tiny_gpt2(root / "gpt2"),
        "duo": make_tiny_duo_bert(root / "duo"),
        "duo-t5": make_tiny_duo_t5(root / "duo-t5"),
        "ce": make_tiny_cross_encoder(root / "ce"),
    }


def build(family, dirs, **kw):
    kw.setdefault("device", "cpu")
    return {
        "monoT5": lambda: MonoT5(dirs["t5"], **kw),
        "seq2seq-qlm": lambda: QueryLikelihood(dirs["t5"], **kw),
        "causal-qlm": lambda: QueryLikelihood(dirs["gpt2"], **kw),
        "duoBERT": lambda: DuoCrossEncoder(dirs["duo"], **kw),
        "duoT5": lambda: DuoT5(dirs["duo-t5"], **kw),
    }[family]()


PAIRS = [("q0", "d0"), ("q0", "d5"), ("q3", "d3"), ("q7", "d1")]


def reference(family, path):
    """Scores of PAIRS (pointwise families) or p(the pair's document beats d5) (pairwise ones) from plain
    forward passes over the weights saved in ``path``, as the re-ranker tests compute them."""
    if family == "monoT5":
        return [ref_mono(path, QUERIES[q], TEXTS[d]) for q, d in PAIRS]
    if family == "seq2seq-qlm":
        return [ref_seq2seq(path, QUERIES[q], TEXTS[d]) for q, d in PAIRS]
    if family == "causal-qlm":
        return [ref_causal(path, QUERIES[q], TEXTS[d]) for q, d in PAIRS]
    ref = duo_bert_p if family == "duoBERT" else ref_duo
    return [ref(path, QUERIES[q], TEXTS[d], TEXTS["d5"]) for q, d in PAIRS]


def duo_bert_p(path, query, a, b):
    return reference_p(path, query, a, b, second_segment=2)


def scores(family, reranker):
    if family in ("duoBERT", "duoT5"):
        qs = [QUERIES[q] for q, _ in PAIRS]
        return reranker.pair_probabilities(qs, [TEXTS[d] for _, d in PAIRS], [TEXTS["d5"]] * len(PAIRS))
    return reranker.score_pairs([QUERIES[q] for q, _ in PAIRS], [TEXTS[d] for _, d in PAIRS])


# ------------------------------------------------------------------------------------ pointwise families learn
@pytest.mark.parametrize("loss", ["pointwise", "pairwise", "lce"])
def test_mono_t5_learns_the_toy_task(tmp_path, dirs, loss):
    mono = MonoT5(dirs["t5"], device="cpu", cache=False)
    before = positive_rank_loss(mono)
    RerankerTrainer(mono, toy_set(), CONFIG.replace(loss=loss, epochs=4), tmp_path / "run").train()
    assert positive_rank_loss(mono) < before - 0.5


def test_query_likelihood_learns_the_toy_task_with_lce(tmp_path, dirs):
    qlm = build("seq2seq-qlm", dirs, cache=False)
    before = positive_rank_loss(qlm)
    RerankerTrainer(qlm, toy_set(), CONFIG.replace(loss="lce", epochs=4), tmp_path / "run").train()
    assert positive_rank_loss(qlm) < before - 0.5


# ------------------------------------------------------------------------------------ pairwise families learn
def top_is_relevant(reranker) -> int:
    """How many of the toy ranking's queries that hold d0 or d1 among their candidates put one of them first."""
    out = reranker(toy_ranking())
    count = 0
    for docs in out.to_dict().values():
        if {"d0", "d1"} & set(docs):
            count += max(docs, key=docs.get) in ("d0", "d1")
    return count


@pytest.mark.parametrize("family", ["duoBERT", "duoT5"])
def test_pairwise_models_learn_the_toy_task(tmp_path, dirs, family):
    duo = build(family, dirs, docs=toy_docs())
    ref = duo_bert_p if family == "duoBERT" else ref_duo

    def p(path, a, b):  # p(a beats b) for every query, from plain forward passes over the saved weights
        return np.array([ref(path, query, TEXTS[a], TEXTS[b]) for query in QUERIES.values()])

    wins_before = p(dirs["duo" if family == "duoBERT" else "duo-t5"], "d0", "d5")
    first_before = top_is_relevant(duo)  # fills the preference cache, which training must drop
    # trained on the whole inputs: with absolute positions, documents cut shorter in training than at inference
    # would put the second document where the model never saw one
    config = CONFIG.replace(loss="pointwise", epochs=4, learning_rate=5e-3, head_learning_rate=5e-3, max_length=128)
    final = RerankerTrainer(duo, toy_set(), config, tmp_path / "run").train()
    assert not duo._cache
    wins, losses = p(final, "d0", "d5"), p(final, "d5", "d0")
    assert (wins > 0.5).sum() >= 10 and wins.mean() > wins_before.mean() + 0.2
    assert losses.mean() < 0.5  # the order was learnt, not just "d0 is somewhere in the input"
    first_after = top_is_relevant(duo)
    assert first_after > first_before and first_after >= 5  # of the 6 queries holding d0 or d1


# ------------------------------------------------------------------------------------ round trip and resume
FAMILY_LOSS = {
    "monoT5": "lce",
    "seq2seq-qlm": "lce",
    "causal-qlm": "pairwise",
    "duoBERT": "pointwise",
    "duoT5": "pointwise",
}
# the causal model's logits over the whole vocabulary at every position make its steps the slowest: fewer
SHORTER = {"causal-qlm": {"epochs": 1, "num_negatives": 1}}
SAVED_AS = {
    "monoT5": "monoT5",
    "seq2seq-qlm": "query-likelihood",
    "causal-qlm": "query-likelihood",
    "duoBERT": "duoBERT",
    "duoT5": "duoT5",
}


@pytest.mark.parametrize("family", list(FAMILY_LOSS))
def test_checkpoints_reload_with_the_same_scores_and_resume_exactly(tmp_path, dirs, family):
    config = CONFIG.replace(
        **{"loss": FAMILY_LOSS[family], "epochs": 2, "save_every": 2, "keep_checkpoints": None, **SHORTER.get(family, {})}
    )
    whole = build(family, dirs, cache=False)
    final = RerankerTrainer(whole, toy_set(), config, tmp_path / "whole").train()
    assert json.loads((final / CONFIG_FILE).read_text())["family"] == SAVED_AS[family]
    reloaded = build(family, dict.fromkeys(dirs, final), cache=False)  # the family's class over the final directory
    trained = scores(family, whole)
    np.testing.assert_allclose(scores(family, reloaded), trained, atol=1e-5)
    np.testing.assert_allclose(reference(family, final), trained, atol=1e-5)  # plain passes over the saved weights
    assert np.max(np.abs(trained - scores(family, build(family, dirs, cache=False)))) > 1e-3  # training changed it

    part = build(family, dirs)
    trainer = RerankerTrainer(part, toy_set(), config, tmp_path / "part")
    part.model.train()  # the first 2 steps only, as train() would run them: a crash after the first checkpoint
    for step in range(2):
        trainer._optimise(step)
    trainer.step = 2
    checkpoint.save(tmp_path / "part" / "checkpoint-2", part, trainer._state(), trainer.data.negatives, trainer.optimizer)
    assert (tmp_path / "part" / "checkpoint-2" / CONFIG_FILE).exists()
    resumed = build(family, dirs)
    RerankerTrainer(resumed, toy_set(), config, tmp_path / "part").train(resume=True)
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


# ------------------------------------------------------------------------------------ the pairwise loss, by hand
@pytest.mark.parametrize("loss", ["pointwise", "margin_mse"])
def test_pairwise_loss_is_the_plain_loop_over_both_orders(tmp_path, dirs, loss):
    """Both orders of every (positive, negative) pair, each pair's loss scaled by the mean curriculum weight of
    its two documents, averaged over the pairs."""
    data = TrainingSet.from_qrels(toy_queries(), TASK_QRELS, doc_texts(toy_docs()))
    data = data.with_negatives({q: ["d5", "d7"] for q in data.positives})
    teacher = {q: {d: 0.3 * int(d[1:]) - (2.0 if d in ("d0", "d1") else 0.0) for d in TEXTS} for q in data.positives}
    data.teacher = teacher
    easiness = {q: {d: 0.1 + 0.07 * int(d[1:]) + 0.01 * int(q[1:]) for d in TEXTS} for q in data.positives}
    config = CONFIG.replace(loss=loss, num_negatives=2, max_length=128, curriculum="recip")
    duo = DuoCrossEncoder(dirs["duo"], device="cpu")
    trainer = RerankerTrainer(duo, data, config, tmp_path / "run", difficulty=easiness)
    duo.model.eval()  # no dropout, as in the reference
    batch = trainer.batch(0)
    got = trainer.loss(batch, 0).detach().item()

    total = norm = 0.0
    for e in batch:
        for neg in ("d5", "d7"):  # both negatives are drawn (num_negatives = pool size), in pool order
            p_ab = duo_bert_p(dirs["duo"], e.query, TEXTS[e.positive], TEXTS[neg])
            p_ba = duo_bert_p(dirs["duo"], e.query, TEXTS[neg], TEXTS[e.positive])
            weight = (easiness[e.qid][e.positive] + easiness[e.qid][neg]) / 2  # step 0: the weight is D
            if loss == "pointwise":
                value = -(math.log(p_ab) + math.log(1 - p_ba)) / 2
            else:
                margin = teacher[e.qid][e.positive] - teacher[e.qid][neg]
                odds_ab, odds_ba = math.log(p_ab / (1 - p_ab)), math.log(p_ba / (1 - p_ba))
                value = ((odds_ab - margin) ** 2 + (odds_ba + margin) ** 2) / 2
            total += weight * value
            norm += 1
    assert got == pytest.approx(total / norm, rel=1e-4)


def test_preference_losses_skip_missing_negatives():
    fwd = torch.log(torch.tensor([[0.8, 0.6], [0.3, 0.5]], dtype=torch.float64))
    bwd = torch.log(torch.tensor([[0.1, 0.7], [0.4, 0.5]], dtype=torch.float64))
    valid = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)  # row 1 has one negative
    weights = torch.tensor([[1.0, 0.5, 1.0], [0.2, 0.4, 9.0]], dtype=torch.float64)
    pairs = [(0.8, 0.1, 0.75), (0.6, 0.7, 1.0), (0.3, 0.4, 0.3)]  # (p_ab, p_ba, weight) of the valid pairs
    # curriculum weights scale each pair's loss; the mean is over the valid pairs (not renormalised by Σw)
    want = sum(w * -(math.log(a) + math.log(1 - b)) / 2 for a, b, w in pairs) / len(pairs)
    assert PreferenceLoss()(fwd, bwd, valid, weights).item() == pytest.approx(want, rel=1e-9)
    teacher = torch.tensor([[2.0, 1.0, -1.0], [0.0, 0.5, 100.0]], dtype=torch.float64)
    margins = [1.0, 3.0, -0.5]

    def logit(p):
        return math.log(p / (1 - p))

    want = sum(
        w * ((logit(a) - m) ** 2 + (logit(b) + m) ** 2) / 2 for (a, b, w), m in zip(pairs, margins, strict=True)
    ) / len(pairs)
    assert PreferenceMarginMSELoss()(fwd, bwd, valid, weights, teacher).item() == pytest.approx(want, rel=1e-9)


# ------------------------------------------------------------------------------------ what applies to whom
def test_score_kinds_and_refused_losses(tmp_path, dirs):
    ce = CrossEncoder(dirs["ce"])
    ce2 = CrossEncoder(dirs["duo"])  # a two-class head
    mono, qlm = MonoT5(dirs["t5"], device="cpu"), QueryLikelihood(dirs["t5"], device="cpu")
    assert [score_kind(m) for m in (ce, ce2, mono, qlm)] == ["logit", "log_prob", "log_prob", "score"]

    class Declared:
        score_kind = "logit"

    assert score_kind(Declared()) == "logit"
    assert score_kind(object()) == "score"  # says nothing: claims nothing
    Declared.score_kind = "probability"
    with pytest.raises(ValueError, match="score_kind must be one of"):
        score_kind(Declared())

    with pytest.raises(ValueError, match="neither a relevance logit nor log p"):
        RerankerTrainer(qlm, toy_set(), CONFIG.replace(loss="pointwise"), tmp_path / "a")
    for loss in ("lce", "margin_mse", "pairwise"):
        check_loss(qlm, CONFIG.replace(loss=loss))  # the ranking losses apply
    duo = DuoCrossEncoder(dirs["duo"], device="cpu")
    for loss in ("lce", "pairwise"):
        with pytest.raises(ValueError, match=r"pairwise model.*loss='pointwise'.*loss='margin_mse'"):
            RerankerTrainer(duo, toy_set(), CONFIG.replace(loss=loss), tmp_path / "b")
    with pytest.raises(ValueError, match="num_negatives"):
        check_loss(duo, CONFIG.replace(loss="pointwise", num_negatives=0))
    # train_reranker refuses before building any index
    with pytest.raises(ValueError, match="pairwise model"):
        train_reranker(duo, toy_queries(), TASK_QRELS, toy_docs(), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_the_training_window_fits_every_family(dirs):
    config = RerankConfig(max_length=40, query_max_length=30)
    query = "where does the cat live " * 8
    doc = TEXTS["d0"] * 4
    models = {f: build(f, dirs) for f in FAMILY_LOSS} | {"cross-encoder": CrossEncoder(dirs["ce"])}
    for family, model in models.items():
        before = (model.max_length, model.query_max_length)
        view = _training_view(model, config)
        pairwise = family in ("duoBERT", "duoT5")
        assert view.model is model.model and (model.max_length, model.query_max_length) == before
        assert (view.max_length, view.query_max_length) == (40, 13 if pairwise else 20), family
        with pytest.warns(UserWarning, match="max_length"):
            if family == "cross-encoder":
                lengths = [len(x) for x in view.encode_pairs([query], [doc])["input_ids"]]
            elif family in ("monoT5", "duoT5"):
                lengths = [len(x) for x in view.encode_prompts([query], [(doc,) * (1 + pairwise)])]
            elif family == "duoBERT":
                lengths = [len(x) for x in view.encode_pairs([query], [doc], [doc])["input_ids"]]
            else:
                lengths = [len(x) for x, _ in view.encode([query], [doc])]  # encoder input / whole causal input
        assert lengths and max(lengths) <= 40, family
        scored = view.pair_scores([query], [doc], [doc]) if pairwise else view.pair_scores([query], [doc])
        assert scored.shape == (1,) and scored.requires_grad


def fresh_duo(directory, tmp_path):
    """The same encoder without its classification head: DuoCrossEncoder gives it a fresh one."""
    bare = tmp_path / "bare"
    transformers.BertModel.from_pretrained(directory).save_pretrained(bare)
    transformers.AutoTokenizer.from_pretrained(directory).save_pretrained(bare)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        duo = DuoCrossEncoder(bare, device="cpu")
    assert duo.fresh_head
    return duo


def test_only_a_fresh_classification_head_learns_at_the_head_rate(tmp_path, dirs):
    for model, loss, head in [
        (MonoT5(dirs["t5"], device="cpu"), "pointwise", set()),
        (QueryLikelihood(dirs["gpt2"], device="cpu"), "lce", set()),
        (DuoCrossEncoder(dirs["duo"], device="cpu"), "pointwise", set()),  # a trained head: one rate
        (fresh_duo(dirs["duo"], tmp_path), "pointwise", {"classifier.weight", "classifier.bias", "bert.pooler"}),
    ]:
        config = CONFIG.replace(loss=loss, head_learning_rate=1e-2)
        trainer = RerankerTrainer(model, toy_set(), config, tmp_path / type(model).__name__)
        names = {id(p): n for n, p in model.model.named_parameters()}
        scaled = {names[id(p)] for g in trainer.optimizer.param_groups if "lr_scale" in g for p in g["params"]}
        assert {".".join(n.split(".")[:2]) for n in scaled} == head
        assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(names)


def test_train_reranker_accepts_every_family_object(tmp_path, dirs):
    # a fixed first stage (each query's documents in a rotating order) spares the test BM25's compilation
    first = Fixed("first", [(f"q{i}", f"d{(i + j) % 12}", 12.0 - j) for i in range(12) for j in range(12)])
    duo = DuoT5(dirs["duo-t5"], device="cpu")
    final = train_reranker(
        duo, toy_queries(), TASK_QRELS, toy_docs(), tmp_path / "duo", first_stage=first,
        config=CONFIG.replace(loss="pointwise", epochs=1, negative_depth=4, curriculum="recip"),
    )
    assert DuoT5(final, device="cpu").aggregate == "sym-sum"
    pools = json.loads((final / "trainer_state.json").read_text())
    assert pools["examples"] == len(TASK_QRELS)
    qlm = QueryLikelihood(dirs["gpt2"], device="cpu")
    final = train_reranker(
        qlm, toy_queries(), TASK_QRELS, toy_docs(), tmp_path / "qlm", first_stage=first,
        config=CONFIG.replace(epochs=1, negative_depth=4, num_negatives=1),
    )
    assert json.loads((final / CONFIG_FILE).read_text())["model_family"] == "causal"


def test_generation_weight_adds_the_query_generation_loss_for_monot5(tmp_path, dirs):
    """GDMTL-style multitask training: the step's loss is the ranking loss plus the weighted doc -> query
    cross-entropy, computed here by hand with the model's own labels-loss; other families refuse the option."""
    from rankstack.train.examples import Example, TrainingSet
    from rankstack.train.rerank import RerankerTrainer

    texts = {d.docid: d.text for d in toy_docs()}
    data = TrainingSet([Example("q0", "where does the cat live", "d0")], texts, {"q0": frozenset({"d0"})},
                       negatives={"q0": ["d1", "d2"]})  # fmt: skip
    plain = RerankConfig(num_negatives=2, show_progress=False)
    mono = build("monoT5", dirs)
    multi = RerankerTrainer(mono, data, plain.replace(generation_weight=0.5), tmp_path / "a")
    single = RerankerTrainer(mono, data, plain, tmp_path / "b")
    examples = data.examples
    with torch.no_grad():
        mono.model.eval()
        combined = float(multi.loss(examples, 0))
        ranking = float(single.loss(examples, 0))
        tok = mono.tokenizer
        src = tok(["Document: " + texts["d0"]], return_tensors="pt", truncation=True, max_length=multi._view.max_length)
        labels = tok(["where does the cat live"], return_tensors="pt")["input_ids"]
        generation = float(mono.model(**src, labels=labels).loss)
    assert combined == pytest.approx(ranking + 0.5 * generation, rel=1e-5)
    with pytest.raises(ValueError, match="generation_weight applies"):
        RerankerTrainer(build("duoT5", dirs), data, plain.replace(generation_weight=0.5), tmp_path / "c")
