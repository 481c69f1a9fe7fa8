"""The cascade transformer on a tiny random BERT: exits against the model's own hidden states, the cascade's
drops against a simulation over every exit's logits, checkpoints and joint training."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.rerank import CascadeCrossEncoder, CrossEncoder, load_reranker
from tests.rerank.conftest import make_tiny_cross_encoder, tiny_bert_config, toy_docs, toy_qrels, toy_queries

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory):
    """A 4-layer one-logit BertForSequenceClassification (exits 1, 2, 4 by default)."""
    from tests.rerank.conftest import minilm_path

    path = tmp_path_factory.mktemp("cascade") / "ce"
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(tiny_bert_config(tokenizer.vocab_size, num_hidden_layers=4,
                                                                num_labels=1)).save_pretrained(path)  # fmt: skip
    tokenizer.save_pretrained(path)
    return path


PAIRS = (["where does the cat live"] * 6,
         ["the cat lives near the river", "a dog", "the owl of the forest", "cats and rivers", "fish", "the cat"])  # fmt: skip


def test_every_exit_reads_the_cls_state_of_its_layer_and_the_last_is_the_cross_encoder(tiny4):
    cascade = CascadeCrossEncoder(tiny4)
    assert cascade.exits == [1, 2, 4]
    feats = cascade.features(*PAIRS)
    with torch.no_grad():
        got = cascade.exit_logits(feats).numpy()
        hidden = cascade.hf(**feats, output_hidden_states=True).hidden_states
        for j, layer in enumerate(cascade.exits[:-1]):
            want = cascade.model["exits"][j](hidden[layer][:, 0])[:, 0].numpy()
            np.testing.assert_allclose(got[:, j], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[:, -1], CrossEncoder(tiny4).score_pairs(*PAIRS), rtol=1e-5, atol=1e-6)


def _ranking(n):
    from rankstack.types import Queries, Ranking

    return Ranking(["q"] * n, [f"d{i}" for i in range(n)], np.arange(n, 0, -1.0), queries=Queries(["q"], [PAIRS[0][0]]))


def test_the_cascade_drops_the_lowest_at_each_exit(tiny4):
    docs = {f"d{i}": t for i, t in enumerate(PAIRS[1])}
    cascade = CascadeCrossEncoder(tiny4, docs=docs, keep=0.5)
    out = cascade(_ranking(6))
    assert cascade.last_counts.tolist() == [6, 3, 2]
    with torch.no_grad():
        logits = cascade.exit_logits(cascade.features(*PAIRS)).numpy()
    alive, want = list(range(6)), {}
    for stage in range(3):  # the simulation: every exit's logit of every pair is known up front here
        for i in alive:
            want[i] = stage + 1 / (1 + np.exp(-logits[i, stage]))
        alive = sorted(sorted(alive, key=lambda i: -logits[i, stage])[: int(np.ceil(0.5 * len(alive)))])
    got = dict(zip(out.docid.tolist(), out.score.tolist(), strict=True))
    for i in range(6):
        assert got[f"d{i}"] == pytest.approx(want[i], rel=1e-5)


@pytest.mark.parametrize("protect", [1, 2, 6])
def test_protected_candidates_reach_the_full_model(tiny4, protect):
    """The first stage's top ``protect`` (d0, d1, ...: ``_ranking`` ranks them in docid order) go on at every exit
    besides the ``keep`` fraction chosen by the exit's logits."""
    docs = {f"d{i}": t for i, t in enumerate(PAIRS[1])}
    cascade = CascadeCrossEncoder(tiny4, docs=docs, keep=0.34, protect=protect)
    out = cascade(_ranking(6))
    with torch.no_grad():
        logits = cascade.exit_logits(cascade.features(*PAIRS)).numpy()
    alive, want, counts = list(range(6)), {}, []
    for stage in range(3):
        counts.append(len(alive))
        for i in alive:
            want[i] = stage + 1 / (1 + np.exp(-logits[i, stage]))
        best = sorted(alive, key=lambda i: -logits[i, stage])[: int(np.ceil(0.34 * len(alive)))]
        alive = sorted(set(best) | {i for i in alive if i < protect})
    assert cascade.last_counts.tolist() == counts
    assert all(want[i] > 2 for i in range(protect))  # every protected candidate was scored by the last exit
    got = dict(zip(out.docid.tolist(), out.score.tolist(), strict=True))
    for i in range(6):
        assert got[f"d{i}"] == pytest.approx(want[i], rel=1e-5)


def test_keep_one_ranks_as_the_full_cross_encoder(tiny4):
    docs = {f"d{i}": t for i, t in enumerate(PAIRS[1])}
    full = CascadeCrossEncoder(tiny4, docs=docs, keep=1.0)(_ranking(6))
    plain = CrossEncoder(tiny4, docs=docs)(_ranking(6))
    assert full.docid.tolist() == plain.docid.tolist()
    np.testing.assert_allclose(full.score, 2 + 1 / (1 + np.exp(-plain.score)), rtol=1e-5)


def test_saved_cascades_load_here_and_as_plain_cross_encoders(tmp_path, tiny4):
    cascade = CascadeCrossEncoder(tiny4, exits=[2, 4], keep=0.3, protect=5)
    saved = cascade.save(tmp_path / "c")
    again = load_reranker(saved)
    assert isinstance(again, CascadeCrossEncoder) and again.exits == [2, 4] and (again.keep, again.protect) == (0.3, 5)
    assert CascadeCrossEncoder(saved, protect=0).protect == 0
    with torch.no_grad():
        np.testing.assert_allclose(again.exit_logits(again.features(*PAIRS)).numpy(),
                                   cascade.exit_logits(cascade.features(*PAIRS)).numpy(), rtol=1e-6)  # fmt: skip
    sentence_transformers = pytest.importorskip("sentence_transformers")
    st = sentence_transformers.CrossEncoder(str(saved), activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(st.predict(list(zip(*PAIRS, strict=True))), cascade.score_pairs(*PAIRS), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="trained with exits"):
        CascadeCrossEncoder(saved, exits=[1, 4])
    with pytest.raises(ValueError, match="exits must be"):
        CascadeCrossEncoder(tiny4, exits=[2, 3])
    with pytest.raises(ValueError, match="keep must be"):
        CascadeCrossEncoder(tiny4, keep=0)
    with pytest.raises(ValueError, match="protect must be"):
        CascadeCrossEncoder(tiny4, protect=-1)


def test_two_class_heads_are_refused(tmp_path):
    from rankstack.models.model_dir import ModelDirectoryError

    with pytest.raises(ModelDirectoryError, match="one logit"):
        CascadeCrossEncoder(make_tiny_cross_encoder(tmp_path / "two", num_labels=2))


def test_all_exits_train_jointly(tmp_path, tiny4):
    from rankstack.train import RerankConfig, train_reranker

    start = CascadeCrossEncoder(tiny4)
    before = [p.detach().clone() for p in start.model["exits"].parameters()]
    config = RerankConfig(epochs=1, batch_size=4, num_negatives=2, negative_depth=4, max_length=48, show_progress=False)
    final = train_reranker(start, toy_queries(), toy_qrels(), toy_docs(), tmp_path / "out", config=config)
    trained = CascadeCrossEncoder(final)
    after = list(trained.model["exits"].parameters())
    assert all(not torch.equal(a.detach(), b) for a, b in zip(after, before, strict=True))
    assert not torch.equal(trained.hf.classifier.weight, CascadeCrossEncoder(tiny4).hf.classifier.weight)


def test_only_new_parts_train_at_the_head_rate(tmp_path, tiny4):
    """A trained cross-encoder turned cascade: only the exits are fresh; a bare encoder: its head is fresh too."""
    from rankstack.train import RerankConfig
    from rankstack.train.examples import Example, TrainingSet
    from rankstack.train.rerank import RerankerTrainer
    from tests.rerank.conftest import make_tiny_bert_encoder

    trained = CascadeCrossEncoder(tiny4)
    assert {id(p) for p in trained.fresh_parameters()} == {id(p) for p in trained.model["exits"].parameters()}
    bare = CascadeCrossEncoder(make_tiny_bert_encoder(tmp_path / "bare"))
    assert {id(p) for p in bare.hf.classifier.parameters()} <= {id(p) for p in bare.fresh_parameters()}
    data = TrainingSet([Example("q", "cat", "d0")], {"d0": "the cat"}, {"q": frozenset({"d0"})})
    trainer = RerankerTrainer(trained, data, RerankConfig(show_progress=False), tmp_path / "o")
    fast = [g for g in trainer.optimizer.param_groups if g.get("lr_scale", 1.0) != 1.0]
    assert {id(p) for g in fast for p in g["params"]} == {id(p) for p in trained.model["exits"].parameters()}
