"""Run the benchmarks in turn (``make bench``); each writes its report under benchmarks/results/.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/run_all.py [--quick] [--neural]

By default: BM25 effectiveness, evaluation, and BM25 speed/memory (~20 minutes on 2 cores, most of it the
1M-document builds). ``--neural`` adds the dense reports and the fine-tuning table (about two more hours
on 2 cores: the models encode every document of SciFact and NFCorpus several times). ``--quick`` is a smoke
test: small corpora and samples; the BM25 speed report then goes to ``results/bm25-quick.md`` (not
committed), and the neural ones are given ``--quick`` too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def jobs(quick: bool, neural: bool) -> list[list[str]]:
    q = ["--quick"] if quick else []
    out = [["bench_effectiveness.py"], ["bench_eval.py"], ["bench_bm25.py", *q]]
    if neural:
        out += [["bench_dense.py", *q], ["bench_dense.py", "--speed", *q], ["bench_train.py", *q]]
    return out


def main() -> None:
    args = sys.argv[1:]
    for job in jobs("--quick" in args, "--neural" in args):
        print(f"== {' '.join(job)}", flush=True)
        subprocess.run([sys.executable, str(HERE / job[0]), *job[1:]], check=True)


if __name__ == "__main__":
    main()
