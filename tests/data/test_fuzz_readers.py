"""Fuzzed readers: byte-level mutations of real files raise only documented errors naming file and line.

``RANKSTACK_FUZZ_EXAMPLES`` raises the number of cases per reader (``benchmarks/bench_fuzz.py`` counts
a long run); see tests/data/fuzz_cases.py for the contract.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.data.fuzz_cases import (
    CASES,
    DATA,
    INTERESTING,
    KINDS,
    check,
    check_index_file,
    check_manifest,
    manifest_index,
)

EXAMPLES = int(os.environ.get("RANKSTACK_FUZZ_EXAMPLES", "60"))
MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(min_value=0, max_value=1 << 20),
        st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=8)),
    ),
    min_size=1,
    max_size=4,
)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

pytestmark = pytest.mark.skipif(not (DATA / "scifact").exists(), reason="needs ../shared/data")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_damaged_file_raises_only_documented_errors(case, tmp_path):
    seed = case.seed()
    if seed is None:
        pytest.skip("seed file comes from the capreolus wheel, not fetched")
    assert check(case, seed, [], tmp_path) is None  # the real file itself reads

    @FUZZ
    @given(mutations=MUTATIONS)
    def fuzz(mutations):
        problem = check(case, seed, mutations, tmp_path)
        assert problem is None, problem

    fuzz()


def test_a_damaged_manifest_raises_index_format_error(tmp_path):
    index = manifest_index(tmp_path)
    seed = (index / "manifest.json").read_bytes()

    @FUZZ
    @given(mutations=MUTATIONS)
    def fuzz(mutations):
        problem = check_manifest(index, seed, mutations)
        assert problem is None, problem

    fuzz()


def test_a_damaged_index_file_fails_its_checksum_by_name(tmp_path):
    index = manifest_index(tmp_path)

    @FUZZ
    @given(mutations=MUTATIONS, pick=st.integers(min_value=0, max_value=100))
    def fuzz(mutations, pick):
        problem = check_index_file(index, mutations, pick)
        assert problem is None, problem

    fuzz()
