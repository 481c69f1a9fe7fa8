"""Index build speed and memory: rankstack (one and two analysis processes) against bm25s, in one run.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_build.py                 # writes results/build.md
    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_build.py --zipf-docs 100000 --rounds 1

Each build runs in a fresh process (``bench_bm25.build_worker``: warm-up on a tiny corpus, baseline RSS,
build from the streamed ``corpus.jsonl.gz``, peak RSS = the process's ``VmHWM``; *polled* peak sums the
process tree every 20 ms, so it counts the analysis processes of a two-thread build too). The tools take
turns within a round; the report gives the median build time over the rounds. bm25s builds as its
README does (tokenize with English stopwords and PyStemmer, then index, method "lucene"); saving its
index is not counted, while rankstack's time includes writing its index (and, by default, its document
store) to disk. *kernels started*: the warm-up also runs one search, as in any process that has searched
already; rankstack then analyses through its compiled scan from the first document, where a fresh process
(plain ``rankstack`` rows) keeps the Python path for the first 16 million characters (SciFact and NFCorpus
are smaller), since starting numba there costs more than the scan saves on them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_info, markdown_table, mib
from bench_bm25 import DATA, REPO, generate_synthetic, measure_build

TOOLS = [
    "rankstack",
    "rankstack (threads=2)",
    "rankstack (store_docs=False)",
    "rankstack (kernels started)",
    "rankstack (kernels started, threads=2)",
    "rankstack (kernels started, store_docs=False)",
    "bm25s",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zipf-docs", type=int, default=1_000_000)
    ap.add_argument("--zipf-vocab", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3, help="rounds on SciFact and NFCorpus")
    ap.add_argument("--zipf-rounds", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/rankstack-bench-build"))
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "build.md")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    zipf = args.workdir / f"zipf-{args.zipf_docs}-{args.zipf_vocab}-0.jsonl.gz"
    generate_synthetic(zipf, args.zipf_docs, args.zipf_vocab, 0)
    corpora = [
        ("scifact", DATA / "scifact" / "corpus.jsonl.gz", args.rounds),
        ("nfcorpus", DATA / "nfcorpus" / "corpus.jsonl.gz", args.rounds),
        (f"zipf-{args.zipf_docs // 1000}k", zipf, args.zipf_rounds),
    ]
    results: dict[tuple[str, str], list[dict]] = {}
    started = time.time()
    for name, path, rounds in corpora:
        for r in range(rounds):
            for tool in TOOLS:
                out = args.workdir / f"{name}-{tool.replace(' ', '_')}"
                res = measure_build(tool, path, out)
                results.setdefault((name, tool), []).append(res)
                print(
                    f"{name} round {r + 1} {tool}: {res['build_s']:.2f}s peak {mib(res['peak_rss'])} MiB",
                    file=sys.stderr,
                )
    rows = []
    for name, _, _ in corpora:
        ref = statistics.median(r["build_s"] for r in results[(name, "bm25s")])
        ref_peak = max(r["peak_rss"] for r in results[(name, "bm25s")])
        one = statistics.median(r["build_s"] for r in results[(name, "rankstack")])
        for tool in TOOLS:
            runs = results[(name, tool)]
            t = statistics.median(r["build_s"] for r in runs)
            peak = max(r["peak_rss"] for r in runs)
            polled = max((r.get("polled_peak_rss") or 0) for r in runs)
            rows.append(
                [
                    name,
                    tool,
                    f"{runs[0]['num_docs']:,}",
                    f"{t:.2f}",
                    " ".join(f"{r['build_s']:.2f}" for r in runs),
                    f"{t / ref:.2f}",
                    f"{one / t:.2f}" if tool.startswith("rankstack") else "",
                    mib(peak),
                    mib(statistics.median(r["peak_rss"] - r["baseline_rss"] for r in runs)),
                    mib(polled),
                    f"{peak / ref_peak:.2f}",
                ]
            )
    info = machine_info()
    lines = [
        "# Index build: rankstack vs bm25s",
        "",
        "Command: `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_build.py "
        + " ".join(sys.argv[1:])
        + "`",
        "",
        f"rankstack {git_revision(REPO)}; {info['cpu']}, {info['cores available']} cores, {info['vector instructions']}; "
        f"{time.strftime('%Y-%m-%d')}; {time.time() - started:.0f}s in all.",
        "",
        (__doc__ or "").split("\n\n", 2)[2].strip(),
        "",
        markdown_table(
            [
                "corpus",
                "tool",
                "documents",
                "build s (median)",
                "rounds",
                "time / bm25s",
                "speed-up vs 1 thread",
                "peak RSS MiB",
                "peak − baseline MiB",
                "polled tree peak MiB",
                "peak / bm25s peak",
            ],
            rows,
        ),
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
