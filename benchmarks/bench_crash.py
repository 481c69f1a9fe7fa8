"""Crash safety, the long run: kill -9 a writer at 1,000+ random points of build, add, delete and merge,
and race readers against a writer. See tests/index/crash_harness.py for what is checked after each kill.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_crash.py --kills 1000 --race-seconds 300

Documents: the first 800 SciFact documents (a plan builds 120, then adds, deletes and merges over the
rest); queries: the first 20 SciFact test queries. Prints a markdown report (paste into RELIABILITY.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import git_revision, machine_info
from bench_bm25 import DATA, REPO, beir_test_queries

from tests.index.crash_harness import kill_run, race


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--race-seconds", type=float, default=300.0)
    ap.add_argument("--docs", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from rankstack.data import load_collection

    corpus = load_collection(str(DATA / "scifact")).corpus
    pool = [d for _, d in zip(range(args.docs), corpus, strict=False)]
    queries = beir_test_queries("scifact")[1][:20]
    started = time.time()

    def progress(report):
        if report.total % 50 == 0:
            print(f"  {report.total} kills, {report.survived} survived, {time.time() - started:.0f}s", file=sys.stderr)

    with tempfile.TemporaryDirectory() as scratch:
        kills = kill_run(pool, queries, args.kills, Path(scratch), seed=args.seed, progress=progress)
        kill_seconds = time.time() - started
        t0 = time.time()
        races = [
            race(pool, queries, args.race_seconds / 5, Path(scratch), seed=args.seed + r, n_ops=300) for r in range(5)
        ]
        race_seconds = time.time() - t0

    info = machine_info()
    print(f"# Crash safety (rev {git_revision(REPO)}; {info['cpu']}, {info['cores available']} cores)\n")
    print(
        f"Command: `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_crash.py --kills {args.kills} "
        f"--race-seconds {args.race_seconds:g}`\n"
    )
    print(
        f"Kill -9 points: {kills.total} in {kill_seconds:.0f}s; survived with the last committed state, checksums "
        f"passing and search equal to a clean build: {kills.survived}; failures: {len(kills.failures)}; "
        f"plans run to the end between kills: {kills.completed_plans}\n"
    )
    print("| operation in flight | kills |\n|---|---:|")
    for op, n in sorted(kills.kills.items()):
        print(f"| {op} | {n} |")
    for f in kills.failures:
        print(f"\nFAILURE: {f}")
    its = sum(r.iterations for r in races)
    mixed = sum(r.mixed for r in races)
    errors = [e for r in races for e in r.errors]
    seen = sum(len(r.states_seen) for r in races)
    print(
        f"\nReaders racing a writer ({race_seconds:.0f}s, 5 writers of 300 updates): {its} open-search-wait-search "
        f"iterations, {mixed} mixed or changed results, {len(errors)} errors, {seen} distinct committed states seen"
    )
    for e in errors[:5]:
        print(f"\nERROR: {e}")


if __name__ == "__main__":
    main()
