"""Batch throughput on every collection in ../shared/data: rankstack against bm25s, side by side in one run.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_throughput.py        # writes results/throughput.md

For each collection with test queries, both tools index it (k1=0.9, b=0.4, title + " " + text) and answer all
its test queries as one batch at k=10 and k=1000, in the configurations of ``bench_bm25.py`` (rankstack
exhaustive and MaxScore, bm25s numpy and numba; one thread and all cores), taking turns, ``--repeats`` rounds;
the median. The ratio compares rankstack's default with the fastest bm25s configuration at the same thread
count. Short-passage collections with few queries are where a fixed per-batch cost shows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_info, markdown_table
from bench_bm25 import DATA, REPO, beir_test_queries, bm25s_build, bm25s_save, rankstack_build, throughput


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-throughput")
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "throughput.md")
    args = ap.parse_args()
    names = sorted(
        p.name for p in DATA.iterdir() if (p / "qrels" / "test.tsv").exists() and (p / "corpus.jsonl.gz").exists()
    )
    started = time.time()
    rows = []
    for name in names:
        qids, texts, _ = beir_test_queries(name)
        if not qids:
            continue
        corpus = DATA / name / "corpus.jsonl.gz"
        ours = args.workdir / f"{name}-rankstack"
        theirs = args.workdir / f"{name}-bm25s"
        index = rankstack_build(corpus, ours)
        if index.stats.num_tokens == 0:  # an image collection (coco-mini-captions): no text to search
            print(f"{name}: no text in the corpus, skipped", file=sys.stderr)
            continue
        retriever, docids = bm25s_build(corpus)
        bm25s_save(retriever, docids, theirs)
        print(f"{name}: {len(qids)} queries, {index.num_docs:,} documents", file=sys.stderr)
        results = throughput(
            index, theirs, qids, texts, [10, 1000], args.repeats, None, log=lambda m: print(m, file=sys.stderr)
        )
        for k in (10, 1000):
            by = {r["system"]: r["qps"] for r in results if r["k"] == k}
            one = by["rankstack (default), 1 thread"]
            many = next(v for s, v in by.items() if s.startswith("rankstack (default)") and "1 thread" not in s)
            peer_one = max(v for s, v in by.items() if s.startswith("bm25s") and "1 thread" in s)
            peer_many = max(v for s, v in by.items() if s.startswith("bm25s") and "1 thread" not in s)
            rows.append(
                [
                    name,
                    f"{index.num_docs:,}",
                    len(qids),
                    k,
                    f"{one:,.0f}",
                    f"{peer_one:,.0f}",
                    f"{one / peer_one:.2f}",
                    f"{many:,.0f}",
                    f"{peer_many:,.0f}",
                    f"{many / peer_many:.2f}",
                ]
            )
    info = machine_info()
    lines = [
        "# Batch throughput on every shared collection: rankstack vs bm25s",
        "",
        "Command: `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_throughput.py "
        + " ".join(sys.argv[1:])
        + "`",
        "",
        f"rankstack {git_revision(REPO)}; {info['cpu']}, {info['cores available']} cores, {info['vector instructions']}; "
        f"{time.strftime('%Y-%m-%d')}; {time.time() - started:.0f}s in all. Queries per second, all test queries in one "
        "batch; 'best bm25s' is the faster of its numpy and numba backends.",
        "",
        markdown_table(
            [
                "collection",
                "documents",
                "queries",
                "k",
                "rankstack 1 thread",
                "best bm25s 1 thread",
                "ratio",
                "rankstack all cores",
                "best bm25s all cores",
                "ratio",
            ],
            rows,
        ),
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
