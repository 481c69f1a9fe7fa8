from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from rankstack.eval import bonferroni, holm, paired_t_test, permutation_test


def test_t_test_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(50), rng.random(50)
    assert paired_t_test(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_t_test_of_identical_systems_is_one() -> None:
    assert paired_t_test([0.1, 0.5, 0.2], [0.1, 0.5, 0.2]) == 1.0


def test_exact_permutation_test_enumerates_every_sign_pattern() -> None:
    a = np.array([0.3, 0.5, 0.1, 0.9, 0.4, 0.7])
    b = np.array([0.2, 0.6, 0.1, 0.5, 0.1, 0.6])
    d = a - b
    patterns = [np.array(s) for s in itertools.product((1, -1), repeat=len(d))]
    by_hand = np.mean([abs((s * d).mean()) >= abs(d.mean()) - 1e-12 for s in patterns])
    assert permutation_test(a, b) == pytest.approx(by_hand)


def test_sampled_permutation_test_is_seeded_and_close_to_t_test() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(100)
    b = a - 0.05 + rng.normal(0, 0.2, 100)
    p1 = permutation_test(a, b, n_resamples=20_000, seed=3)
    assert p1 == permutation_test(a, b, n_resamples=20_000, seed=3)
    assert p1 == pytest.approx(paired_t_test(a, b), abs=0.02)


def test_holm_against_values_worked_by_hand() -> None:
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted: 0.005, 0.01, 0.03, 0.04
    # scaled by 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max: 0.02, 0.03, 0.06, 0.06
    # (statsmodels.stats.multitest.multipletests(p, method="holm") gives the same)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # 2 x 0.5, then max(1.0, 0.6) capped at 1
    out = holm([0.02, np.nan, 0.01])
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_bonferroni() -> None:
    assert bonferroni([0.01, 0.3]) == pytest.approx([0.02, 0.6])
