"""Re-ranker training on a tiny random cross-encoder: every loss learns, curricula weigh, resume is exact."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from rankstack.rerank import CrossEncoder
from rankstack.train import checkpoint
from rankstack.train.examples import TrainingSet, doc_texts
from rankstack.train.rerank import (
    RerankConfig,
    RerankerTrainer,
    curriculum_difficulty,
    first_stage_pools,
    teacher_scores,
    train_reranker,
)
from rankstack.train.trainer import TrainingStateError
from rankstack.types import Qrels, Ranking
from tests.helpers import Fixed, brute_force_bm25
from tests.rerank.conftest import make_tiny_cross_encoder, toy_docs, toy_qrels, toy_queries

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = RerankConfig(
    epochs=3,
    batch_size=4,
    learning_rate=2e-3,
    num_negatives=3,
    max_length=48,
    query_max_length=16,
    log_every=3,
    seed=3,
    show_progress=False,
)


@pytest.fixture()
def ce_dir(tmp_path):
    return make_tiny_cross_encoder(tmp_path / "ce")


# A task a tiny random cross-encoder learns in a few dozen steps: for every query the cat and dog documents
# (d0, d1) are the relevant ones. (Matching the query's animal to the document's needs attention learnt from
# scratch, which takes a tiny random model thousands of steps.) A loss with the wrong sign or target learns
# the opposite preference, so the test still tells a working loss from a broken one.
TASK_QRELS = Qrels(
    [f"q{i}" for i in range(12) for _ in range(2)], [d for _ in range(12) for d in ("d0", "d1")], [1] * 24
)


def toy_set() -> TrainingSet:
    data = TrainingSet.from_qrels(toy_queries(), TASK_QRELS, doc_texts(toy_docs()))
    docids = sorted(data.texts)
    return data.with_negatives({q: docids for q in data.positives})


def positive_rank_loss(ce: CrossEncoder) -> float:
    """Mean over queries of the softmax cross-entropy of the relevant documents against the whole toy corpus."""
    docs = toy_docs()
    total = 0.0
    for _, query in toy_queries():
        s = ce.score_pairs([query] * len(docs), [d.contents() for d in docs])
        log_z = float(np.log(np.exp(s - s.max()).sum()) + s.max())
        total += log_z - float(s[:2].mean())
    return total / len(toy_queries())


@pytest.mark.parametrize("loss", ["pointwise", "pairwise", "lce"])
@pytest.mark.parametrize("labels", [1, 2])
def test_every_loss_learns_the_toy_task(tmp_path, loss, labels):
    ce = CrossEncoder(make_tiny_cross_encoder(tmp_path / "m", num_labels=labels), cache=False)
    before = positive_rank_loss(ce)
    RerankerTrainer(ce, toy_set(), CONFIG.replace(loss=loss, epochs=6), tmp_path / "run").train()
    ce.model.eval()
    assert positive_rank_loss(ce) < before - 0.1


def test_margin_mse_follows_the_teacher_margins(tmp_path, ce_dir):
    data = toy_set()
    # a teacher that prefers each query's own document by a margin of 3
    data.teacher = {q: {d: (3.0 if d in data.positives[q] else 0.0) for d in data.texts} for q in data.positives}
    ce = CrossEncoder(ce_dir, cache=False)
    RerankerTrainer(ce, data, CONFIG.replace(loss="margin_mse", epochs=8), tmp_path / "run").train()
    ce.model.eval()
    docs = toy_docs()
    margins = []
    for _, query in toy_queries():
        s = ce.score_pairs([query] * len(docs), [d.contents() for d in docs])
        margins.append(s[:2].mean() - s[2:].mean())
    assert np.mean(margins) == pytest.approx(3.0, abs=1.0)


def test_margin_mse_without_a_teacher_is_refused(tmp_path, ce_dir):
    with pytest.raises(ValueError, match="teacher"):
        RerankerTrainer(CrossEncoder(ce_dir), toy_set(), CONFIG.replace(loss="margin_mse"), tmp_path)


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="loss must be one of"):
        RerankConfig(loss="listwise")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_negatives"):
        RerankConfig(loss="lce", num_negatives=0)
    with pytest.raises(ValueError, match="curriculum"):
        RerankConfig(curriculum="kde")  # type: ignore[arg-type]


def test_curriculum_weights_anneal_from_difficulty_to_one(tmp_path, ce_dir):
    run = Ranking(["q0"] * 4, ["d0", "d1", "d2", "d3"], [9.0, 5.0, 3.0, 1.0])
    recip = curriculum_difficulty(run, {"q0": frozenset({"d2"})}, "recip")
    # positive d2 at rank 3: 1/3; negatives d0 (rank 1): 1 - 1 = 0, d1: 1/2, d3: 3/4
    assert recip["q0"] == pytest.approx({"d0": 0.0, "d1": 0.5, "d2": 1 / 3, "d3": 0.75})
    norm = curriculum_difficulty(run, {"q0": frozenset({"d2"})}, "norm")
    assert norm["q0"] == pytest.approx({"d0": 0.0, "d1": 0.5, "d2": 0.25, "d3": 1.0})
    trainer = RerankerTrainer(
        CrossEncoder(ce_dir), toy_set(), CONFIG.replace(curriculum="recip", curriculum_ratio=0.5), tmp_path,
        difficulty=recip,
    )
    horizon = round(0.5 * trainer.total_steps)
    assert trainer.curriculum_weight("q0", "d2", True, 0) == pytest.approx(1 / 3)
    assert trainer.curriculum_weight("q0", "d2", True, horizon // 2) == pytest.approx(
        1 / 3 + (horizon // 2) / horizon * (2 / 3)
    )
    assert trainer.curriculum_weight("q0", "d2", True, horizon) == 1.0
    # documents the first stage never returned: an unretrieved positive is hard, an unretrieved negative easy
    assert trainer.curriculum_weight("q0", "d9", True, 0) == 0.0
    assert trainer.curriculum_weight("q0", "d9", False, 0) == 1.0
    with pytest.raises(ValueError, match="difficulties"):
        RerankerTrainer(CrossEncoder(ce_dir), toy_set(), CONFIG.replace(curriculum="recip"), tmp_path / "x")


def test_first_stage_pools_skip_positives_and_keep_order():
    run = Ranking(["q0"] * 4 + ["q1"], ["a", "b", "c", "d", "a"], [4, 3, 2, 1, 1])
    assert first_stage_pools(run, {"q0": frozenset({"b"})}, depth=2) == {"q0": ["a", "c"], "q1": ["a"]}


def test_teacher_scores_from_a_retriever_fill_unreturned_candidates_with_its_floor():
    teacher = Fixed("T", [("q0", "a", 5.0), ("q0", "b", 2.0)])
    got = teacher_scores(teacher, {"q0": "query"}, {"q0": ["b", "a", "z"]})
    assert got == {"q0": {"b": 2.0, "a": 5.0, "z": 2.0}}


def test_resume_repeats_the_uninterrupted_run_exactly(tmp_path, ce_dir):
    config = CONFIG.replace(epochs=2, save_every=2, keep_checkpoints=None)
    whole = CrossEncoder(ce_dir)
    RerankerTrainer(whole, toy_set(), config, tmp_path / "whole").train()
    part = CrossEncoder(ce_dir)
    trainer = RerankerTrainer(part, toy_set(), config, tmp_path / "part")
    # run the first 2 steps only (in training mode, as train() would), as a crash after the first checkpoint
    part.model.train()
    for step in range(2):
        trainer._optimise(step)
    trainer.step = 2
    checkpoint.save(tmp_path / "part" / "checkpoint-2", part, trainer._state(), trainer.data.negatives, trainer.optimizer)
    resumed = CrossEncoder(ce_dir)
    RerankerTrainer(resumed, toy_set(), config, tmp_path / "part").train(resume=True)
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    with pytest.raises(TrainingStateError):
        RerankerTrainer(CrossEncoder(ce_dir), toy_set(), config, tmp_path / "whole").train()


def test_train_reranker_end_to_end_loads_in_sentence_transformers(tmp_path, ce_dir):
    final = train_reranker(
        ce_dir, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "run",
        config=CONFIG.replace(epochs=1, negative_depth=5, curriculum="norm"),
    )
    assert (tmp_path / "run" / "bm25-index" / "manifest.json").exists()
    ours = CrossEncoder(final)
    st = pytest.importorskip("sentence_transformers")
    ref = st.CrossEncoder(str(final), activation_fn=torch.nn.Identity())
    pairs = [(q, d.contents()) for (_, q), d in zip(toy_queries(), toy_docs(), strict=True)]
    np.testing.assert_allclose(
        ours.score_pairs([p[0] for p in pairs], [p[1] for p in pairs]), ref.predict(pairs), atol=1e-5
    )


def test_max_examples_samples_examples_but_keeps_every_positive(tmp_path, ce_dir):
    ce = CrossEncoder(ce_dir)
    final = train_reranker(
        ce, toy_queries(), TASK_QRELS, toy_docs(), tmp_path / "run",
        config=CONFIG.replace(epochs=1, max_examples=5, negative_depth=12, save_every=1, keep_checkpoints=None),
    )
    assert json.loads((final / "trainer_state.json").read_text())["examples"] == 5
    pools = json.loads((tmp_path / "run" / "checkpoint-1" / "negatives.json").read_text())
    assert pools and all(p and not {"d0", "d1"} & set(p) for p in pools.values())
    with pytest.raises(ValueError, match="max_examples"):
        RerankConfig(max_examples=0)


def test_positive_depth_trains_only_on_positives_the_first_stage_retrieves(tmp_path, ce_dir):
    docs = toy_docs()
    queries = toy_queries().to_dict()
    top = {q: max(brute_force_bm25(docs, text).items(), key=lambda kv: kv[1])[0] for q, text in queries.items()}
    expected = {q for q, d in top.items() if d in ("d0", "d1")}  # every query judges d0 and d1 relevant
    assert expected == {"q0", "q1"}
    final = train_reranker(
        CrossEncoder(ce_dir), toy_queries(), TASK_QRELS, docs, tmp_path / "run",
        config=CONFIG.replace(epochs=1, batch_size=1, positive_depth=1, negative_depth=5, save_every=1,
                              keep_checkpoints=None),
    )
    assert json.loads((final / "trainer_state.json").read_text())["examples"] == len(expected)
    pools = json.loads((tmp_path / "run" / "checkpoint-1" / "negatives.json").read_text())
    assert set(pools) == expected and all(len(p) == 5 and not {"d0", "d1"} & set(p) for p in pools.values())
    with pytest.raises(ValueError, match="positive_depth"):
        RerankConfig(positive_depth=0)


def test_train_reranker_distils_any_stage(tmp_path, ce_dir):
    teacher = Fixed("T", [(f"q{i}", f"d{(i + j) % 12}", 10.0 - 9 * j) for i in range(12) for j in range(2)])
    final = train_reranker(
        ce_dir, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "run",
        config=CONFIG.replace(epochs=1, loss="margin_mse", negative_depth=4), teacher=teacher,
    )
    assert (final / "config.json").exists()
    with pytest.raises(ValueError, match="teacher"):
        train_reranker(ce_dir, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "x", teacher=teacher)


def test_curriculum_weights_scale_each_loss_down_and_lce_weighs_a_group_by_its_hardest_pair():
    from rankstack.train.losses import (
        LocalizedContrastiveLoss,
        PairwiseHingeLoss,
        PointwiseLoss,
        ScoreMarginMSELoss,
    )

    scores = torch.tensor([[2.0, 0.5, -1.0], [0.3, 1.2, 0.0]])
    valid = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    ones, halves = torch.ones(2, 3), torch.full((2, 3), 0.5)
    teacher = torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.5, 0.0]])
    for loss, extra in [
        (PointwiseLoss(), ()),
        (PairwiseHingeLoss(), ()),
        (LocalizedContrastiveLoss(), ()),
        (ScoreMarginMSELoss(), (teacher,)),
    ]:
        full = loss(scores, valid, ones, *extra)
        assert float(loss(scores, valid, halves, *extra)) == pytest.approx(float(full) / 2), type(loss).__name__
    # LCE: row 0's pairs weigh (1 + 0.2) / 2 and (1 + 0.8) / 2: the group weighs the smaller, 0.6
    weights = torch.tensor([[1.0, 0.2, 0.8], [1.0, 1.0, 1.0]])
    per_group = -scores.masked_fill(~valid.bool(), float("-inf")).log_softmax(-1)[:, 0]
    expected = (0.6 * per_group[0] + per_group[1]) / 2
    assert float(LocalizedContrastiveLoss()(scores, valid, weights)) == pytest.approx(float(expected))


def test_bf16_precision_runs_the_forward_under_autocast_and_still_learns(tmp_path):
    """precision="bf16": the model's matrix products run in bfloat16 while training (and only then), the weights
    stay float32, and the toy task is still learnt."""
    ce = CrossEncoder(make_tiny_cross_encoder(tmp_path / "m"), cache=False)
    seen: set[torch.dtype] = set()
    linear = next(m for m in ce.model.modules() if isinstance(m, torch.nn.Linear))
    hook = linear.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    before = positive_rank_loss(ce)
    assert seen == {torch.float32}  # scoring outside training is untouched
    seen.clear()
    trainer = RerankerTrainer(ce, toy_set(), CONFIG.replace(loss="lce", epochs=6, precision="bf16"), tmp_path / "run")
    trainer.train()
    hook.remove()
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in ce.model.parameters())
    assert all(h["loss"] == h["loss"] for h in trainer.log_history if "loss" in h)  # no NaN
    ce.model.eval()
    assert positive_rank_loss(ce) < before - 0.1
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["config"]["precision"] == "bf16"


def test_an_unknown_precision_is_refused_before_training(tmp_path, ce_dir):
    with pytest.raises(ValueError, match="precision must be one of"):
        RerankerTrainer(CrossEncoder(ce_dir), toy_set(), CONFIG.replace(precision="fp16"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_half_precision_weights_are_trained_in_float32_with_a_warning(tmp_path):
    """transformers loads a checkpoint in its stored dtype: an fp16 checkpoint would otherwise train in fp16."""
    path = make_tiny_cross_encoder(tmp_path / "m")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path)
    model.half().save_pretrained(path)
    ce = CrossEncoder(path, cache=False)
    assert next(ce.model.parameters()).dtype == torch.float16
    with pytest.warns(UserWarning, match="torch.float16 weights: training casts them to float32"):
        trainer = RerankerTrainer(ce, toy_set(), CONFIG.replace(epochs=1), tmp_path / "run")
    assert all(p.dtype == torch.float32 for p in ce.model.parameters())
    trainer.train()


def _attention_dropouts(model) -> set[float]:
    """BERT self-attention layers own the query projection; their ``dropout`` acts on attention probabilities."""
    found = {m.dropout.p for m in model.modules() if isinstance(getattr(m, "query", None), torch.nn.Linear)}
    assert found, "no BERT self-attention layer found"
    return found


def test_attention_dropout_holds_while_training_and_the_model_keeps_its_own_after(tmp_path, ce_dir):
    ce = CrossEncoder(ce_dir, cache=False)
    assert _attention_dropouts(ce.model) == {0.1}
    seen: set[float] = set()
    attention = next(m for m in ce.model.modules() if isinstance(getattr(m, "query", None), torch.nn.Linear))
    hook = attention.register_forward_hook(lambda m, _i, _o: seen.add(m.dropout.p) if m.training else None)
    RerankerTrainer(ce, toy_set(), CONFIG.replace(epochs=1, attention_dropout=0.3), tmp_path / "run").train()
    hook.remove()
    assert seen == {0.3}
    assert _attention_dropouts(ce.model) == {0.1}
    saved = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert saved["attention_probs_dropout_prob"] == 0.1


def test_attention_dropout_zero_trains_exactly_as_a_model_configured_without_it(tmp_path, ce_dir):
    """Setting it for training is the same as a model whose config has no attention dropout: same losses, weights."""
    plain = tmp_path / "plain"
    shutil.copytree(ce_dir, plain)
    config = json.loads((plain / "config.json").read_text())
    (plain / "config.json").write_text(json.dumps({**config, "attention_probs_dropout_prob": 0.0}))
    runs = {}
    for name, path, dropout in (("set", ce_dir, 0.0), ("configured", plain, None)):
        ce = CrossEncoder(path, cache=False)
        trainer = RerankerTrainer(ce, toy_set(), CONFIG.replace(epochs=2, attention_dropout=dropout), tmp_path / name)
        trainer.train()
        runs[name] = ([h["loss"] for h in trainer.log_history], [p.detach().clone() for p in ce.model.parameters()])
    assert runs["set"][0] == runs["configured"][0]
    assert all(torch.equal(a, b) for a, b in zip(runs["set"][1], runs["configured"][1], strict=True))


def test_attention_dropout_out_of_range_is_refused_before_training(tmp_path, ce_dir):
    with pytest.raises(ValueError, match="attention_dropout must be in"):
        RerankerTrainer(CrossEncoder(ce_dir), toy_set(), CONFIG.replace(attention_dropout=1.0), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_attention_dropout_sets_t5_distilbert_gpt2_and_torch_attention_but_not_hidden_dropout():
    """Each family keeps its attention dropout in its own place (T5: a float on T5Attention; DistilBERT: q_lin's
    layer; GPT-2: attn_dropout); the hidden-state dropouts beside them (T5LayerSelfAttention.dropout, GPT-2's
    resid_dropout) stay, and everything is restored on exit."""
    from rankstack.train.trainer import _attention_dropout

    t5 = transformers.T5ForConditionalGeneration(transformers.T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32,
                                                                       num_layers=1, num_heads=2, dropout_rate=0.1))  # fmt: skip
    distil = transformers.DistilBertModel(transformers.DistilBertConfig(vocab_size=64, dim=16, hidden_dim=32, n_layers=1,
                                                                        n_heads=2, attention_dropout=0.1))  # fmt: skip
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2,
                                                                attn_pdrop=0.1, resid_pdrop=0.1))  # fmt: skip
    mha = torch.nn.MultiheadAttention(8, 2, dropout=0.2)
    models = [t5, distil, gpt2, mha]

    def attention(model):
        return [m.dropout for m in model.modules() if type(m).__name__ == "T5Attention"] + \
            [m.dropout.p for m in model.modules() if hasattr(m, "q_lin")] + \
            [m.attn_dropout.p for m in model.modules() if hasattr(m, "attn_dropout")]  # fmt: skip

    def hidden():
        return [m.p for model in models for m in model.modules() if isinstance(m, torch.nn.Dropout)
                and m not in {a.attn_dropout for a in gpt2.modules() if hasattr(a, "attn_dropout")}
                and m not in {a.dropout for a in distil.modules() if hasattr(a, "q_lin")}]  # fmt: skip

    before = hidden()
    assert 0.1 in before
    with _attention_dropout(models, 0.0):
        assert all(set(attention(model)) == {0.0} for model in (t5, distil, gpt2)) and mha.dropout == 0.0
        assert hidden() == before
    assert all(set(attention(model)) == {0.1} for model in (t5, distil, gpt2)) and mha.dropout == 0.2
    with pytest.warns(UserWarning, match="no attention layer"), _attention_dropout([torch.nn.Linear(2, 2)], 0.0):
        pass


def test_a_run_resumes_only_with_the_attention_dropout_and_precision_it_started_with(tmp_path, ce_dir):
    config = CONFIG.replace(epochs=1, save_every=1, attention_dropout=0.0)
    ce = CrossEncoder(ce_dir, cache=False)
    trainer = RerankerTrainer(ce, toy_set(), config, tmp_path / "run")
    ce.model.train()  # one step, then a checkpoint, as a run interrupted after it would leave
    trainer._optimise(0)
    trainer.step = 1
    checkpoint.save(tmp_path / "run" / "checkpoint-1", ce, trainer._state(), trainer.data.negatives, trainer.optimizer)
    for changed in ({"attention_dropout": None}, {"precision": "bf16"}):
        again = RerankerTrainer(CrossEncoder(ce_dir, cache=False), toy_set(), config.replace(**changed), tmp_path / "run")
        with pytest.raises(TrainingStateError, match=f"trained with {next(iter(changed))}="):
            again.train(resume=True)
    RerankerTrainer(CrossEncoder(ce_dir, cache=False), toy_set(), config, tmp_path / "run").train(resume=True)
