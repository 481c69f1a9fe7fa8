"""BM25 effectiveness on every text collection in ../shared/data, against Pyserini's numbers (PEERS.md).

Usage::

    .venv/bin/python benchmarks/bench_effectiveness.py        # writes benchmarks/results/effectiveness.md

For each collection with a Pyserini row in ``PEERS.md``: index with the default analyser, run BM25
(k1=0.9, b=0.4, top 1000, document = title + " " + text) on the ``test`` queries, and score the run with
rankstack's metrics and, as a cross-check, with ir_measures. Also BM25+RM3 for reference.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index, git_revision, machine_info, markdown_table, versions

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
METRICS = ["nDCG@10", "AP@1000", "R@100", "RR@10", "P@10"]
TARGETS = {"scifact": 0.005, "nfcorpus": 0.005}  # issue #2: nDCG@10 within 0.005 of Pyserini


def peer_numbers(peers_md: Path) -> dict[tuple[str, str], dict[str, float]]:
    """``{(collection, peer): {metric: value}}`` from the markdown table in PEERS.md."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    header: list[str] | None = None
    for line in peers_md.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not line.startswith("|"):
            header = None if not line.startswith("|") else header
            continue
        if cells[0] == "collection":
            header = cells
        elif header and not re.fullmatch(r"-+", cells[0]):
            rows[(cells[0], cells[1])] = {m: float(v) for m, v in zip(header[2:], cells[2:], strict=True)}
    return rows


def evaluate_collection(name: str, workdir: Path) -> dict[str, dict[str, float]]:
    import ir_measures

    from rankstack.data import load_collection
    from rankstack.eval import evaluate
    from rankstack.sparse import RM3

    col = load_collection(DATA / name)
    path = workdir / name
    idx = bm25_index(col.corpus, path, show_progress=True)
    queries, qrels = col.queries_for("test"), col.qrels("test")
    bm25 = idx.bm25(k1=0.9, b=0.4, k=1000)
    out = {}
    for system, stage in (("BM25", bm25), ("BM25+RM3", RM3(bm25))):
        run = stage(queries)
        ours = evaluate(run, qrels, METRICS)
        ref = ir_measures.calc_aggregate(
            [ir_measures.parse_measure(m) for m in METRICS],
            qrels.to_dict(),
            run.to_dict(),
        )
        for m in METRICS:
            diff = abs(ours[m] - ref[ir_measures.parse_measure(m)])
            if diff > 1e-6:
                raise AssertionError(f"{name} {system} {m}: rankstack {ours[m]} vs ir_measures, diff {diff}")
        out[system] = {m: float(ours[m]) for m in METRICS}
        out[system]["queries"] = len(set(run.qid.tolist()) & set(qrels.qid.tolist()))
    out["BM25"]["documents"] = idx.num_docs
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-effectiveness")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "effectiveness.md")
    parser.add_argument("collections", nargs="*", help="default: every collection with a Pyserini row in PEERS.md")
    args = parser.parse_args(argv)
    peers = peer_numbers(DATA / "PEERS.md")
    names = args.collections or sorted({c for c, p in peers if p == "pyserini"})
    started = time.time()
    results = {}
    for name in names:
        t0 = time.perf_counter()
        results[name] = evaluate_collection(name, args.workdir)
        print(f"{name}: nDCG@10 {results[name]['BM25']['nDCG@10']:.4f} ({time.perf_counter() - t0:.1f}s)", flush=True)

    rows, rm3_rows, misses = [], [], []
    for name in names:
        ours, ref = results[name]["BM25"], peers.get((name, "pyserini"), {})
        delta = ours["nDCG@10"] - ref.get("nDCG@10", float("nan"))
        target = TARGETS.get(name)
        verdict = "" if target is None else ("✅ within 0.005" if abs(delta) <= target else "❌ outside 0.005")
        if target is not None and abs(delta) > target:
            misses.append(name)
        rows.append(
            [name, f"{ours['documents']:,}", ours["queries"]]
            + [f"{ours[m]:.4f} ({ref[m]:.4f})" if m in ref else f"{ours[m]:.4f}" for m in METRICS]
            + [f"{delta:+.4f}", verdict]
        )
        rm3 = results[name]["BM25+RM3"]
        rm3_rows.append([name] + [f"{rm3[m]:.4f} ({rm3[m] - ours[m]:+.4f})" for m in METRICS])

    cmd = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_effectiveness.py"
    report = [
        "# BM25 effectiveness: rankstack vs Pyserini on every text collection",
        "",
        f"Generated by `{cmd}` on {time.strftime('%Y-%m-%d %H:%M %Z')} in {(time.time() - started) / 60:.1f} "
        f"minutes. rankstack revision: {git_revision(REPO)}.",
        "",
        'BM25 k1=0.9, b=0.4, top 1000, document = title + " " + text, default analyser (rankstack\'s equivalent '
        "of Lucene's EnglishAnalyzer: UAX#29-like tokens, possessive removal, Lucene's 33 stopwords, Porter). "
        "Test queries and `qrels/test.tsv` of each collection; metrics by rankstack.eval, each checked equal "
        "to ir_measures to 1e-6 in the same run. In brackets: Pyserini 0.22.1 from `../shared/data/PEERS.md`.",
        "",
        markdown_table(["collection", "documents", "queries", *METRICS, "Δ nDCG@10", "target"], rows),
        "",
        "## BM25 + RM3 (fb_docs 10, fb_terms 10, original query weight 0.5; in brackets the change over BM25)",
        "",
        markdown_table(["collection", *METRICS], rm3_rows),
        "",
        "## Machine and versions",
        "",
        markdown_table(["", ""], [*machine_info().items(), *versions(["rankstack", "ir_measures", "numba"]).items()]),
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(report))
    print(f"wrote {args.output}")
    if misses:
        sys.exit(f"target missed on: {', '.join(misses)}")


if __name__ == "__main__":
    main()
