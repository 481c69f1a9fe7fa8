"""Helpers shared by the benchmarks: timing, peak memory of a job in a fresh process, reports.

Benchmarks compare rankstack with its peers *in the same run* on the same machine, so every number in
a report can be reproduced by re-running the command written at its top.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULT_MARKER = "@@BENCH_RESULT@@ "


# ------------------------------------------------------------------------------------------ timing
@dataclass
class Timing:
    """Wall-clock seconds of each repeat, after warm-up runs that are not counted."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> str:
        return f"{min(self.seconds):.3f}–{max(self.seconds):.3f}"


def time_repeats(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[Timing, Any]:
    """Run ``fn`` ``warmup`` times untimed (numba JIT, caches), then ``repeats`` times timed.

    Returns the timing and the result of the last run.
    """
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return Timing(times), result


# ------------------------------------------------------------------------------------------ memory
def current_rss() -> int:
    """Resident set size of this process in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss_self() -> int:
    """High-water mark of this process's RSS in bytes: ``VmHWM`` of /proc/self/status on Linux.

    Not ``ru_maxrss``: Linux carries that across ``fork`` + ``exec``, so a worker started by a big
    parent would report the parent's peak. ``VmHWM`` belongs to the address space, which exec replaces.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def worker_report(result: dict[str, Any]) -> None:
    """Print a worker's result where ``run_worker`` finds it (last marked line of stdout)."""
    print(RESULT_MARKER + json.dumps(result), flush=True)


def _poll_tree_rss(pid: int, stop: threading.Event, out: list[int], interval: float = 0.02) -> None:
    import psutil

    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    peak = 0
    while not stop.is_set():
        try:
            rss = proc.memory_info().rss
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    rss += child.memory_info().rss
        except psutil.NoSuchProcess:
            break
        peak = max(peak, rss)
        stop.wait(interval)
    out.append(peak)


def run_worker(args: Sequence[str], timeout: float | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python args...`` in a fresh interpreter and return the JSON it reports.

    A fresh process per measurement keeps one tool's allocations (and allocator caches) out of the
    other's numbers. Besides the worker's own report, the parent polls the RSS of the worker and its
    children every 20 ms (``polled_peak_rss``) as a cross-check of the worker's ``ru_maxrss``.
    """
    cmd = [sys.executable, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stop = threading.Event()
    polled: list[int] = []
    poller = threading.Thread(target=_poll_tree_rss, args=(proc.pid, stop, polled), daemon=True)
    poller.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        stop.set()
        poller.join()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-4000:]}")
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if not lines:
        raise RuntimeError(f"worker {' '.join(cmd)} reported nothing:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    result = json.loads(lines[-1][len(RESULT_MARKER) :])
    result["polled_peak_rss"] = polled[0] if polled else None
    return result


# ------------------------------------------------------------------------------------------ data
def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of a ``.jsonl`` or ``.jsonl.gz`` file, streamed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (header ``query-id corpus-id score``) as ``{qid: {docid: relevance}}``."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


# ------------------------------------------------------------------------------------------ report
def bm25_index(corpus: Any, path: str | Path, show_progress: bool = False) -> Any:
    """The BM25 index at ``path``, built from ``corpus`` the first time: benchmarks reuse their work directory."""
    from rankstack.index import build_inverted_index, open_index

    path = Path(path)
    if (path / "manifest.json").exists():
        return open_index(path)
    return build_inverted_index(corpus, path, show_progress=show_progress)


def versions(packages: Sequence[str]) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision(repo: str | Path) -> str:
    """The repository's short revision; ``RANKSTACK_REVISION`` when set (a copied tree on a lent machine: its git
    metadata, if any came along, can be stale)."""
    if os.environ.get("RANKSTACK_REVISION"):
        return os.environ["RANKSTACK_REVISION"]
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "rankstack"], capture_output=True, text=True
        ).stdout.strip()
        return rev + (" (rankstack/ has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):  # a copy of the tree without .git
        return "unknown"


def machine_info() -> dict[str, str]:
    first: dict[str, str] = {}  # the first processor's block of /proc/cpuinfo
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                first[key.strip()] = value.strip()
    except OSError:
        pass
    cpu = first.get("model name") or platform.processor() or "unknown"
    flags = set(first.get("flags", "").split())
    # int8 speed-ups hinge on these: without VNNI an int8 dot product takes three AVX2 instructions
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    mem = "unknown"
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {
        "cpu": cpu,
        "cores available": str(cores),
        "vector instructions": " ".join(simd) or "unknown",
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    gpu = _gpu_name()
    return {**info, "gpu": gpu} if gpu else info


def _gpu_name() -> str | None:
    """The CUDA device's name when torch is already imported and sees one (never imports torch itself)."""
    torch = sys.modules.get("torch")
    try:
        return torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else None
    except Exception:  # a report line is not worth a crash
        return None


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mib(nbytes: float | None) -> str:
    return "–" if nbytes is None else f"{nbytes / 2**20:,.0f}"


def experiment_markdown(table: Any) -> str:
    """An ``Experiment`` table as markdown: metrics to 4 decimals, p-values in scientific notation (0.0000
    would hide how small they are)."""
    table = table.copy()
    for col in table.columns:
        if "p-value" in col:
            table[col] = [("–" if v != v else f"{v:.1e}") for v in table[col]]
    return table.to_markdown(index=False, floatfmt=".4f")


def machine_section(packages: Sequence[str]) -> list[str]:
    """The closing "Machine and versions" section of a report, as markdown lines."""
    rows = list(machine_info().items()) + list(versions(packages).items())
    return ["## Machine and versions", "", markdown_table(["", ""], rows), ""]
