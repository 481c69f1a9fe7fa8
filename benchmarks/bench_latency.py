"""What a user meets first: a fresh process answering one query, and one query at a time in a warm one.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_latency.py      # writes results/latency.md

1. **Cold start.** Whole processes, timed from outside, taking turns: ``rankstack search INDEX --query Q -k 10``
   against a Python process that loads a saved bm25s index (mmap) and answers the same query (numpy and
   numba backends), ``--rounds`` rounds each, median and spread. Then the first-ever compile: a fresh
   process searching every SciFact test query at once (the compiled batch path) with an empty numba cache
   directory (``NUMBA_CACHE_DIR``), against the same with the cache filled.
2. **One query per call** in a warm process, one thread: for each test query in turn, rankstack's stage on
   a ``Queries`` of that one query (a ``Ranking`` with docids out) and bm25s' tokenize + retrieve of it
   (docids out), taking turns query by query; median and p99 per call, at k=10 and k=100. Also calls of
   8 queries (the largest batch that stays on the calling thread).

Every tool uses k1=0.9, b=0.4, document = title + " " + text, as in ``bench_bm25.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_info, markdown_table, versions
from bench_bm25 import DATA, K1, REPO, B, beir_test_queries, bm25s_build, bm25s_load, bm25s_save, rankstack_build

COLLECTIONS = ["scifact", "trec-dl-2019-passage-subset"]
PY = sys.executable
RANKSTACK = str(Path(sys.executable).parent / "rankstack")

BM25S_ONE_QUERY = """
import json, sys
import bm25s, numpy as np, Stemmer
r = bm25s.BM25.load(sys.argv[1], backend=sys.argv[2], mmap=True, show_progress=False)
ids = np.asarray(json.loads(open(sys.argv[1] + "/docids.json").read()), dtype=object)
tokens = bm25s.tokenize([sys.argv[3]], stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
docs, scores = r.retrieve(tokens, corpus=ids, k=10, show_progress=False)
for d, s in zip(docs[0], scores[0]):
    print(d, s)
"""

FIRST_BATCH = """
import sys, time
t0 = time.perf_counter()
from rankstack.index import open_index
from rankstack.data import load_collection
col = load_collection(sys.argv[2])
index = open_index(sys.argv[1])
queries = col.queries_for("test")
index.bm25(k=10)(queries)
print(time.perf_counter() - t0)
"""


def prepare(name: str, work: Path) -> tuple[Path, Path]:
    """The rankstack and bm25s indexes of a collection, built once in ``work``."""
    ours, theirs = work / name / "rankstack", work / name / "bm25s"
    corpus = DATA / name / "corpus.jsonl.gz"
    if not (ours / "manifest.json").exists():
        rankstack_build(corpus, ours)
    if not (theirs / "docids.json").exists():
        retriever, docids = bm25s_build(corpus)
        bm25s_save(retriever, docids, theirs)
    return ours, theirs


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def cold_start(work: Path, rounds: int, query: str) -> tuple[list[list[str]], list[list[str]]]:
    ours, theirs = prepare("scifact", work)
    commands = {
        "rankstack search (CLI)": [RANKSTACK, "search", str(ours), "--query", query, "-k", "10"],
        "bm25s, numpy backend": [PY, "-c", BM25S_ONE_QUERY, str(theirs), "numpy", query],
        "bm25s, numba backend": [PY, "-c", BM25S_ONE_QUERY, str(theirs), "numba", query],
        "python -c 'import numpy' (floor)": [PY, "-c", "import numpy"],
    }
    for cmd in commands.values():  # the first run after a build fills OS and numba caches
        timed(cmd)
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
    ref = statistics.median(times["bm25s, numpy backend"])
    rows = [
        [name, f"{statistics.median(t):.3f}", f"{min(t):.3f}–{max(t):.3f}", f"{statistics.median(t) / ref:.2f}"]
        for name, t in times.items()
    ]
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "NUMBA_CACHE_DIR": empty}
        cmd = [PY, "-c", FIRST_BATCH, str(ours), str(DATA / "scifact")]
        first = timed(cmd, env)
        again = timed(cmd, env)
    compile_rows = [
        ["first process ever (empty numba cache: compiles)", f"{first:.2f}"],
        ["the next process (kernels loaded from the cache)", f"{again:.2f}"],
    ]
    for row in rows + compile_rows:
        print(row, flush=True)
    return rows, compile_rows


def one_query(work: Path, name: str, k: int, per_call: int, max_queries: int) -> list[list[str]]:
    import bm25s
    import numba
    import Stemmer

    from rankstack.index import open_index
    from rankstack.types import Queries

    ours, theirs = prepare(name, work)
    qids, texts, _ = beir_test_queries(name)
    qids, texts = qids[:max_queries], texts[:max_queries]
    index = open_index(ours)
    stage = index.bm25(k1=K1, b=B, k=k, num_threads=1)
    numba.set_num_threads(1)
    stemmer = Stemmer.Stemmer("english")
    calls = [(qids[i : i + per_call], texts[i : i + per_call]) for i in range(0, len(qids), per_call)]
    peers = {backend: bm25s_load(theirs, backend) for backend in ("numpy", "numba")}

    def ours_fn(q, t):
        return stage(Queries(q, t))

    def theirs_fn(backend):
        retriever, docids = peers[backend]
        kk = min(k, len(docids))

        def run(q, t):
            tokens = bm25s.tokenize(t, stopwords="en", stemmer=stemmer, show_progress=False)
            return retriever.retrieve(tokens, corpus=docids, k=kk, n_threads=1, show_progress=False)

        return run

    tools = {"rankstack": ours_fn, "bm25s numpy": theirs_fn("numpy"), "bm25s numba": theirs_fn("numba")}
    for fn in tools.values():  # warm-up: numba JIT, caches, and rankstack's switch to compiled kernels
        for q, t in calls[:40]:
            fn(q, t)
    times: dict[str, list[float]] = {k: [] for k in tools}
    for _ in range(3):
        for q, t in calls:
            for tool, fn in tools.items():
                t0 = time.perf_counter()
                fn(q, t)
                times[tool].append(time.perf_counter() - t0)
    best_peer = min(statistics.median(times["bm25s numpy"]), statistics.median(times["bm25s numba"]))
    rows = []
    for tool, t in times.items():
        us = np.asarray(t) * 1e6
        rows.append([
            name, k, per_call, tool, f"{np.median(us):.0f}", f"{np.percentile(us, 99):.0f}",
            f"{np.median(us) / (best_peer * 1e6):.2f}",
        ])  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-latency")
    parser.add_argument("--rounds", type=int, default=7, help="fresh processes per tool in the cold-start table")
    parser.add_argument("--max-queries", type=int, default=300)
    parser.add_argument("--query", default="vitamin D and bone density")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "latency.md")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    cold, compile_rows = cold_start(args.workdir, args.rounds, args.query)
    warm = []
    for name in COLLECTIONS:
        for k in (10, 100):
            for per_call in (1, 8):
                warm += one_query(args.workdir, name, k, per_call, args.max_queries)
    lines = [
        "# Cold start and one query at a time: rankstack vs bm25s",
        "",
        f"Generated by `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_latency.py "
        f"{' '.join(sys.argv[1:])}` on {started}; rankstack revision {git_revision(REPO)}. What each part "
        "measures is in the script's docstring.",
        "",
        f"## A fresh process answering one query (SciFact, \"{args.query}\", k=10; seconds, {args.rounds} rounds)",
        "",
        markdown_table(["process", "median s", "spread", "vs bm25s numpy"], cold),
        "",
        "First-ever compile of the batch kernels (a fresh process searching all 300 SciFact test queries, "
        "index open and collection load included):",
        "",
        markdown_table(["process", "seconds"], compile_rows),
        "",
        "## One query per call, warm process, one thread (microseconds per call)",
        "",
        "'vs best bm25s' divides by the faster bm25s backend's median on the same calls.",
        "",
        markdown_table(["collection", "k", "queries per call", "tool", "median µs", "p99 µs", "vs best bm25s"], warm),
        "",
        "## Machine and versions",
        "",
        markdown_table(["", ""], [*machine_info().items(), *versions(["rankstack", "numba", "numpy", "bm25s"]).items()]),
        "",
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
