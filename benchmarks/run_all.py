"""Run every benchmark in turn (``make bench``); each writes its report under benchmarks/results/.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/run_all.py [--quick]

``--quick`` is a smoke test of the BM25 speed benchmark (small synthetic corpus); its report goes to
``results/bm25-quick.md``, which is not committed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    jobs = [["bench_effectiveness.py"], ["bench_eval.py"], ["bench_bm25.py", *(["--quick"] if quick else [])]]
    for job in jobs:
        print(f"== {' '.join(job)}", flush=True)
        subprocess.run([sys.executable, str(HERE / job[0]), *job[1:]], check=True)


if __name__ == "__main__":
    main()
