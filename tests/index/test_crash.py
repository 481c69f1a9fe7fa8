"""A short run of the crash harness (benchmarks/bench_crash.py runs the long one): kill -9 at random
points of build, add, delete and merge loses nothing committed; readers racing a writer never see a mix."""

from __future__ import annotations

import pytest

from tests.helpers import random_docs, random_queries
from tests.index.crash_harness import kill_run, make_plan, race, states

pytestmark = pytest.mark.slow


def _pool():
    return random_docs(400, seed=7, max_len=40)


def test_plans_cover_every_operation():
    plan = make_plan(_pool(), seed=3, n_ops=30)
    assert {op["op"] for op in plan} == {"build", "add", "delete", "merge"}
    after = states(plan)
    assert len(after) == len(plan) and after[0] and after[-1] != after[0]


def test_killed_writers_lose_nothing_committed(tmp_path):
    report = kill_run(_pool(), random_queries(12), n_kills=12, scratch=tmp_path, seed=1, n_ops=12, max_delay=1.0)
    assert not report.failures, report.failures
    assert report.survived == report.total == 12
    assert set(report.kills) - {"between operations"}  # some kills landed inside an operation


def test_readers_racing_a_writer_never_see_a_mix(tmp_path):
    report = race(_pool(), random_queries(12), seconds=8.0, scratch=tmp_path, seed=2, n_ops=40)
    assert not report.errors, report.errors[:3]
    assert report.mixed == 0
    assert report.iterations >= 3 and len(report.states_seen) >= 2  # coverage, whatever the machine's speed
