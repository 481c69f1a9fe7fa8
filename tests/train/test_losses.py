"""Losses against the formulas computed by hand in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.train.losses import InBatchContrastiveLoss, MarginMSELoss

torch = pytest.importorskip("torch")


def _log_softmax_ce(scores: np.ndarray) -> float:
    """Mean over rows of -log softmax(row)[row index], the slow obvious way."""
    total = 0.0
    for i, row in enumerate(scores):
        total += -(row[i] - np.log(np.sum(np.exp(row))))
    return total / len(scores)


def _rand(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape).astype(np.float64))


def test_contrastive_matches_hand_computation_with_hard_negatives():
    q, p, n = _rand(4, 8, seed=1), _rand(4, 8, seed=2), _rand(3, 8, seed=3)
    loss = InBatchContrastiveLoss(scale=2.5)(q, p, n)
    scores = 2.5 * q.numpy() @ np.concatenate([p.numpy(), n.numpy()]).T
    assert loss.item() == pytest.approx(_log_softmax_ce(scores), rel=1e-9)


def test_contrastive_in_batch_only_and_per_query_negatives_flatten():
    q, p, n = _rand(3, 5, seed=4), _rand(3, 5, seed=5), _rand(3, 2, 5, seed=6)
    in_batch = InBatchContrastiveLoss(scale=1.0)(q, p)
    assert in_batch.item() == pytest.approx(_log_softmax_ce(q.numpy() @ p.numpy().T), rel=1e-9)
    flat = InBatchContrastiveLoss(scale=1.0)(q, p, n.reshape(6, 5))
    assert InBatchContrastiveLoss(scale=1.0)(q, p, n).item() == pytest.approx(flat.item(), rel=1e-12)


def test_ignored_columns_drop_out_of_the_softmax_but_the_target_never_does():
    q, p, n = _rand(3, 4, seed=7), _rand(3, 4, seed=8), _rand(2, 4, seed=9)
    ignore = torch.zeros(3, 5, dtype=torch.bool)
    ignore[0, 1] = True  # row 0 must not treat column 1 as a negative
    ignore[2, 2] = True  # the target of row 2: ignored request is overridden
    loss = InBatchContrastiveLoss(scale=3.0)(q, p, n, ignore).item()
    scores = 3.0 * q.numpy() @ np.concatenate([p.numpy(), n.numpy()]).T
    expected = [
        -(scores[0, 0] - np.log(np.exp(scores[0, [0, 2, 3, 4]]).sum())),
        -(scores[1, 1] - np.log(np.exp(scores[1]).sum())),
        -(scores[2, 2] - np.log(np.exp(scores[2]).sum())),
    ]
    assert loss == pytest.approx(np.mean(expected), rel=1e-9)


def test_contrastive_gradient_pulls_query_towards_its_positive():
    q = _rand(2, 4, seed=10).requires_grad_(True)
    p = _rand(2, 4, seed=11)
    InBatchContrastiveLoss()(q, p).backward()
    # a small step against the gradient raises each query's score with its own positive
    before = (q * p).sum(1)
    after = ((q - 1e-3 * q.grad) * p).sum(1)
    assert bool((after > before).all())


def test_margin_mse_matches_hand_computation():
    q, p, n = _rand(4, 6, seed=12), _rand(4, 6, seed=13), _rand(4, 6, seed=14)
    teacher = _rand(4, seed=15)
    loss = MarginMSELoss()(q, p, n, teacher).item()
    qn, pn, nn_, tn = q.numpy(), p.numpy(), n.numpy(), teacher.numpy()
    margins = (qn * pn).sum(1) - (qn * nn_).sum(1)
    assert loss == pytest.approx(np.mean((margins - tn) ** 2), rel=1e-9)


def test_margin_mse_with_several_negatives_per_query():
    q, p, n = _rand(2, 3, seed=16), _rand(2, 3, seed=17), _rand(2, 4, 3, seed=18)
    teacher = _rand(2, 4, seed=19)
    loss = MarginMSELoss()(q, p, n, teacher).item()
    qn, pn, nn_ = q.numpy(), p.numpy(), n.numpy()
    margins = np.array([[qn[b] @ pn[b] - qn[b] @ nn_[b, h] for h in range(4)] for b in range(2)])
    assert loss == pytest.approx(np.mean((margins - teacher.numpy()) ** 2), rel=1e-9)
    exact = MarginMSELoss()(q, p, n, torch.from_numpy(margins))
    assert exact.item() == pytest.approx(0.0, abs=1e-12)
