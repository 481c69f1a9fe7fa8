"""Robust04 BM25+RM3 (as shipped with capreolus 0.2.6): rankstack against ir_measures and published numbers."""

from __future__ import annotations

import pytest

from rankstack.eval import evaluate
from rankstack.types import Qrels, Ranking

# ir_measures 0.4 (pytrec_eval) on these two files; the run is Anserini's BM25+RM3 from Yang et al.,
# "Critically examining the neural hype", SIGIR 2019, whose reported MAP is 0.3033.
EXPECTED = {"AP": 0.3033, "nDCG@10": 0.4639, "P@20": 0.3974}


@pytest.mark.collection
def test_robust04_bm25_rm3_matches_ir_measures(robust04) -> None:
    ir_measures = pytest.importorskip("ir_measures")
    run_path, qrels_path = robust04
    got = evaluate(Ranking.read_trec(run_path), Qrels.read(qrels_path), list(EXPECTED))
    reference = ir_measures.calc_aggregate(
        [ir_measures.parse_measure(m) for m in EXPECTED],
        ir_measures.read_trec_qrels(str(qrels_path)),
        ir_measures.read_trec_run(str(run_path)),
    )
    for name, expected in EXPECTED.items():
        assert got[name] == pytest.approx(reference[ir_measures.parse_measure(name)], abs=1e-6), name
        assert round(got[name], 4) == expected, name
