"""BM25 speed and memory: rankstack against bm25s and rank_bm25, side by side in one run.

Usage::

    .venv/bin/python benchmarks/bench_bm25.py            # full run, writes benchmarks/results/bm25.md
    .venv/bin/python benchmarks/bench_bm25.py --quick    # smoke test: small synthetic corpus, fewer repeats

What it measures (all tools with k1=0.9, b=0.4, document = title + " " + text):

1. Query throughput on the 300 SciFact test queries, top 1000 and top 10: rankstack (default accumulator
   and MaxScore, one thread and all cores), bm25s method "lucene" (English stopwords, PyStemmer "english";
   numpy backend and numba backend, one thread and all cores) and rank_bm25 ``BM25Okapi`` (same tokens
   as bm25s). The timed region is what a user pays end to end: query tokenisation, scoring, top-k and
   results carrying external docids (rankstack builds a ``Ranking``; bm25s maps indices through
   ``corpus=docids``). One untimed warm-up run (numba JIT), then the systems take turns, one timed
   batch each per round (drift on a shared machine hits all alike); the median of the rounds.
2. nDCG@10 of each tool on SciFact test (ir_measures), so we know the systems compared are equivalent.
3. Index build time and peak RSS on NFCorpus and on a synthetic Zipf corpus (1M documents in the full
   run), each build in a fresh subprocess. Then query throughput on the synthetic corpus.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    Timing,
    current_rss,
    git_revision,
    machine_info,
    markdown_table,
    mib,
    peak_rss_self,
    read_jsonl,
    read_qrels,
    run_worker,
    time_repeats,
    versions,
    worker_report,
)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", REPO.parent / "shared" / "data"))
K1, B = 0.9, 0.4
BUILD_TOOLS = ("rankstack", "rankstack (store_docs=False)", "bm25s")

# The synthetic corpus: documented in the report (see ``synthetic_description``).
ZIPF_EXPONENT = 1.1
LENGTH_MEAN, LENGTH_SIGMA = 60.0, 0.5  # lognormal document lengths in tokens
QUERY_SKIP_TOP = 100  # synthetic query words avoid the 100 most frequent words (stopword-like)


# ------------------------------------------------------------------------------------------ data
def beir_docs(path: Path) -> Iterator[tuple[str, str, str]]:
    """(docid, title, text) from a BEIR ``corpus.jsonl.gz``."""
    for rec in read_jsonl(path):
        yield str(rec["_id"]), rec.get("title") or "", rec.get("text") or ""


def beir_test_queries(name: str) -> tuple[list[str], list[str], dict[str, dict[str, int]]]:
    qrels = read_qrels(DATA / name / "qrels" / "test.tsv")
    texts = {str(r["_id"]): r["text"] for r in read_jsonl(DATA / name / "queries.jsonl")}
    qids = [q for q in texts if q in qrels]
    return qids, [texts[q] for q in qids], qrels


def _synthetic_words(vocab: int, rng: np.random.Generator) -> list[str]:
    """``vocab`` distinct pronounceable lowercase words (2-4 consonant-vowel syllables, maybe a final
    consonant), none a stopword of either tool, so both analysers keep every word."""
    import bm25s.stopwords

    from rankstack.text.stopwords import STOPWORDS

    stop = set(bm25s.stopwords.STOPWORDS_EN) | set(STOPWORDS["lucene"])
    consonants, vowels = list("bcdfghjklmnprstvz"), list("aeiou")
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < vocab:
        n = 4096
        syll = rng.integers(2, 5, size=n)
        final = rng.random(n) < 0.5
        cs = rng.integers(0, len(consonants), size=(n, 5))
        vs = rng.integers(0, len(vowels), size=(n, 4))
        for i in range(n):
            w = "".join(consonants[cs[i, j]] + vowels[vs[i, j]] for j in range(syll[i]))
            if final[i]:
                w += consonants[cs[i, 4]]
            if w not in seen and w not in stop:
                seen.add(w)
                words.append(w)
                if len(words) == vocab:
                    break
    return words


def _zipf_cdf(vocab: int) -> np.ndarray:
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -ZIPF_EXPONENT
    cdf = np.cumsum(p)
    return cdf / cdf[-1]


def generate_synthetic(path: Path, num_docs: int, vocab: int, seed: int) -> Path:
    """Write the synthetic corpus to ``path`` (jsonl.gz), unless a complete one is already there."""
    done = path.with_suffix(path.suffix + ".complete")
    if path.exists() and done.exists():
        return path
    rng = np.random.default_rng(seed)
    words = _synthetic_words(vocab, rng)
    cdf = _zipf_cdf(vocab)
    mu = math.log(LENGTH_MEAN) - LENGTH_SIGMA**2 / 2  # so that the mean length is LENGTH_MEAN
    import gzip

    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
        chunk = 50_000
        for start in range(0, num_docs, chunk):
            n = min(chunk, num_docs - start)
            lengths = np.clip(np.rint(rng.lognormal(mu, LENGTH_SIGMA, size=n)), 1, 2000).astype(np.int64)
            ids = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum())), side="right"), vocab - 1)
            ends = np.cumsum(lengths)
            starts = ends - lengths
            ids_list = ids.tolist()
            get = words.__getitem__
            lines = []
            for i in range(n):
                text = " ".join(map(get, ids_list[starts[i] : ends[i]]))
                lines.append(json.dumps({"_id": f"d{start + i:07d}", "title": "", "text": text}))
            fh.write("\n".join(lines) + "\n")
    tmp.rename(path)
    done.write_text(json.dumps({"num_docs": num_docs, "vocab": vocab, "seed": seed}))
    return path


def synthetic_queries(num: int, vocab: int, seed: int) -> tuple[list[str], list[str]]:
    """``num`` queries of 2-5 words drawn from the corpus's Zipf law, skipping the most frequent words."""
    rng = np.random.default_rng(seed)
    words = _synthetic_words(vocab, rng)  # same seed as the corpus: same words
    cdf = _zipf_cdf(vocab)
    qrng = np.random.default_rng(seed + 1)
    lo = cdf[QUERY_SKIP_TOP - 1]
    texts = []
    for _ in range(num):
        n = int(qrng.integers(2, 6))
        ids = np.minimum(np.searchsorted(cdf, lo + (1 - lo) * qrng.random(n), side="right"), vocab - 1)
        texts.append(" ".join(words[i] for i in ids))
    return [f"q{i}" for i in range(num)], texts


# ------------------------------------------------------------------------------------------ tools
def _bm25s_stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def rankstack_build(corpus_path: Path, index_dir: Path, store_docs: bool = True, threads: int = 1):
    from rankstack.index import build_inverted_index
    from rankstack.types import Corpus, Document

    def docs() -> Iterator[Document]:
        for docid, title, text in beir_docs(corpus_path):
            yield Document(docid, text, title or None)

    return build_inverted_index(
        Corpus(docs, name=corpus_path.parent.name),
        index_dir,
        overwrite=True,
        store_docs=store_docs,
        show_progress=False,
        threads=threads,
    )


def _threads_of(tool: str) -> int:
    """``rankstack (threads=2)`` -> 2; every other tool name -> 1."""
    return int(tool.split("threads=")[1].rstrip(")")) if "threads=" in tool else 1


def bm25s_build(corpus_path: Path):
    """bm25s as its README builds it, but streaming texts (``bm25s.tokenize`` accepts any iterable)
    so the raw corpus is never held in memory. Returns the retriever and the docids."""
    import bm25s

    docids: list[str] = []

    def texts() -> Iterator[str]:
        for docid, title, text in beir_docs(corpus_path):
            docids.append(docid)
            yield title + " " + text

    tokens = bm25s.tokenize(texts(), stopwords="en", stemmer=_bm25s_stemmer(), show_progress=False)
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
    retriever.index(tokens, show_progress=False)
    return retriever, docids


def bm25s_save(retriever, docids: list[str], directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    retriever.save(directory, show_progress=False)
    (directory / "docids.json").write_text(json.dumps(docids))


def bm25s_load(directory: Path, backend: str):
    import bm25s

    retriever = bm25s.BM25.load(directory, backend=backend, show_progress=False)
    docids = np.asarray(json.loads((directory / "docids.json").read_text()), dtype=object)
    return retriever, docids


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------ build worker
def build_worker(tool: str, corpus_path: Path, out_dir: Path) -> None:
    """Runs in a fresh interpreter: warm up (JIT) on a tiny corpus, take the baseline RSS, build, report."""
    import bm25s  # noqa: F401 - the same imports for every tool, so baselines compare
    import numba  # noqa: F401
    import Stemmer  # noqa: F401

    import rankstack.index
    import rankstack.sparse  # noqa: F401

    tiny = out_dir.parent / f".warmup-{os.getpid()}"
    tiny.mkdir(parents=True, exist_ok=True)
    tiny_corpus = tiny / "corpus.jsonl.gz"
    import gzip

    with gzip.open(tiny_corpus, "wt", encoding="utf-8") as fh:
        for i in range(50):
            fh.write(
                json.dumps({"_id": f"w{i}", "title": "warm", "text": f"warm up document number {i} alpha beta"}) + "\n"
            )
    if tool.startswith("rankstack"):
        tiny_index = rankstack_build(tiny_corpus, tiny / "idx", store_docs="store_docs=False" not in tool)
        if "kernels started" in tool:  # a process that has searched (see bench_build.py)
            from rankstack.types import Queries

            texts = [f"warm alpha {i}" for i in range(20)]  # more than a few: the compiled kernels, not numpy
            tiny_index.bm25(k=10)(Queries([f"w{i}" for i in range(20)], texts))
            from rankstack import jit

            assert jit.started()
    else:
        bm25s_build(tiny_corpus)
    shutil.rmtree(tiny, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)  # the last round's index: removing it is no part of a build
    gc.collect()
    baseline = current_rss()
    peak_before = peak_rss_self()

    t0 = time.perf_counter()
    if tool.startswith("rankstack"):
        idx = rankstack_build(corpus_path, out_dir, store_docs="store_docs=False" not in tool, threads=_threads_of(tool))
        seconds = time.perf_counter() - t0
        peak = peak_rss_self()
        extra = {"num_docs": idx.num_docs, "disk_bytes": dir_size(out_dir), "save_s": None}
    else:
        retriever, docids = bm25s_build(corpus_path)
        seconds = time.perf_counter() - t0
        peak = peak_rss_self()
        t1 = time.perf_counter()
        bm25s_save(retriever, docids, out_dir)
        extra = {"num_docs": len(docids), "disk_bytes": dir_size(out_dir), "save_s": time.perf_counter() - t1}
    worker_report(
        {
            "tool": tool,
            "build_s": seconds,
            "baseline_rss": baseline,
            "peak_rss": peak,
            "peak_before": peak_before,
            **extra,
        }
    )


def measure_build(tool: str, corpus_path: Path, out_dir: Path) -> dict[str, Any]:
    args = [
        str(Path(__file__).resolve()),
        "--worker-build",
        tool,
        "--corpus",
        str(corpus_path),
        "--out-dir",
        str(out_dir),
    ]
    return run_worker(args)


# ------------------------------------------------------------------------------------------ query runners
Runner = Callable[[], Any]


def rankstack_runner(index, qids: list[str], texts: list[str], k: int, algorithm: str, threads: int | None) -> Runner:
    from rankstack.types import Queries

    stage = index.bm25(k1=K1, b=B, k=k, algorithm=algorithm, num_threads=threads)
    return lambda: stage(Queries(qids, texts))


def rankstack_run_dict(ranking) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for q, d, s in zip(ranking.qid.tolist(), ranking.docid.tolist(), ranking.score.tolist()):
        run.setdefault(q, {})[d] = s
    return run


def bm25s_runner(retriever, docids: np.ndarray, texts: list[str], k: int, threads: int) -> Runner:
    import bm25s

    stemmer = _bm25s_stemmer()
    k = min(k, len(docids))

    def run():
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
        return retriever.retrieve(tokens, corpus=docids, k=k, n_threads=threads, show_progress=False)

    return run


def bm25s_run_dict(qids: list[str], result) -> dict[str, dict[str, float]]:
    docs, scores = result
    return {q: dict(zip(docs[i].tolist(), scores[i].tolist())) for i, q in enumerate(qids)}


def rank_bm25_setup(corpus_path: Path):
    import bm25s
    from rank_bm25 import BM25Okapi

    docids, texts = [], []
    for docid, title, text in beir_docs(corpus_path):
        docids.append(docid)
        texts.append(title + " " + text)
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=_bm25s_stemmer(), return_ids=False, show_progress=False)
    return BM25Okapi(tokens, k1=K1, b=B), np.asarray(docids, dtype=object)


def rank_bm25_runner(okapi, docids: np.ndarray, texts: list[str], k: int) -> Runner:
    import bm25s

    stemmer = _bm25s_stemmer()
    k = min(k, len(docids))

    def run():
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
        out = []
        for toks in tokens:
            scores = okapi.get_scores(toks)
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.lexsort((top, -scores[top]))]
            out.append((docids[top], scores[top]))
        return out

    return run


def ndcg10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
    import ir_measures
    from ir_measures import nDCG

    return ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]


# ------------------------------------------------------------------------------------------ experiments
def query_configs(num_cores: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, tool, options) for every system timed; one thread first, then all cores."""
    return [
        ("rankstack (default), 1 thread", "rankstack", {"algorithm": "exhaustive", "threads": 1}),
        (f"rankstack (default), {num_cores} threads", "rankstack", {"algorithm": "exhaustive", "threads": None}),
        ("rankstack maxscore, 1 thread", "rankstack", {"algorithm": "maxscore", "threads": 1}),
        (f"rankstack maxscore, {num_cores} threads", "rankstack", {"algorithm": "maxscore", "threads": None}),
        ("bm25s numpy, 1 thread (n_threads=0)", "bm25s", {"backend": "numpy", "threads": 0}),
        (f"bm25s numpy, {num_cores} threads", "bm25s", {"backend": "numpy", "threads": -1}),
        ("bm25s numba, 1 thread", "bm25s", {"backend": "numba", "threads": 1}),
        (f"bm25s numba, {num_cores} threads", "bm25s", {"backend": "numba", "threads": -1}),
    ]


def throughput(
    rs_index,
    bm25s_dir: Path,
    qids: list[str],
    texts: list[str],
    ks: list[int],
    repeats: int,
    qrels: dict[str, dict[str, int]] | None,
    okapi=None,
    okapi_queries: int | None = None,
    log=print,
) -> list[dict[str, Any]]:
    num_cores = len(os.sched_getaffinity(0))
    retrievers = {b: bm25s_load(bm25s_dir, b) for b in ("numpy", "numba")}
    rows = []
    for k in ks:
        # every configuration warms up (numba JIT), then they take turns, one timed batch each per round,
        # so a slower or faster spell of a shared machine falls on all of them alike
        runners = []
        for label, tool, opts in query_configs(num_cores):
            if tool == "rankstack":
                fn = rankstack_runner(rs_index, qids, texts, k, opts["algorithm"], opts["threads"])
            else:
                retriever, docids = retrievers[opts["backend"]]
                fn = bm25s_runner(retriever, docids, texts, k, opts["threads"])
            runners.append((label, tool, fn, fn()))
        seconds: dict[str, list[float]] = {label: [] for label, *_ in runners}
        for _ in range(repeats):
            for label, _, fn, _ in runners:
                t0 = time.perf_counter()
                fn()
                seconds[label].append(time.perf_counter() - t0)
        for label, tool, _, result in runners:
            timing = Timing(seconds[label])
            row = {"k": k, "system": label, "tool": tool, "queries": len(qids), "timing": timing}
            row["qps"] = len(qids) / timing.median
            if qrels is not None:
                run = rankstack_run_dict(result) if tool == "rankstack" else bm25s_run_dict(qids, result)
                row["ndcg10"] = ndcg10(qrels, run)
            log(f"  k={k} {label}: {row['qps']:,.0f} q/s (median {timing.median:.3f}s of {timing.seconds})")
            rows.append(row)
        if okapi is not None:
            okapi_model, okapi_docids = okapi
            n = okapi_queries or len(qids)
            # effectiveness on all queries (untimed), speed on the first n queries
            fn_all = rank_bm25_runner(okapi_model, okapi_docids, texts, k)
            t0 = time.perf_counter()
            full = fn_all()
            full_s = time.perf_counter() - t0
            if n < len(qids):
                timing, _ = time_repeats(
                    rank_bm25_runner(okapi_model, okapi_docids, texts[:n], k), max(3, repeats // 2), 0
                )
            else:
                timing, _ = time_repeats(fn_all, max(3, repeats // 2), 0)
            row = {
                "k": k,
                "system": "rank_bm25 BM25Okapi, 1 thread",
                "tool": "rank_bm25",
                "queries": n,
                "timing": timing,
            }
            row["qps"] = n / timing.median
            row["first_run_s"] = full_s
            if qrels is not None:
                run = {q: dict(zip(d.tolist(), s.tolist())) for q, (d, s) in zip(qids, full)}
                row["ndcg10"] = ndcg10(qrels, run)
            log(f"  k={k} rank_bm25: {row['qps']:,.1f} q/s on {n} queries")
            rows.append(row)
    return rows


def _ratio_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """rankstack's default (1 thread; all cores) over each peer configuration, per k."""
    out = []
    for k in sorted({r["k"] for r in rows}):
        by = {r["system"]: r for r in rows if r["k"] == k}
        rs1 = by["rankstack (default), 1 thread"]["qps"]
        rsn = next(r["qps"] for s, r in by.items() if s.startswith("rankstack (default)") and "1 thread" not in s)
        for s, r in by.items():
            if r["tool"] == "rankstack":
                continue
            out.append([k, s, f"{rs1 / r['qps']:.2f}×", f"{rsn / r['qps']:.2f}×"])
    return out


def throughput_table(rows: list[dict[str, Any]], with_ndcg: bool) -> str:
    headers = ["k", "system", "queries timed", "median s", "min–max s", "queries/s"]
    if with_ndcg:
        headers.append("nDCG@10")
    table = []
    for r in rows:
        line = [r["k"], r["system"], r["queries"], f"{r['timing'].median:.3f}", r["timing"].spread, f"{r['qps']:,.1f}"]
        if with_ndcg:
            line.append(f"{r['ndcg10']:.4f}" if "ndcg10" in r else "–")
        table.append(line)
    return markdown_table(headers, table)


def build_table(results: list[dict[str, Any]]) -> str:
    headers = [
        "corpus",
        "tool",
        "documents",
        "build s",
        "peak RSS MiB",
        "baseline RSS MiB",
        "peak − baseline MiB",
        "polled peak MiB",
        "on disk MiB",
        "bm25s save s",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r["corpus"],
                r["tool"],
                f"{r['num_docs']:,}",
                f"{r['build_s']:.1f}",
                mib(r["peak_rss"]),
                mib(r["baseline_rss"]),
                mib(r["peak_rss"] - r["baseline_rss"]),
                mib(r.get("polled_peak_rss")),
                mib(r["disk_bytes"]),
                "–" if r.get("save_s") is None else f"{r['save_s']:.1f}",
            ]
        )
    return markdown_table(headers, rows)


def build_ratio_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for corpus in dict.fromkeys(r["corpus"] for r in results):
        by = {r["tool"]: r for r in results if r["corpus"] == corpus}
        ref = by["bm25s"]
        for tool in BUILD_TOOLS[:2]:
            r = by[tool]
            rows.append(
                [
                    corpus,
                    tool,
                    f"{(r['peak_rss'] - r['baseline_rss']) / max(1, ref['peak_rss'] - ref['baseline_rss']):.2f}",
                    f"{r['peak_rss'] / ref['peak_rss']:.2f}",
                    f"{r['build_s'] / ref['build_s']:.2f}",
                ]
            )
    return markdown_table(
        ["corpus", "rankstack variant", "(peak − baseline) / bm25s", "peak / bm25s peak", "build time / bm25s"], rows
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small synthetic corpus, fewer repeats (smoke test)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-bm25")
    parser.add_argument(
        "--output", type=Path, default=None, help="markdown report (default benchmarks/results/bm25.md)"
    )
    parser.add_argument("--synthetic-docs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--worker-build", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_build:
        build_worker(args.worker_build, args.corpus, args.out_dir)
        return

    quick = args.quick
    repeats = args.repeats or (2 if quick else 11)
    syn_docs = args.synthetic_docs or (20_000 if quick else 1_000_000)
    syn_vocab = 20_000 if quick else 200_000
    seed = 20240601
    output = args.output or (REPO / "benchmarks" / "results" / ("bm25-quick.md" if quick else "bm25.md"))
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    log = lambda msg: print(f"[{time.time() - started:7.1f}s] {msg}", flush=True)  # noqa: E731

    import bm25s  # noqa: F401
    import numba

    from rankstack.index import open_index

    cores = len(os.sched_getaffinity(0))
    log(f"numba threads: {numba.get_num_threads()}, cores: {cores}")

    # ---- 1 + 2: SciFact throughput and effectiveness
    scifact = DATA / "scifact" / "corpus.jsonl.gz"
    qids, texts, qrels = beir_test_queries("scifact")
    log(f"SciFact: {len(qids)} test queries")
    rs_index = rankstack_build(scifact, work / "scifact-rankstack")
    retriever, docids = bm25s_build(scifact)
    bm25s_save(retriever, docids, work / "scifact-bm25s")
    okapi = rank_bm25_setup(scifact)
    sci_rows = throughput(
        rs_index,
        work / "scifact-bm25s",
        qids,
        texts,
        [1000, 10],
        repeats,
        qrels,
        okapi=okapi,
        okapi_queries=None,
        log=log,
    )
    del okapi, retriever

    # ---- 3: builds in fresh processes
    syn_path = work / f"zipf-{syn_docs}-{syn_vocab}-{seed}.jsonl.gz"
    log(f"generating synthetic corpus {syn_path} (reused if present)")
    t0 = time.perf_counter()
    generate_synthetic(syn_path, syn_docs, syn_vocab, seed)
    log(f"synthetic corpus ready in {time.perf_counter() - t0:.1f}s")
    corpora = [("nfcorpus", DATA / "nfcorpus" / "corpus.jsonl.gz"), (f"zipf-{syn_docs // 1000}k", syn_path)]
    builds = []
    for cname, cpath in corpora:
        for tool in BUILD_TOOLS:
            out_dir = work / f"build-{cname}-{tool.split()[0]}{'-nostore' if 'False' in tool else ''}"
            log(f"build {cname} with {tool} ...")
            res = measure_build(tool, cpath, out_dir)
            res.update(corpus=cname, out_dir=str(out_dir))
            log(
                f"  {res['build_s']:.1f}s, peak {mib(res['peak_rss'])} MiB, baseline {mib(res['baseline_rss'])} MiB, "
                f"polled {mib(res['polled_peak_rss'])} MiB"
            )
            builds.append(res)

    # ---- synthetic query throughput
    syn_name = corpora[1][0]
    syn_qids, syn_texts = synthetic_queries(300, syn_vocab, seed)
    log(f"query throughput on {syn_name}")
    syn_index = open_index(work / f"build-{syn_name}-rankstack")
    syn_rows = throughput(
        syn_index, work / f"build-{syn_name}-bm25s", syn_qids, syn_texts, [1000, 10], 3, None, log=log
    )

    # ---- report
    write_report(output, quick, argv, sci_rows, builds, syn_rows, syn_name, syn_docs, syn_vocab, seed, started)
    log(f"wrote {output}")


def synthetic_description(num_docs: int, vocab: int, seed: int) -> str:
    return (
        f"{num_docs:,} documents, generated once by this script (seed {seed}) to a jsonl.gz file that every build "
        f"streams: a vocabulary of {vocab:,} distinct made-up words (2–4 consonant-vowel syllables, "
        "maybe a final consonant; no stopword of either tool), word occurrences drawn from a Zipf law "
        f"p(rank r) ∝ r^-{ZIPF_EXPONENT} over that vocabulary, document lengths lognormal with mean "
        f"{LENGTH_MEAN:.0f} tokens (σ = {LENGTH_SIGMA} in log space, clipped to 1–2000), empty titles. "
        f"Queries: 300 of 2–5 words, drawn from the same Zipf law but skipping the {QUERY_SKIP_TOP} most frequent "
        "words (which act like stopwords). Stemmers may merge a few made-up words; both tools stem."
    )


def write_report(output, quick, argv, sci_rows, builds, syn_rows, syn_name, syn_docs, syn_vocab, seed, started) -> None:
    cmd = ".venv/bin/python benchmarks/bench_bm25.py" + (
        "" if not (argv or sys.argv[1:]) else " " + shlex.join(argv or sys.argv[1:])
    )
    info = machine_info()
    vers = versions(
        ["rankstack", "bm25s", "rank-bm25", "numba", "numpy", "scipy", "PyStemmer", "ir_measures", "psutil"]
    )
    cores = info["cores available"]
    lines = [
        "# BM25: rankstack vs bm25s vs rank_bm25",
        "",
        f"Generated by `{cmd}` (run from the repository root) on {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"taking {(time.time() - started) / 60:.1f} minutes. rankstack revision: {git_revision(REPO)}.",
        "" if not quick else "\n**Quick mode (smoke test): small synthetic corpus and few repeats; not for citing.**\n",
        "## Machine and versions",
        "",
        markdown_table(["", ""], [*info.items(), *((f"{k} version", v) for k, v in vers.items())]),
        "",
        "## Settings",
        "",
        '- BM25 k1=0.9, b=0.4 everywhere; document = title + " " + text.',
        "- rankstack: default analyser (Lucene EnglishAnalyzer equivalent: UAX#29-like tokens, possessives, "
        "33 Lucene stopwords, Porter), `index.bm25(k1=0.9, b=0.4, k=k, algorithm=..., num_threads=...)`; "
        "num_threads=1 for one thread, None for all cores.",
        '- bm25s: `bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"))`, '
        '`BM25(method="lucene", k1=0.9, b=0.4)`; numpy backend (`n_threads=0` is sequential, '
        f"`n_threads=-1` a thread pool of {cores}) and numba backend (`n_threads=1` serial kernel, `-1` parallel); "
        "indexes saved with `save` and loaded with `BM25.load(dir, backend=...)`.",
        "- rank_bm25: `BM25Okapi(tokens, k1=0.9, b=0.4)` over the same tokens as bm25s; top k by argpartition.",
        "- **Timed region = end-to-end cost a user pays for a batch of queries**: query tokenisation/analysis "
        "+ scoring + top-k + results with external docids (rankstack: a `Ranking`; bm25s: `retrieve(..., "
        "corpus=docids_array)`; rank_bm25: docid array indexing). One untimed warm-up run first (numba JIT); "
        f"then the rankstack and bm25s configurations take turns, one timed batch each per round ({len(sci_rows[0]['timing'].seconds)} "
        f"rounds on SciFact, {len(syn_rows[0]['timing'].seconds)} on the synthetic corpus), so a slow spell of the machine falls on all of them; the table gives the median and the "
        "min–max of the rounds.",
        "",
        "## 1–2. Query throughput and effectiveness on SciFact (300 test queries, 5,183 documents)",
        "",
        throughput_table(sci_rows, with_ndcg=True),
        "",
        "nDCG@10 by ir_measures on `qrels/test.tsv` from the same run's rankings (PEERS.md: Pyserini 0.6789, "
        "bm25s 0.6762, rank_bm25 0.6736).",
        "",
        "Speed-up of rankstack's default search (1 thread; and all cores) over each peer configuration (queries/s ratio):",
        "",
        markdown_table(
            ["k", "peer configuration", "rankstack 1 thread / peer", f"rankstack {cores} threads / peer"],
            _ratio_table(sci_rows),
        ),
        "",
        "## 3. Index build: time and peak memory",
        "",
        "Each build runs in a fresh interpreter that imports the same modules (numpy, numba, PyStemmer, bm25s, "
        "rankstack.index, rankstack.sparse) and first builds a 50-document index with the same tool so numba "
        "compilation is not counted. *Baseline RSS* is then taken (psutil), the build runs, and *peak RSS* is "
        "the worker's `VmHWM` (its own address space's RSS high-water mark); *polled peak* is the parent's psutil polling (20 ms) of the "
        "worker and its children, a cross-check. Build time and memory include reading the jsonl.gz corpus.",
        "",
        "- rankstack `build_inverted_index(corpus, path)` streams documents and writes the index to disk, including "
        "the document store (compressed JSON of every document), unless store_docs=False.",
        "- bm25s: `bm25s.tokenize(<generator of texts>)` + `BM25.index(tokens)` in memory (the texts are streamed "
        "into the tokenizer, so the raw corpus is never held; the docid list is kept, as a user needs it). Saving "
        "to disk (`save`) is *not* in the build time or peak; it is timed separately.",
        "",
        f"Synthetic corpus `{syn_name}`: {synthetic_description(syn_docs, syn_vocab, seed)}",
        "",
        build_table(builds),
        "",
        "Ratios (below 1 means rankstack uses less memory / time than bm25s):",
        "",
        build_ratio_table(builds),
        "",
        f"## 4. Query throughput on `{syn_name}` (300 synthetic queries)",
        "",
        "Same systems and timed region as above, on the indexes just built (rankstack with its document store, "
        "opened from disk with mmap; bm25s loaded from its saved files). No relevance judgements, so no nDCG. "
        "rank_bm25 is left out (per-document Python dicts: far too slow and large at this size).",
        "",
        throughput_table(syn_rows, with_ndcg=False),
        "",
        markdown_table(
            ["k", "peer configuration", "rankstack 1 thread / peer", f"rankstack {cores} threads / peer"],
            _ratio_table(syn_rows),
        ),
        "",
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
