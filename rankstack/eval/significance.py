"""Paired significance tests over per-query scores, and multiple-comparison corrections.

IR compares systems on the same queries, so tests are paired. Smucker, Allan & Carterette, "A comparison of
statistical significance tests for information retrieval evaluation" (CIKM 2007) found the paired t-test
and the randomisation (permutation) test agree closely and recommend the latter when in doubt. When several
systems are compared against one baseline, p-values are corrected with Holm's step-down method (Holm, "A
simple sequentially rejective multiple test procedure", Scand. J. Statistics 1979), which controls the
family-wise error rate like Bonferroni but rejects more often.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import numpy as np

Correction = Literal["holm", "bonferroni"] | None


def paired_t_test(system: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of a paired t-test (``scipy.stats.ttest_rel``).

    When every difference is exactly zero scipy returns NaN (the statistic is 0/0); this returns 1.0, since
    the data give no evidence of a difference, so corrections and tables stay numeric.
    """
    from scipy import stats

    a, b = _paired(system, baseline)
    if len(a) < 2:
        return float("nan")
    if np.all(a == b):
        return 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def permutation_test(
    system: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided p-value of a paired randomisation test on the mean difference (Smucker et al., 2007).

    Under the null hypothesis each query's two scores are exchangeable, so the sign of each difference is a
    coin flip. With 2^n <= ``n_resamples`` all sign patterns are enumerated and the p-value is exact (the
    share with |mean| at least the observed one); otherwise ``n_resamples`` random patterns are drawn from a
    generator seeded with ``seed`` and the p-value is (hits + 1) / (n_resamples + 1), which counts the
    observed pattern and is never 0 (Phipson & Smyth, 2010).
    """
    a, b = _paired(system, baseline)
    diff = a - b
    n = len(diff)
    if n == 0:
        return float("nan")
    observed = abs(diff.mean())
    tolerance = 1e-12 * max(1.0, observed)  # equal means computed in different orders must count as ties
    if 2**n <= n_resamples:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ diff) / n >= observed - tolerance))
    rng = np.random.default_rng(seed)
    hits = 0
    for done in range(0, n_resamples, 1000):  # chunks keep memory at 1000 x n
        size = min(1000, n_resamples - done)
        signs = rng.choice((-1.0, 1.0), size=(size, n))
        hits += int(np.sum(np.abs(signs @ diff) / n >= observed - tolerance))
    return (hits + 1) / (n_resamples + 1)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values: sorted ascending, the i-th (from 0) becomes max over j <= i of (m - j) p_(j),
    capped at 1. NaN p-values are left out of m and stay NaN (same as statsmodels' ``multipletests``)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def bonferroni(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Bonferroni-adjusted p-values: each multiplied by the number of (non-NaN) tests, capped at 1."""
    p = np.asarray(pvalues, dtype=float)
    return np.minimum(p * np.count_nonzero(~np.isnan(p)), 1.0)


def correct(pvalues: Sequence[float] | np.ndarray, method: Correction) -> np.ndarray:
    """Apply ``method`` ("holm", "bonferroni" or None for no correction)."""
    if method is None:
        return np.asarray(pvalues, dtype=float)
    if method == "holm":
        return holm(pvalues)
    if method == "bonferroni":
        return bonferroni(pvalues)
    raise ValueError(f"unknown correction {method!r}; use 'holm', 'bonferroni' or None")


def _paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired tests need two 1-d arrays of equal length, got shapes {x.shape} and {y.shape}")
    return x, y
