import pytest

from rankstack import Queries, Ranking
from rankstack.fusion import combmnz, combsum, normalize, rrf
from rankstack.pipeline import RRF, Cutoff, Lambda, ScoreSum, Stage, Then, Weighted


class Fixed(Stage):
    """Returns a fixed ranking; records the k it was asked for (to check cut-off push-down)."""

    def __init__(self, name, rows, k=1000):
        self.name, self.rows, self.k = name, rows, k

    def __call__(self, inp):
        r = Ranking([q for q, _, _ in self.rows], [d for _, d, _ in self.rows], [s for _, _, s in self.rows])
        return r.cutoff(self.k)

    def with_cutoff(self, k):
        return Fixed(self.name, self.rows, min(k, self.k))

    def __repr__(self):
        return self.name if self.k == 1000 else f"{self.name}[k={self.k}]"


A = Fixed("A", [("1", "a", 3.0), ("1", "b", 2.0), ("1", "c", 1.0)])
B = Fixed("B", [("1", "c", 30.0), ("1", "a", 20.0), ("1", "d", 10.0)])
Q = Queries(["1"], ["q"])


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
