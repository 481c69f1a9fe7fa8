"""Birch: the score formula by hand, the sentence-score matrix, and grid tuning that recovers known weights."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from rankstack.eval import evaluate
from rankstack.pipeline import Lambda
from rankstack.rerank.base import MissingDocumentsError, PointwiseReranker
from rankstack.rerank.birch import Birch
from rankstack.rerank.cross import CrossEncoder
from rankstack.train.tune import tune_birch
from rankstack.types import Corpus, Document, Qrels, Queries, Ranking
from tests.rerank.conftest import toy_docs, toy_qrels, toy_queries, toy_ranking
from tests.rerank.test_passages import WordOverlap

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


class Numbers(PointwiseReranker):
    """Scores a sentence by the last number written in it ("Item 2.5." scores 2.5; none: 0); records calls."""

    def __init__(self, docs=None, **kw):
        super().__init__(docs, **kw)
        self.calls: list[list[str]] = []

    @property
    def cache_key(self):
        return "numbers"

    def score_pairs(self, queries, docs):
        self.calls.append(list(docs))
        return np.array([float((re.findall(r"-?\d+(?:\.\d+)?", d) or ["0"])[-1]) for d in docs])


def _ranking(rows: list[tuple[str, str, float]]) -> Ranking:
    qids = list(dict.fromkeys(q for q, _, _ in rows))
    return Ranking(*zip(*rows, strict=True), queries=Queries(qids, [f"query {q}" for q in qids]))


DOCS = {
    "a": "Item 0.5. Item 2.0. Item 1.0. Item 0.25.",
    "b": "Item 3.0.",
    "c": "",
}


def test_formula_by_hand():
    scorer = Numbers()
    birch = Birch(scorer, DOCS, alpha=0.3, weights=(1.0, 0.5, 0.2))
    out = birch(_ranking([("1", "a", 10.0), ("1", "b", 4.0), ("1", "c", 1.0)]))
    got = dict(zip(out.docid.tolist(), out.score.tolist()))
    assert got["a"] == pytest.approx(0.3 * 10.0 + 0.7 * (2.0 + 0.5 * 1.0 + 0.2 * 0.5))
    assert got["b"] == pytest.approx(0.3 * 4.0 + 0.7 * 3.0)  # one sentence: the missing ones add nothing
    assert got["c"] == pytest.approx(0.3 * 1.0 + 0.7 * 0.0)  # an empty document is one empty sentence
    assert len(scorer.calls) == 1
    assert sorted(scorer.calls[0]) == sorted(["Item 0.5.", "Item 2.0.", "Item 1.0.", "Item 0.25.", "Item 3.0.", ""])


def test_sentence_scores_matrix_is_padded_and_cached():
    scorer = Numbers()
    birch = Birch(scorer, DOCS, top_n=2)
    ranking = _ranking([("1", "a", 3.0), ("1", "b", 2.0), ("2", "a", 1.0)])
    top = birch.sentence_scores(ranking)
    assert top.shape == (3, 2)
    np.testing.assert_array_equal(top[0], [2.0, 1.0])
    assert top[1, 0] == 3.0 and math.isnan(top[1, 1])
    np.testing.assert_array_equal(top[2], [2.0, 1.0])  # same document, another query text: scored again
    assert len(scorer.calls) == 1 and len(scorer.calls[0]) == 4 + 1 + 4
    birch(ranking)
    birch.with_params(alpha=0.9)(ranking)
    assert len(scorer.calls) == 1  # the stage and its copies read the cache
    wider = birch.with_params(weights=(1, 1, 1, 1, 1))
    assert wider.sentence_scores(ranking).shape == (3, 5) and len(scorer.calls) == 1


def test_minmax_normalisation_by_hand():
    birch = Birch(Numbers(), DOCS, top_n=2, alpha=0.5, weights=(1.0, 1.0), normalise="minmax")
    out = birch(_ranking([("1", "a", 10.0), ("1", "b", 4.0), ("1", "c", 2.0)]))
    got = dict(zip(out.docid.tolist(), out.score.tolist()))
    # first stage: 10, 4, 2 -> 1, 0.25, 0; sentences of the query: {2, 1, 3, 0} -> /3
    assert got["a"] == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3 + 1 / 3))
    assert got["b"] == pytest.approx(0.5 * 0.25 + 0.5 * 1.0)
    assert got["c"] == pytest.approx(0.0)


def test_title_is_a_sentence_of_its_own_by_default():
    docs = [Document("t", "Item 1.0. Item 2.0.", title="Headline 5.0")]
    scorer = Numbers()
    top = Birch(scorer, docs).sentence_scores(_ranking([("1", "t", 0.0)]))
    np.testing.assert_array_equal(top[0], [5.0, 2.0, 1.0])
    scorer = Numbers()
    Birch(scorer, docs, title="prepend").sentence_scores(_ranking([("1", "t", 0.0)]))
    assert scorer.calls[0] == ["Headline 5.0 Item 1.0.", "Headline 5.0 Item 2.0."]


@pytest.mark.parametrize("source", ["mapping", "corpus"])
def test_a_pipeline_stage_with_one_scorer_call(source):
    docs = {d.docid: d.contents() for d in toy_docs()} if source == "mapping" else Corpus.from_documents(toy_docs())
    scorer = WordOverlap()
    pipeline = Lambda(lambda q: toy_ranking(4), "first") >> Birch(scorer, docs, alpha=0.0, weights=(1, 0, 0))
    out = pipeline(toy_queries())
    assert len(out) == len(toy_ranking(4)) and len(scorer.calls) == 1
    assert out.cutoff(1).docid.tolist() == [f"d{i}" for i in range(len(toy_queries()))]


def test_missing_documents():
    docs = dict(DOCS)
    ranking = _ranking([("1", "a", 3.0), ("1", "zz", 2.0), ("1", "b", 1.0)])
    with pytest.raises(MissingDocumentsError, match="zz"):
        Birch(Numbers(), docs)(ranking)
    with pytest.raises(MissingDocumentsError, match="zz"):
        Birch(Numbers(), docs).sentence_scores(ranking)
    birch = Birch(Numbers(), docs, missing="keep")
    assert birch(ranking).docid.tolist() == ["a", "b", "zz"]
    assert np.isnan(birch.sentence_scores(ranking)[1]).all()


# ------------------------------------------------------------------------------------------------ tuning
def _tuning_case() -> tuple[Ranking, Qrels, dict[str, str]]:
    """Four queries, a relevant 'a…' and a non-relevant 'z…' document each (ties go to 'z…', as trec_eval
    orders ties by docid descending). With score = α·S + (1−α)·(s1 + w2·s2):
    q1: ΔS = 0, Δs1 = −0.65, Δs2 = +1  -> relevant first iff w2 > 0.65
    q2: ΔS = 0, Δs1 = +0.75, Δs2 = −1  -> iff w2 < 0.75
    q3: ΔS = +1, Δs1 = −1/3, Δs2 = 0   -> iff α > 0.25
    q4: ΔS = −1, Δs1 = +0.5385, Δs2 = 0 -> iff α < 0.35
    so P@1 = 1 at α = 0.3, w2 = 0.7 and nowhere else on the 0.1 grid."""
    docs = {
        "a1": "Item 2.0. Item 2.0.",
        "z1": "Item 2.65. Item 1.0.",
        "a2": "Item 2.75. Item 1.0.",
        "z2": "Item 2.0. Item 2.0.",
        "a3": "Item 1.0. Item 0.5.",
        "z3": "Item 1.3333. Item 0.5.",
        "a4": "Item 1.5385. Item 0.5.",
        "z4": "Item 1.0. Item 0.5.",
    }
    s = {"a1": 1.0, "z1": 1.0, "a2": 1.0, "z2": 1.0, "a3": 2.0, "z3": 1.0, "a4": 1.0, "z4": 2.0}
    ranking = _ranking([(f"q{i}", f"{p}{i}", s[f"{p}{i}"]) for i in range(1, 5) for p in "az"])
    qrels = Qrels([f"q{i}" for i in range(1, 5)], [f"a{i}" for i in range(1, 5)], [1] * 4)
    return ranking, qrels, docs


def test_tune_birch_recovers_the_known_best_weights():
    ranking, qrels, docs = _tuning_case()
    scorer = Numbers()
    result = tune_birch(Birch(scorer, docs, top_n=2), ranking, qrels, metric="P@1")
    assert (result.alpha, result.weights, result.value) == (0.3, (1.0, 0.7), 1.0)
    assert len(result.table["alpha"]) == 121 and list(result.table) == ["alpha", "w1", "w2", "P@1"]
    perfect = result.table["P@1"] == 1.0
    assert perfect.sum() == 1
    assert result.table["alpha"][perfect][0] == 0.3 and result.table["w2"][perfect][0] == 0.7
    assert len(scorer.calls) == 1  # the grid never calls the model
    tuned = result.birch
    assert (tuned.alpha, tuned.weights) == (0.3, (1.0, 0.7))
    assert evaluate(tuned(ranking), qrels, "P@1")["P@1"] == 1.0 and len(scorer.calls) == 1
    frame = result.to_pandas()
    assert frame.shape == (121, 4) and frame["P@1"].max() == 1.0


def test_tuning_table_matches_the_stage_including_missing_documents():
    docs = {d.docid: d.contents() for d in toy_docs()}
    del docs["d2"]
    birch = Birch(WordOverlap(), docs, missing="keep", normalise="minmax")
    ranking, qrels = toy_ranking(4), toy_qrels()
    result = tune_birch(birch, ranking, qrels, metric="AP", alpha_grid=[0.0, 0.5, 1.0], weight_grid=[0.0, 1.0])
    assert len(result.table["alpha"]) == 3 * 4
    for row in range(len(result.table["alpha"])):
        alpha = result.table["alpha"][row]
        weights = [result.table[f"w{i}"][row] for i in (1, 2, 3)]
        staged = evaluate(birch.with_params(alpha=alpha, weights=weights)(ranking), qrels, "AP")["AP"]
        assert result.table["AP"][row] == pytest.approx(staged, abs=1e-12)


def test_tune_birch_refuses_bad_grids_and_measures():
    ranking, qrels, docs = _tuning_case()
    birch = Birch(Numbers(), docs, top_n=2)
    with pytest.raises(ValueError, match="alpha_grid"):
        tune_birch(birch, ranking, qrels, alpha_grid=[1.5])
    with pytest.raises(ValueError, match="measure"):
        tune_birch(birch, ranking, qrels, metric="nope@3")


# ------------------------------------------------------------------------------------------------ a real model
def test_top_sentence_scores_of_a_tiny_cross_encoder_match_a_plain_loop(tiny_ce):
    ce = CrossEncoder(tiny_ce)
    texts = {d.docid: d.contents() for d in toy_docs()}
    ranking = toy_ranking(2).for_qids(["q0", "q1"])
    top = Birch(ce, texts).sentence_scores(ranking)
    query = toy_queries().to_dict()
    tok = transformers.AutoTokenizer.from_pretrained(tiny_ce)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_ce).eval()
    with torch.no_grad():
        for row, (q, d) in enumerate(zip(ranking.qid.tolist(), ranking.docid.tolist(), strict=True)):
            sentences = texts[d].split(". ")  # the toy texts have plain ". " boundaries
            sentences = [s if s.endswith(".") else s + "." for s in sentences]
            ref = sorted(float(model(**tok(query[q], s, return_tensors="pt")).logits[0, 0]) for s in sentences)[::-1]
            np.testing.assert_allclose(top[row], ref[:3], atol=1e-5)
