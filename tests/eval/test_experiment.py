from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rankstack.errors import MissingExtraError
from rankstack.eval import (
    Experiment,
    evaluate,
    holm,
    plot_per_query_delta,
    recall_at_depth,
    write_experiment_plots,
)
from rankstack.pipeline import Stage
from rankstack.types import Qrels, Queries, Ranking

QIDS = [f"q{i}" for i in range(12)]
DOCS = [f"d{i}" for i in range(30)]
METRICS = ["AP", "nDCG@10", "P@5"]


class Noisy(Stage):
    """Ranks the judged documents with controllable noise: lower noise, better ranking."""

    def __init__(self, noise: float, seed: int = 0):
        self.noise, self.seed = noise, seed

    def __call__(self, inp):
        rng = np.random.default_rng(self.seed)
        q, d, s = [], [], []
        for qid in inp.qid:
            for i, doc in enumerate(DOCS):
                q.append(qid)
                d.append(doc)
                s.append(-i + rng.normal(0, self.noise))
        return Ranking(q, d, s)


@pytest.fixture
def setting():
    rng = np.random.default_rng(0)
    queries = Queries(QIDS, [f"text {q}" for q in QIDS])
    q, d, r = [], [], []
    for qid in QIDS:
        for i, doc in enumerate(DOCS):
            if rng.random() < 0.6:
                q.append(qid)
                d.append(doc)
                r.append(int(i < 8) * int(rng.integers(1, 3)))
    return queries, Qrels(q, d, r)


def test_table_shape_names_and_means(setting) -> None:
    queries, qrels = setting
    systems = {"good": Noisy(1.0), "bad": Noisy(20.0), "worse": Noisy(40.0, seed=2)}
    table = Experiment(systems, queries, qrels, METRICS)
    assert list(table.columns) == ["name", *METRICS]
    assert list(table.name) == ["good", "bad", "worse"]
    for row, stage in zip(table.itertuples(index=False), systems.values()):
        expected = evaluate(stage(queries), qrels, METRICS)
        assert [row[1], row[2], row[3]] == pytest.approx([expected[m] for m in METRICS])


def test_default_names_are_reprs_and_rankings_are_accepted(setting) -> None:
    queries, qrels = setting
    ranking = Noisy(5.0)(queries)
    table = Experiment([Noisy(1.0), ranking], queries, qrels, ["AP"])
    assert list(table.name) == ["Noisy(noise=1.0)", "ranking_1"]
    named = Experiment([Noisy(1.0), ranking], queries, qrels, ["AP"], names=["a", "b"])
    assert list(named.name) == ["a", "b"]


def test_baseline_columns_match_scipy_and_holm(setting) -> None:
    queries, qrels = setting
    systems = [Noisy(1.0), Noisy(20.0), Noisy(40.0, seed=2)]
    table, per_query = Experiment(systems, queries, qrels, METRICS, baseline=1, names=["a", "b", "c"], per_query=True)
    assert set(per_query.columns) == {"name", "qid", "measure", "value"}
    assert len(per_query) == 3 * len(METRICS) * len(QIDS)
    for m in METRICS:
        for col in (f"{m} +", f"{m} -", f"{m} p-value", f"{m} p-value (holm)"):
            assert col in table.columns
        wide = per_query[per_query.measure == m].pivot(index="qid", columns="name", values="value")
        base_row = table.iloc[1]
        assert np.isnan(base_row[f"{m} p-value"])
        raw = []
        for i, name in ((0, "a"), (2, "c")):
            p = stats.ttest_rel(wide[name], wide["b"]).pvalue
            raw.append(p)
            assert table.iloc[i][f"{m} p-value"] == pytest.approx(p)
            assert table.iloc[i][f"{m} +"] == (wide[name] > wide["b"]).sum()
            assert table.iloc[i][f"{m} -"] == (wide[name] < wide["b"]).sum()
        # two comparisons: smaller p doubled, larger one kept unless below the doubled one
        lo, hi = sorted(raw)
        by_hand = {lo: min(1.0, 2 * lo), hi: min(1.0, max(2 * lo, hi))}
        assert [table.iloc[0][f"{m} p-value (holm)"], table.iloc[2][f"{m} p-value (holm)"]] == pytest.approx(
            [by_hand[raw[0]], by_hand[raw[1]]]
        )
        assert list(holm(raw)) == pytest.approx([by_hand[raw[0]], by_hand[raw[1]]])


def test_baseline_by_name_and_permutation_test(setting) -> None:
    queries, qrels = setting
    systems = {"a": Noisy(1.0), "b": Noisy(30.0)}
    t1 = Experiment(systems, queries, qrels, ["AP"], baseline="b", test="permutation", n_resamples=2000, seed=1)
    t2 = Experiment(systems, queries, qrels, ["AP"], baseline="b", test="permutation", n_resamples=2000, seed=1)
    pd.testing.assert_frame_equal(t1, t2)
    assert 0 < t1.loc[0, "AP p-value"] <= 1
    with pytest.raises(ValueError, match="baseline"):
        Experiment(systems, queries, qrels, ["AP"], baseline="zzz")


def test_qrels_are_restricted_to_the_queries_run(setting) -> None:
    queries, qrels = setting
    subset = queries.subset(QIDS[:4])
    _, per_query = Experiment([Noisy(1.0)], subset, qrels, ["AP"], per_query=True)
    assert set(per_query.qid) == set(QIDS[:4])


def test_stages_need_queries(setting) -> None:
    _, qrels = setting
    with pytest.raises(ValueError, match="queries"):
        Experiment([Noisy(1.0)], None, qrels, ["AP"])


def test_plot_per_query_delta(setting, monkeypatch) -> None:
    queries, qrels = setting
    _, per_query = Experiment({"a": Noisy(1.0), "b": Noisy(30.0)}, queries, qrels, ["AP"], per_query=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        with pytest.raises(MissingExtraError):
            plot_per_query_delta(per_query, "a", "b", "AP")
        return
    ax = plot_per_query_delta(per_query, "a", "b", "AP")
    assert len(ax.patches) == len(QIDS)
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(MissingExtraError, match=r"rankstack\[plot\]"):
        plot_per_query_delta(per_query, "a", "b", "AP")


def test_recall_at_depth_equals_recall_at_each_cutoff(setting) -> None:
    queries, qrels = setting
    runs = {"good": Noisy(1.0)(queries), "bad": Noisy(30.0)(queries)}
    curves = recall_at_depth(runs, qrels, depths=[20, 1, 5, 5])
    assert list(curves.columns) == ["name", "depth", "recall"]
    assert curves.depth.tolist() == [1, 5, 20, 1, 5, 20]  # sorted, deduplicated, per system
    for name, run in runs.items():
        for d in (1, 5, 20):
            got = curves[(curves.name == name) & (curves.depth == d)].recall.item()
            assert got == pytest.approx(evaluate(run, qrels, [f"R@{d}"])[f"R@{d}"])
    mine = curves[curves.name == "good"].recall.to_numpy()
    assert (np.diff(mine) >= 0).all()  # recall never falls with depth
    with pytest.raises(ValueError, match="positive"):
        recall_at_depth(runs, qrels, depths=[0, 10])


def test_recall_at_depth_counts_unanswered_queries_as_zero(setting) -> None:
    queries, qrels = setting
    half = Noisy(0.0)(queries.subset(QIDS[:6]))
    curves = recall_at_depth({"half": half}, qrels, depths=[1000])
    assert curves.recall.item() == pytest.approx(0.5)


def test_write_experiment_plots(setting, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    queries, qrels = setting
    runs = {"BM25": Noisy(30.0)(queries), "BM25 + RM3": Noisy(1.0)(queries), "a/b": Noisy(5.0)(queries)}
    written = write_experiment_plots(runs, qrels, tmp_path / "plots", "AP")
    names = sorted(p.name for p in written)
    assert names == ["delta-AP-BM25_+_RM3.png", "delta-AP-a_b.png", "recall-at-depth.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="baseline"):
        write_experiment_plots(runs, qrels, tmp_path / "plots", "AP", baseline="nope")
