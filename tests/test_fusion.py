"""Fusion equals ranx's on real runs, and ``Fuse`` brings every method and normalisation to the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack import Queries, Ranking
from rankstack.fusion import combmnz, fuse, rrf
from rankstack.pipeline import RRF, Fuse, ScoreSum
from tests.helpers import A, B, Fixed, Q

C = Fixed("C", [("1", "b", 5.0), ("1", "e", 4.0)])


def _as_dict(r: Ranking) -> dict[str, dict[str, float]]:
    return {q: dict(d) for q, d in r.to_dict().items()}


def test_fuse_with_defaults_is_the_or_operator_and_combsum_minmax_is_plus():
    assert _as_dict(Fuse(A, B)(Q)) == _as_dict((A | B)(Q))
    weighted = Fuse(A * 0.3, B * 0.7, method="combsum")(Q)
    assert _as_dict(weighted) == _as_dict((A * 0.3 + B * 0.7)(Q))


def test_fuse_methods_and_norms_reach_the_functions():
    ra, rb, rc = A(Q), B(Q), C(Q)
    got = Fuse(A, B * 2, C, method="combmnz", norm="zscore")(Q)
    assert _as_dict(got) == _as_dict(combmnz([ra, rb, rc], weights=[1, 2, 1], norm="zscore"))
    got = Fuse(A, B, method="rrf", k=10)(Q)
    assert _as_dict(got) == _as_dict(rrf([ra, rb], k=10))
    got = Fuse(A, B, method="combsum", norm="none")(Q)
    assert got.to_dict()["1"]["a"] == pytest.approx(3.0 + 20.0)


def test_fuse_repr_is_the_code_and_compile_keeps_the_options():
    p = Fuse(A % 2, (A >> B) * 0.5, method="combmnz", norm="zscore")
    assert repr(p) == "Fuse((A % 2), (A >> B) * 0.5, method='combmnz', norm='zscore')"
    assert _as_dict(eval(repr(p), {"Fuse": Fuse, "A": A, "B": B})(Q)) == _as_dict(p(Q))
    assert repr(Fuse(A, B, k=10)) == "Fuse(A, B, method='rrf', k=10)"
    compiled = p.compile()
    assert repr(compiled) == "Fuse(A[k=2], (A >> B) * 0.5, method='combmnz', norm='zscore')"
    assert _as_dict(compiled(Q)) == _as_dict(p(Q))


def test_nested_fuse_stays_nested_but_operators_flatten():
    inner = Fuse(A, B, method="combmnz")
    outer = Fuse(inner, C, method="combmnz")
    assert len(outer.branches) == 2 and outer.branches[0][0] is inner
    assert len((A | B | C).branches) == 3 and isinstance(A | B | C, RRF)
    assert isinstance(A + B + C, ScoreSum) and len((A + B + C).branches) == 3


def test_fuse_composes_with_the_other_operators():
    p = Fuse(A, B, method="combsum") % 2
    assert p(Q).docid.tolist() == ["a", "c"]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"method": "borda"}, "unknown fusion method"), ({"norm": "l2"}, "unknown normalisation")]
)
def test_unknown_options_say_what_exists(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Fuse(A, B, **kwargs)
    with pytest.raises(ValueError, match=match):
        fuse([A(Q), B(Q)], **kwargs)


def test_queries_missing_from_one_ranking_keep_the_others():
    q = Queries(["1", "2"], ["x", "y"])
    only_2 = Fixed("D", [("2", "z", 1.0)])
    out = Fuse(A, only_2 * 0.5, method="combmnz")(q).to_dict()
    assert out["2"] == {"z": pytest.approx(0.5 * 1.0)}  # min-max of one document is 1, found by one ranking
    assert out["1"] == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})


# ---- against ranx, on real SciFact runs (BM25 and BM25+RM3, top 100 of 300 test queries)


@pytest.fixture(scope="module")
def scifact_runs(shared_data, tmp_path_factory):
    from rankstack.data import load_collection
    from rankstack.index import build_inverted_index
    from rankstack.sparse import RM3

    col = load_collection(shared_data / "scifact")
    index = build_inverted_index(col.corpus, tmp_path_factory.mktemp("scifact") / "bm25", show_progress=False)
    queries = col.queries_for("test")
    bm25 = index.bm25(k=100)
    return bm25(queries), RM3(bm25)(queries)


def _ranx_run(r: Ranking, by_rank: bool = False):
    """A ranx Run of ``r``; ``by_rank`` scores by -rank so ranx's own sort agrees with ours on ties."""
    from ranx import Run

    value = -r.rank.astype(np.float64) if by_rank else r.score.astype(np.float64)
    out: dict[str, dict[str, float]] = {}
    for q, d, v in zip(r.qid.tolist(), r.docid.tolist(), value.tolist(), strict=True):
        out.setdefault(q, {})[d] = v
    return Run.from_dict(out)


def _assert_same(ours: Ranking, theirs) -> None:
    want = theirs.to_dict()
    got = ours.to_dict()
    assert got.keys() == want.keys()
    for q in want:
        assert got[q].keys() == want[q].keys(), q
        docs = list(want[q])
        np.testing.assert_allclose([got[q][d] for d in docs], [want[q][d] for d in docs], rtol=1e-9, atol=1e-12)


@pytest.mark.collection
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaTypeSafetyWarning")  # inside ranx's own rrf
@pytest.mark.parametrize(
    ("method", "norm", "weights", "ranx_norm", "ranx_method"),
    [
        ("rrf", "none", None, None, "rrf"),
        ("combsum", "minmax", None, "min-max", "sum"),
        ("combsum", "minmax", [0.3, 0.7], "min-max", "wsum"),
        ("combsum", "zscore", None, "zmuv", "sum"),
        ("combsum", "zscore", [0.8, 0.2], "zmuv", "wsum"),
        ("combmnz", "minmax", None, "min-max", "mnz"),
        ("combmnz", "zscore", None, "zmuv", "mnz"),
    ],
)
def test_fusion_equals_ranx_on_scifact(scifact_runs, method, norm, weights, ranx_norm, ranx_method):
    ranx = pytest.importorskip("ranx")
    bm25, rm3 = scifact_runs
    by_rank = method == "rrf"
    params = {"weights": weights} if weights else {}
    theirs = ranx.fuse(
        [_ranx_run(bm25, by_rank), _ranx_run(rm3, by_rank)], norm=ranx_norm, method=ranx_method, params=params
    )
    _assert_same(fuse([bm25, rm3], method, weights=weights, norm=norm), theirs)
