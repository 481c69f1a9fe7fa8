"""Every metric against ir_measures (pytrec_eval inside) on many random runs, to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.eval import evaluate
from rankstack.types import Qrels, Ranking
from tests.eval._reference import (
    MEASURES,
    TIE_SENSITIVE,
    ir_measures_per_query,
    random_case,
    tie_free,
    to_qrels,
    to_ranking,
)

pytest.importorskip("ir_measures")


def _compare(run: dict, qrels: dict, names: list[str]) -> None:
    import ir_measures

    expected = ir_measures_per_query(run, qrels, names)
    got = evaluate(to_ranking(run), to_qrels(qrels), names, per_query=True)
    got_map = {(q, m): v for q, m, v in got.itertuples(index=False)}
    assert set(got_map) == set(expected)
    for key, value in expected.items():
        assert got_map[key] == pytest.approx(value, abs=1e-6), key
    means = evaluate(to_ranking(run), to_qrels(qrels), names)
    agg = ir_measures.calc_aggregate([ir_measures.parse_measure(n) for n in names], qrels, run)
    for m, value in agg.items():
        assert means[str(m)] == pytest.approx(value, abs=1e-6), m


@pytest.mark.parametrize("seed", range(300))
def test_random_runs_match_ir_measures(seed: int) -> None:
    run, qrels = random_case(np.random.default_rng(seed))
    _compare(run, qrels, MEASURES + TIE_SENSITIVE)
    _compare(tie_free(run), qrels, TIE_SENSITIVE)


def test_ties_are_broken_by_docid_descending_like_trec_eval() -> None:
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    qrels = {"q": {"b": 1, "a": 0}}
    expected = ir_measures_per_query(run, qrels, ["RR", "AP"])
    got = evaluate(to_ranking(run), to_qrels(qrels), ["RR", "AP"])
    assert got["RR"] == pytest.approx(expected[("q", "RR")]) == pytest.approx(1 / 2)  # c, b, a
    assert got["AP"] == pytest.approx(expected[("q", "AP")])


def test_rank_column_is_ignored_scores_decide() -> None:
    run = Ranking(["q", "q"], ["a", "b"], [1.0, 2.0], rank=[1, 2], presorted=True)
    qrels = Qrels(["q"], ["b"], [1])
    assert evaluate(run, qrels, ["RR"])["RR"] == 1.0


def test_empty_run_scores_zero_like_ir_measures() -> None:
    import ir_measures

    qrels = {"q1": {"a": 1, "b": 0}, "q2": {"c": 2}}
    got = evaluate(Ranking.empty(), to_qrels(qrels), MEASURES)
    agg = ir_measures.calc_aggregate([ir_measures.parse_measure(n) for n in MEASURES], qrels, {})
    assert {str(k): v for k, v in agg.items()} == pytest.approx(got)
    assert set(got.values()) == {0.0}


def test_missing_queries_count_as_zero_and_unjudged_run_queries_are_ignored() -> None:
    run = {"q1": {"a": 2.0}, "extra": {"a": 1.0}}
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    got = evaluate(to_ranking(run), to_qrels(qrels), ["P@1", "AP"], per_query=True)
    assert sorted(got.qid.unique()) == ["q1", "q2"]
    assert evaluate(to_ranking(run), to_qrels(qrels), ["P@1"])["P@1"] == pytest.approx(0.5)


def test_duplicate_documents_in_run_are_rejected() -> None:
    run = Ranking(["q", "q"], ["a", "a"], [2.0, 1.0])
    with pytest.raises(ValueError, match="more than once"):
        evaluate(run, Qrels(["q"], ["a"], [1]), ["AP"])


def test_unsorted_rows_give_the_same_numbers() -> None:
    rng = np.random.default_rng(7)
    run, qrels = random_case(rng)
    ranking = to_ranking(run)
    perm = rng.permutation(len(ranking))
    shuffled = Ranking(ranking.qid[perm], ranking.docid[perm], ranking.score[perm], ranking.rank[perm], presorted=True)
    assert evaluate(shuffled, to_qrels(qrels), MEASURES) == evaluate(ranking, to_qrels(qrels), MEASURES)
