"""Kill -9 an index writer at random points, and race readers against a writer.

A *plan* is a build followed by adds (new documents and new versions of old ones), deletes and merges,
drawn from a seed. The writer is a child process (``python -m tests.index.crash_harness child DIR``)
that runs the plan, journaling ``begin i`` / ``end i`` around operation ``i``. After each kill -9:

* the index must open with every checksum passing;
* its documents must equal the state after the last finished operation or after the one in flight
  (which may have committed just before the kill);
* BM25 over it must equal BM25 over a clean build of those documents (every match of every query).

The child is then restarted and resumes the plan (operations are idempotent: adding the same documents
again, deleting deleted ones, merging a merged index leave the same state). ``race`` runs a writer
through the plan while the parent opens, searches, waits and searches again: every result must be one
of the plan's states, the same before and after the wait, and nothing may raise.

Used by ``tests/index/test_crash.py`` (a short run) and ``benchmarks/bench_crash.py`` (1,000+ kills).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rankstack.types import Document, Queries

ROOT = Path(__file__).resolve().parents[2]
K = 10_000  # more than any plan's documents: every match: results compare as sets, whatever the order of ties


# ------------------------------------------------------------------------------------------ plans
def make_plan(pool: list[Document], seed: int, n_ops: int = 30, start: int = 120) -> list[dict]:
    """Build ``start`` documents, then ``n_ops`` random adds, deletes and merges over ``pool``."""
    rng = random.Random(seed)
    plan: list[dict] = [{"op": "build", "docs": [_record(d) for d in pool[:start]]}]
    live = [d.docid for d in pool[:start]]
    fresh = list(pool[start:])
    for i in range(n_ops):
        kind = rng.choices(["add", "delete", "merge"], weights=[5, 3, 1])[0]
        if kind == "add":
            new = [fresh.pop() for _ in range(min(len(fresh), rng.randint(3, 25)))]
            again = rng.sample(live, min(len(live), rng.randint(0, 4)))  # new versions of live documents
            docs = [_record(d) for d in new] + [
                {"docid": d, "title": None, "text": f"revised {i} {rng.choice(live)} " + "w1 " * rng.randint(1, 5)}
                for d in again
            ]
            if not docs:
                continue
            plan.append({"op": "add", "docs": docs})
            live += [d.docid for d in new]
        elif kind == "delete" and len(live) > 10:
            gone = rng.sample(live, rng.randint(1, min(15, len(live) - 5)))
            plan.append({"op": "delete", "docids": gone})
            live = [d for d in live if d not in set(gone)]
        else:
            plan.append({"op": "merge"})
    return plan


def states(plan: list[dict]) -> list[dict[str, tuple]]:
    """The documents ({docid: (title, text)}) after each operation of the plan."""
    out: list[dict[str, tuple]] = []
    cur: dict[str, tuple] = {}
    for op in plan:
        cur = dict(cur)
        if op["op"] in ("build", "add"):
            if op["op"] == "build":
                cur = {}
            for d in op["docs"]:
                cur.pop(d["docid"], None)
                cur[d["docid"]] = (d["title"], d["text"])
        elif op["op"] == "delete":
            for d in op["docids"]:
                cur.pop(d, None)
        out.append(cur)
    return out


def _record(d: Document) -> dict:
    return {"docid": d.docid, "title": d.title, "text": d.text}


def _doc(docid: str, value: tuple) -> Document:
    return Document(docid, value[1], title=value[0])


# ------------------------------------------------------------------------------------------ the writer
def child(workdir: Path) -> None:
    """Run the plan in ``workdir/plan.json`` from where the journal says it stopped."""
    import rankstack
    from rankstack.index import build_inverted_index

    plan = json.loads((workdir / "plan.json").read_text())
    done = _journal(workdir)[0]
    index = workdir / "index"
    pause = float(os.environ.get("CRASH_HARNESS_PAUSE", "0"))  # the race: let readers in between commits
    print("ready", flush=True)
    with open(workdir / "journal", "a") as journal:
        for i in range(done + 1, len(plan)):
            _log(journal, f"begin {i}")
            op = plan[i]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if op["op"] == "build":
                    docs = [Document(d["docid"], d["text"], title=d["title"]) for d in op["docs"]]
                    build_inverted_index(docs, index, overwrite=True, show_progress=False).close()
                else:
                    with rankstack.open(index, verify=False) as idx:
                        if op["op"] == "add":
                            docs = [Document(d["docid"], d["text"], title=d["title"]) for d in op["docs"]]
                            idx.add(docs).close()
                        elif op["op"] == "delete":
                            idx.delete(op["docids"]).close()
                        else:
                            idx.merge().close()
            _log(journal, f"end {i}")
            time.sleep(pause)


def _log(journal, line: str) -> None:
    journal.write(line + "\n")
    journal.flush()
    os.fsync(journal.fileno())


def _journal(workdir: Path) -> tuple[int, int]:
    """(last operation finished, last operation begun), -1 for none."""
    done = begun = -1
    path = workdir / "journal"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "end":
                    done = max(done, int(parts[1]))
                elif parts[0] == "begin":
                    begun = max(begun, int(parts[1]))
    return done, begun


def _spawn(workdir: Path, pause: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CRASH_HARNESS_PAUSE=str(pause))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.index.crash_harness", "child", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


# ------------------------------------------------------------------------------------------ checks
def search_fingerprint(index, queries: list[str]) -> frozenset:
    """Every (query, docid, score) BM25 finds: a set, so ties in any order compare equal."""
    run = index.bm25(k=K)(Queries([str(i) for i in range(len(queries))], queries))
    return frozenset(zip(run.qid.tolist(), run.docid.tolist(), run.score.tolist(), strict=True))


def clean_fingerprint(state: dict[str, tuple], queries: list[str], scratch: Path) -> frozenset:
    from rankstack.index import build_inverted_index

    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        docs = [_doc(d, v) for d, v in state.items()]
        with build_inverted_index(docs, Path(tmp) / "clean", show_progress=False) as idx:
            return search_fingerprint(idx, queries)


def index_state(index) -> dict[str, tuple]:
    return {d.docid: (d.title, d.text) for d in index.iter_documents()}


@dataclass
class KillReport:
    kills: Counter = field(default_factory=Counter)  # operation in flight when killed -> count
    survived: int = 0
    completed_plans: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.kills.values())


def kill_run(
    pool: list[Document],
    queries: list[str],
    n_kills: int,
    scratch: Path,
    seed: int = 0,
    n_ops: int = 60,
    max_delay: float = 0.8,
    progress=None,
) -> KillReport:
    """Kill the writer ``n_kills`` times at random points; check the index after each kill."""
    import rankstack

    rng = random.Random(seed)
    report = KillReport()
    plan_seed = seed
    workdir, plan, plan_states, fingerprints = None, [], [], {}
    while report.total < n_kills:
        if workdir is None:
            plan_seed += 1
            workdir = Path(tempfile.mkdtemp(prefix="crash-", dir=scratch))
            plan = make_plan(pool, plan_seed, n_ops=n_ops)
            plan_states = states(plan)
            fingerprints = {}
            (workdir / "plan.json").write_text(json.dumps(plan))
        proc = _spawn(workdir)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            report.failures.append(f"child failed to start: {proc.communicate()[1][-2000:]}")
            break
        time.sleep(rng.uniform(0.0, max_delay))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        done, begun = _journal(workdir)
        if proc.returncode == 0:  # finished the plan before the kill: start another
            report.completed_plans += 1
            _remove(workdir)
            workdir = None
            continue
        if proc.returncode != -signal.SIGKILL:
            report.failures.append(f"writer failed (exit {proc.returncode}): {err[-2000:]}")
            break
        in_flight = plan[begun]["op"] if begun > done else "between operations"
        report.kills[in_flight] += 1
        allowed = [i for i in (done, done + 1) if 0 <= i < len(plan) and (i == done or begun == i)]
        problem = _check(workdir / "index", plan_states, allowed, queries, fingerprints, scratch, rankstack)
        if problem:
            report.failures.append(f"plan seed {plan_seed}, killed during {in_flight} (op {begun}): {problem}")
            break
        report.survived += 1
        if progress:
            progress(report)
    if workdir is not None:
        _remove(workdir)
    return report


def _check(index_dir, plan_states, allowed, queries, fingerprints, scratch, rankstack) -> str | None:
    if not (index_dir / "manifest.json").exists():
        return None if not allowed or (allowed == [0] and not index_dir.exists()) else f"no index, expected {allowed}"
    try:
        with rankstack.open(index_dir) as idx:  # verifies every checksum
            state = index_state(idx)
            got = search_fingerprint(idx, queries)
    except Exception as e:
        return f"the index does not open: {type(e).__name__}: {e}"
    match = [i for i in allowed if plan_states[i] == state]
    if not match:
        return f"documents equal no committed state (expected op {allowed}); {len(state)} documents"
    i = match[0]
    if i not in fingerprints:
        fingerprints[i] = clean_fingerprint(plan_states[i], queries, scratch)
    if got != fingerprints[i]:
        return f"search differs from a clean build of state {i}"
    return None


@dataclass
class RaceReport:
    iterations: int = 0
    mixed: int = 0
    errors: list[str] = field(default_factory=list)
    states_seen: set = field(default_factory=set)


def race(
    pool: list[Document], queries: list[str], seconds: float, scratch: Path, seed: int = 0, n_ops: int = 60
) -> RaceReport:
    """Readers open, search, wait and search again while a writer adds, deletes and merges (until the
    writer is through its ``n_ops`` updates or ``seconds`` have passed)."""
    import rankstack

    rng = random.Random(seed)
    report = RaceReport()
    workdir = Path(tempfile.mkdtemp(prefix="race-", dir=scratch))
    plan = make_plan(pool, seed, n_ops=n_ops)
    plan_states = states(plan)
    state_ids = {frozenset(s.items()): i for i, s in enumerate(plan_states)}
    fingerprints: dict[int, frozenset] = {}  # of clean builds, made for the states readers meet
    (workdir / "plan.json").write_text(json.dumps(plan))
    proc = _spawn(workdir, pause=0.05)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        while _journal(workdir)[0] < 0:  # wait for the first build
            time.sleep(0.01)
        end = time.monotonic() + seconds
        while time.monotonic() < end and proc.poll() is None:
            report.iterations += 1
            try:
                with rankstack.open(workdir / "index", verify=False) as idx:
                    first = search_fingerprint(idx, queries)
                    time.sleep(rng.uniform(0.0, 0.05))  # the writer commits and collects meanwhile
                    second = search_fingerprint(idx, queries)
                    state = index_state(idx)  # reads the stored documents: lazily opened files are still there
            except Exception as e:
                report.errors.append(f"{type(e).__name__}: {e}")
                continue
            i = state_ids.get(frozenset(state.items()))
            if i is not None and i not in fingerprints:
                fingerprints[i] = clean_fingerprint(plan_states[i], queries, scratch)
            if i is None or first != fingerprints[i] or second != first:
                report.mixed += 1
            else:
                report.states_seen.add(i)
        if proc.poll() not in (None, 0):
            report.errors.append(f"writer failed: {proc.communicate()[1][-2000:]}")
    finally:
        proc.kill()
        proc.wait()
        _remove(workdir)
    return report


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m tests.index.crash_harness child WORKDIR")
