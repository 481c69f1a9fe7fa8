import pytest

from rankstack import Ranking
from rankstack.fusion import combmnz, combsum, normalize, rrf
from rankstack.pipeline import RRF, Cutoff, Lambda, ScoreSum, Then, Weighted
from tests.helpers import A, B, Q


def test_operators_build_the_right_structure_and_repr():
    p = A % 2 >> B
    assert isinstance(p, Then) and isinstance(p.stages[0], Cutoff)
    assert repr(p) == "(A % 2) >> B"
    assert repr(A | B) == "(A | B)"
    assert repr(A * 0.3 + B * 0.7) == "(A * 0.3 + B * 0.7)"
    assert repr((A >> B) % 5) == "((A >> B) % 5)"
    assert isinstance(A | B | A, RRF) and len((A | B | A).branches) == 3
    assert isinstance(A * 2, Weighted) and isinstance(A + B, ScoreSum)


def test_cutoff_is_pushed_into_the_retriever_and_results_agree():
    p = (A % 2) >> Lambda(lambda r: r, "id")
    compiled = p.compile()
    assert repr(compiled) == "A[k=2] >> Lambda(id)"
    assert compiled(Q) == p(Q)
    assert p(Q).docid.tolist() == ["a", "b"]


def test_rrf_matches_the_formula():
    out = (A | B)(Q).to_dict()["1"]
    assert out["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert out["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert out["d"] == pytest.approx(1 / 63)
    weighted = (A * 2 | B)(Q).to_dict()["1"]
    assert weighted["b"] == pytest.approx(2 / 62)


def test_weighted_score_sum_uses_minmax_per_query():
    out = (A * 0.3 + B * 0.7)(Q).to_dict()["1"]
    # A minmax: a=1, b=.5, c=0; B minmax: c=1, a=.5, d=0
    assert out["a"] == pytest.approx(0.3 * 1 + 0.7 * 0.5)
    assert out["c"] == pytest.approx(0.0 + 0.7 * 1)
    assert out["b"] == pytest.approx(0.3 * 0.5)


def test_fusion_functions():
    ra, rb = A(Q), B(Q)
    assert rrf([ra, rb]).docid.tolist()[0] == "a"
    s = combsum([ra, rb]).to_dict()["1"]
    m = combmnz([ra, rb]).to_dict()["1"]
    assert m["a"] == pytest.approx(2 * s["a"]) and m["d"] == pytest.approx(s["d"])
    z = normalize(rb, "zscore").score
    assert z.mean() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="2 weights for 1"):
        rrf([ra], weights=[1, 2])


def test_ranking_input_without_queries_is_a_clear_error():
    from rankstack.pipeline import as_queries

    with pytest.raises(ValueError, match="needs query texts"):
        as_queries(Ranking(["1"], ["a"], [1.0]))
