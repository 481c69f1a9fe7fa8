"""Fuzzed readers, the long run: byte-level mutations of real files fed to every reader, counted.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_fuzz.py --cases 5000

Each case applies 1-4 random edits (bit flips, inserted or deleted bytes, truncation, duplicated or
dropped lines, bytes that matter to the format) to the first lines of a real file and reads the result.
A case passes if the reader reads it or raises its documented error naming the file and line (see
tests/data/fuzz_cases.py); anything else is counted as an undocumented exception and printed.
Robust04 topics and qrels and the SGML seed come from the capreolus==0.2.6 wheel (run the test suite
once to fetch it into .cache/).
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import git_revision, machine_info

from tests.data.fuzz_cases import CASES, REPO, check, check_index_file, check_manifest, manifest_index, random_mutations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5000, help="cases per reader")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    problems: dict[str, collections.Counter] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        targets = [(c.name, c) for c in CASES] + [("index manifest.json", None), ("index data files", None)]
        index = manifest_index(tmp_path)
        manifest_seed = (index / "manifest.json").read_bytes()
        for name, case in targets:
            seed = case.seed() if case is not None else b""
            if seed is None:
                rows.append((name, 0, 0, "seed not available (capreolus wheel not fetched)"))
                continue
            found: collections.Counter = collections.Counter()
            t0 = time.time()
            for _ in range(args.cases):
                mutations = random_mutations(rng)
                if case is not None:
                    problem = check(case, seed, mutations, tmp_path)
                elif name == "index manifest.json":
                    problem = check_manifest(index, manifest_seed, mutations)
                else:
                    problem = check_index_file(index, mutations, rng.randrange(100))
                if problem:
                    found[problem[:200]] += 1
            problems[name] = found
            rows.append((name, args.cases, sum(found.values()), f"{time.time() - t0:.0f}s"))
    info = machine_info()
    print(f"# Fuzzed readers (rev {git_revision(REPO)}; {info['cpu']}, {info['cores available']} cores)\n")
    print(f"Command: `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_fuzz.py --cases {args.cases}`\n")
    print("| reader | cases | undocumented exceptions | time |\n|---|---:|---:|---:|")
    for name, n, bad, note in rows:
        print(f"| {name} | {n} | {bad} | {note} |")
    for name, found in problems.items():
        for problem, count in found.most_common(5):
            print(f"\n{name}: {count} x {problem}")


if __name__ == "__main__":
    main()
