"""Where the time of one weighted (SPLADE) query goes, and what faster exact algorithms could save.

Usage (after ``bench_splade.py --workdir W`` has built ``W/<collection>/impact-8-256``)::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/probe_impact_kernel.py --workdir W

For each collection, with the packaged SPLADE-tiny's test queries and one thread:

1. **One call, taken apart**: ``Impact.search_weighted`` for one query, the query's token lookup
   (``Impact._vector``), and the compiled top-k kernel alone on the same arrays.
2. **The accumulation loop's variants**: ``acc[doc] += w * impact`` over every posting of the query, with
   float64 / float32 accumulators, float32 / uint8 impacts, uint32 / uint16 document ids, a 256-entry
   product table, and the loop unrolled four ways: how close the scatter is to its floor.
3. **What pruning could skip**, counted with the final 10th score known in advance (an oracle: no real
   algorithm does better): MaxScore's essential lists (the query's heaviest-bound terms whose bounds sum
   past the threshold); block-max bounds over blocks of 16-128 documents in index order (blocks whose bound
   reaches the threshold must be scored); and term-at-a-time from the heaviest term, stopping where the
   remaining terms' bounds can no longer lift an unseen document into the top 10.

Writes ``benchmarks/results/impact-kernel-probe.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
K = 10


def best_per_query(fn: Any, n: int, rounds: int) -> float:
    """Best of ``rounds`` passes over queries 0..n-1, in microseconds per query (20 calls to warm up first)."""
    for i in range(min(20, n)):
        fn(i)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def scatter_kernels() -> dict[str, Any]:
    from numba import njit

    @njit
    def plain(docs, imps, starts, ends, w, acc):  # pragma: no cover - compiled
        for t in range(len(starts)):
            wt = w[t]
            for p in range(starts[t], ends[t]):
                acc[docs[p]] += wt * imps[p]
        acc[:] = 0

    @njit
    def table(docs, imps, starts, ends, w, acc):  # pragma: no cover - compiled
        lut = np.empty(256, acc.dtype)
        for t in range(len(starts)):
            for j in range(256):
                lut[j] = w[t] * j
            for p in range(starts[t], ends[t]):
                acc[docs[p]] += lut[imps[p]]
        acc[:] = 0

    @njit
    def unrolled(docs, imps, starts, ends, w, acc):  # pragma: no cover - compiled
        for t in range(len(starts)):
            wt, p, b = w[t], starts[t], ends[t]
            while p + 4 <= b:
                d0, d1, d2, d3 = docs[p], docs[p + 1], docs[p + 2], docs[p + 3]
                x0, x1 = acc[d0] + wt * imps[p], acc[d1] + wt * imps[p + 1]
                x2, x3 = acc[d2] + wt * imps[p + 2], acc[d3] + wt * imps[p + 3]
                acc[d0], acc[d1], acc[d2], acc[d3] = x0, x1, x2, x3
                p += 4
            while p < b:
                acc[docs[p]] += wt * imps[p]
                p += 1
        acc[:] = 0

    return {"plain": plain, "table": table, "unrolled": unrolled}


def probe(args: argparse.Namespace, name: str, encoder: Any) -> dict[str, Any]:
    import numba

    from rankstack.data import load_collection
    from rankstack.index import open_index
    from rankstack.sparse import Impact
    from rankstack.sparse.bm25 import _kernels
    from rankstack.sparse.impact import _segment_impacts

    numba.set_num_threads(1)
    index = open_index(args.workdir / name / "impact-8-256")
    queries = load_collection(DATA / name).queries_for("test")
    bags = encoder.encode_queries(queries.text.tolist())
    qids = queries.qid.tolist()
    stage = Impact(index, k=K, num_threads=1)
    seg, imp = index.segments[0], _segment_impacts(index)[0]
    scale = float(seg.entry.get("impact_scale", 1.0))
    vectors = [stage._vector(q, b) for q, b in zip(qids, bags, strict=True)]
    n = len(bags)
    topk = _kernels()
    q01 = np.array([0, 0], np.int64)

    def kernel(i: int) -> None:
        g, w = vectors[i]
        q01[1] = len(g)
        topk.serial_topk_terms(imp.docs, imp.imps, imp.offsets, imp.max_impact, q01, g, w / scale, K, False,
                               imp.scratch(K, False))  # fmt: skip

    timing = {
        "Impact.search_weighted, one query per call": best_per_query(
            lambda i: stage.search_weighted([qids[i]], [bags[i]]), n, args.rounds),
        "the query's token lookup (Impact._vector)": best_per_query(
            lambda i: stage._vector(qids[i], bags[i]), n, args.rounds),
        "the compiled top-k kernel alone": best_per_query(kernel, n, args.rounds),
    }  # fmt: skip
    postings = float(np.mean([int((imp.offsets[g + 1] - imp.offsets[g]).sum()) for g, _ in vectors]))

    kernels = scatter_kernels()
    docs32, imps32 = np.ascontiguousarray(imp.docs, np.uint32), np.ascontiguousarray(imp.imps, np.float32)
    if not np.array_equal(imps32, np.round(imps32)) or imps32.max() > 255:
        raise SystemExit(f"{name}: the probe wants an 8-bit impact index")
    imps8 = imps32.astype(np.uint8)
    docs16 = docs32.astype(np.uint16) if seg.num_docs < 65536 else None
    ranges = [(imp.offsets[g], imp.offsets[g + 1], w / scale) for g, w in vectors]
    variants = {
        "float64 accumulator, float32 impacts, uint32 ids (rankstack's)": ("plain", docs32, imps32, np.float64),
        "float32 accumulator": ("plain", docs32, imps32, np.float32),
        "uint8 impacts": ("plain", docs32, imps8, np.float64),
        "float32 accumulator, uint8 impacts, uint16 ids": ("plain", docs16, imps8, np.float32),
        "uint8 impacts through a 256-entry product table": ("table", docs32, imps8, np.float64),
        "unrolled four ways": ("unrolled", docs32, imps32, np.float64),
    }
    scatter = {}
    for label, (kind, docs, imps, dtype) in variants.items():
        if docs is None:
            continue
        acc = np.zeros(seg.num_docs, dtype)
        typed = [(s, e, w.astype(dtype)) for s, e, w in ranges]
        fn = kernels[kind]
        scatter[label] = best_per_query(lambda i, fn=fn, d=docs, m=imps, a=acc, q=typed: fn(d, m, q[i][0], q[i][1], q[i][2], a),
                                        n, args.rounds)  # fmt: skip

    bounds = oracle_fractions(vectors, imp, seg.num_docs, scale, args.blocks)
    return {"name": name, "queries": n, "docs": seg.num_docs, "postings": postings, "timing": timing,
            "scatter": scatter, "bounds": bounds}  # fmt: skip


def oracle_fractions(vectors: list[Any], imp: Any, num_docs: int, scale: float, blocks: list[int]) -> dict[str, float]:
    """Mean fraction of a query's postings each pruning scheme must still read, given the final 10th score."""
    docs, imps, off = np.asarray(imp.docs, np.int64), np.asarray(imp.imps, np.float64), imp.offsets
    out: dict[str, list[float]] = {}
    for g, w in vectors:
        w = w / scale
        lists = [(docs[off[t] : off[t + 1]], imps[off[t] : off[t + 1]]) for t in g]
        lengths = np.array([len(d) for d, _ in lists], dtype=np.float64)
        total = lengths.sum()
        if not total:
            continue
        acc = np.zeros(num_docs)
        for (d, x), wt in zip(lists, w, strict=True):
            acc[d] += wt * x
        theta = np.sort(acc)[-K] if num_docs >= K else 0.0
        ub = w * np.array([x.max() if len(x) else 0.0 for _, x in lists])
        light = np.argsort(ub, kind="stable")
        non_essential = int(np.searchsorted(np.cumsum(ub[light]), theta))  # the lightest terms whose bounds sum below it
        out.setdefault("MaxScore: essential lists", []).append(lengths[light[non_essential:]].sum() / total)
        for size in blocks:
            nb = (num_docs + size - 1) // size
            bound, per_block = np.zeros(nb), np.zeros(nb)
            for (d, x), wt in zip(lists, w, strict=True):
                top = np.zeros(nb)
                np.maximum.at(top, d // size, x)
                bound += wt * top
                per_block += np.bincount(d // size, minlength=nb)
            out.setdefault(f"block-max, {size}-document blocks: blocks whose bound reaches it", []).append(
                per_block[bound >= theta].sum() / total)
        heavy = np.argsort(-ub, kind="stable")
        remaining, read, partial = ub.sum(), 0.0, np.zeros(num_docs)
        for t in heavy:
            d, x = lists[t]
            partial[d] += w[t] * x
            remaining -= ub[t]
            read += lengths[t]
            if remaining < np.sort(partial)[-K]:
                break
        out.setdefault("term-at-a-time from the heaviest term, until no unseen document can enter", []).append(
            read / total)
    return {k: float(np.mean(v)) for k, v in out.items()}


def report(args: argparse.Namespace, results: list[dict[str, Any]], minutes: float) -> str:
    command = " ".join(["RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/probe_impact_kernel.py", *sys.argv[1:]])
    lines = [
        "# One weighted query, taken apart: rankstack's impact search kernel and what pruning could save",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {minutes:.1f} minutes; "
        f"rankstack revision {git_revision(REPO)}.",
        "",
        f"SPLADE-tiny (the packaged zero-shot model) test queries over the 8-bit impact index that `bench_splade.py` "
        f"built; one thread; k={K}; times are the best of {args.rounds} passes over every query, in microseconds per query.",
    ]
    for r in results:
        lines += ["", f"## {r['name']} ({r['queries']} queries, {r['docs']:,} documents, "
                  f"{r['postings']:,.0f} postings per query)", ""]  # fmt: skip
        t = r["timing"]
        rest = t["Impact.search_weighted, one query per call"] - t["the compiled top-k kernel alone"]
        rows = [[k, f"{v:.1f}", f"{v / r['postings'] * 1e3:.2f}" if "kernel" in k else ""] for k, v in t.items()]
        rows.append(["everything else in the call (Python, numba's dispatch, the Ranking)", f"{rest:.1f}", ""])
        lines += [markdown_table(["part of one call", "µs per query", "ns per posting"], rows), ""]
        rows = [[k, f"{v:.1f}", f"{v / r['postings'] * 1e3:.2f}"] for k, v in r["scatter"].items()]
        lines += ["The accumulation loop alone (no top-k), variants:", "",
                  markdown_table(["accumulation", "µs per query", "ns per posting"], rows), ""]  # fmt: skip
        rows = [[k, f"{v:.1%}"] for k, v in r["bounds"].items()]
        lines += ["Postings an exact pruning scheme must still read, with the final 10th score known in advance:", "",
                  markdown_table(["scheme", "share of the query's postings"], rows)]  # fmt: skip
    lines += ["", *machine_section(["numba", "numpy"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="bench_splade.py's --workdir")
    parser.add_argument("--collections", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blocks", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "impact-kernel-probe.md")
    args = parser.parse_args(argv)
    from rankstack.sparse.splade import Splade, packaged_splade_tiny

    started = time.perf_counter()
    encoder = Splade(packaged_splade_tiny(), max_length=256, query_max_length=64, device="cpu")
    results = [probe(args, name, encoder) for name in args.collections]
    text = report(args, results, (time.perf_counter() - started) / 60)
    args.output.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
