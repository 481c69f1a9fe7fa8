"""PLAID settings against exhaustive MaxSim over the same decompressed vectors, on an index bench_colbert.py built.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/plaid_sweep.py --workdir /tmp/rankstack-bench-colbert \\
        --collection scifact --k 10 --settings 1,0.5,256 2,0.5,256 4,0.45,512

One thread (torch, BLAS, numba); every test query; prints overlap@k and the speed-up over exhaustive MaxSim for
each ``nprobe,threshold,ndocs``. Its output chose ``PlaidSettings.for_k``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--collection", default="scifact")
    parser.add_argument("--bits", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--settings", nargs="+", default=["1,0.5,256", "2,0.5,256", "4,0.45,512"])
    args = parser.parse_args()

    import numba
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from rankstack.data import load_collection
    from rankstack.index.tokens import TokenIndex
    from rankstack.late import ColBERTEncoder, PlaidSettings, maxsim_packed
    from rankstack.late.plaid import search_one

    numba.set_num_threads(1)
    torch.set_num_threads(1)
    index = TokenIndex(args.workdir / args.collection / f"colbert-{args.bits}bit")
    encoder = ColBERTEncoder(args.workdir / "train-scifact" / "final", device="cpu")
    queries = encoder.encode_queries(load_collection(DATA / args.collection).queries_for("test").text.tolist())
    k = args.k
    with threadpool_limits(1):
        vectors, offsets = index.doc_vectors(np.arange(index.num_docs))
        t0 = time.perf_counter()
        exact = []
        for q in queries:
            scores = maxsim_packed(q[None], vectors, offsets)[0]
            exact.append(set(np.argpartition(-scores, k - 1)[:k].tolist()))
        exhaustive = time.perf_counter() - t0
        for text in args.settings:
            nprobe, threshold, ndocs = text.split(",")
            settings = PlaidSettings(int(nprobe), float(threshold), int(ndocs))
            search_one(index, queries[0], k, settings)
            t0 = time.perf_counter()
            found = [set(search_one(index, q, k, settings)[0].tolist()) for q in queries]
            plaid = time.perf_counter() - t0
            overlap = np.mean([len(a & b) / k for a, b in zip(found, exact, strict=True)])
            print(f"{args.collection} {args.bits} bits k={k} {text}: overlap {overlap:.3f}, "
                  f"{exhaustive / plaid:.1f}x exhaustive", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
