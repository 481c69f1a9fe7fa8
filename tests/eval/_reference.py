"""Random runs and qrels built to hit trec_eval's corner cases, and ir_measures as the reference."""

from __future__ import annotations

import numpy as np

from rankstack.types import Qrels, Ranking

MEASURES = [
    "AP", "AP@5", "AP(rel=2)", "nDCG", "nDCG@1", "nDCG@5", "nDCG@10",
    "P@1", "P@5", "P@20", "P(rel=2)@5", "R@5", "R@20", "R(rel=2)@10",
    "RR", "RR(rel=2)", "Bpref", "Bpref(rel=2)", "Success@1", "Success@5", "Success(rel=2)@3",
]  # fmt: skip
# ir_measures sends these to providers that break score ties by docid *ascending* (msmarco RR@k, Judged),
# unlike trec_eval's descending order; rankstack follows each provider, so they are compared with ties too.
TIE_SENSITIVE = ["RR@1", "RR@5", "RR(rel=2)@10", "Judged@1", "Judged@5", "Judged@20"]


def random_case(rng: np.random.Generator) -> tuple[dict, dict]:
    """A run and qrels as ``{qid: {docid: value}}`` with ties, graded and negative labels, unjudged docs,
    run queries without judgments, judged queries without results, and queries with nothing relevant."""
    n_queries = int(rng.integers(1, 8))
    pool = [f"d{i}" for i in range(int(rng.integers(1, 40)))] + ["D", "a", "Z9", "d01", "é"]
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    tie_heavy = rng.random() < 0.5
    for q in range(n_queries):
        qid = f"q{q}"
        kind = rng.random()
        if kind > 0.15:  # judged query
            judged = rng.choice(pool, size=int(rng.integers(1, len(pool) + 1)), replace=False)
            labels = rng.choice([-1, 0, 0, 1, 1, 2, 3], size=len(judged))
            if rng.random() < 0.15:
                labels = np.zeros(len(judged), dtype=int)  # nothing relevant
            qrels[qid] = {str(d): int(r) for d, r in zip(judged, labels)}
        if kind < 0.9:  # retrieved query
            docs = rng.choice(pool, size=int(rng.integers(1, len(pool) + 1)), replace=False)
            if tie_heavy:
                scores = rng.integers(0, 4, size=len(docs)).astype(float)
            else:
                scores = np.round(rng.normal(size=len(docs)), 2)
            run[qid] = {str(d): float(s) for d, s in zip(docs, scores)}
    if not qrels:
        qrels["q0"] = {"d0": 1}
    return run, qrels


def to_ranking(run: dict) -> Ranking:
    return Ranking.from_dict(run) if run else Ranking.empty()


def to_qrels(qrels: dict) -> Qrels:
    return Qrels.from_dict(qrels)


def tie_free(run: dict) -> dict:
    """Same ranking under trec_eval's order (score desc, docid desc), with all scores distinct."""
    out = {}
    for qid, docs in run.items():
        ordered = sorted(docs.items(), key=lambda x: (x[1], x[0]), reverse=True)
        out[qid] = {d: float(len(ordered) - i) for i, (d, _) in enumerate(ordered)}
    return out


def ir_measures_per_query(run: dict, qrels: dict, names: list[str]) -> dict[tuple[str, str], float]:
    import ir_measures

    measures = [ir_measures.parse_measure(n) for n in names]
    by_str = {str(m): n for m, n in zip(measures, names)}
    return {(m.query_id, by_str[str(m.measure)]): m.value for m in ir_measures.iter_calc(measures, qrels, run)}
