"""Training losses for bi-encoders, as small ``torch.nn.Module``s over embeddings.

The modules take embeddings, not models, so one loss serves a shared encoder, DPR-style separate towers and
any pooling; the trainer owns encoding. Scores are inner products: with normalised embeddings (what
all-MiniLM-L6-v2 and most sentence-transformers models produce) that is cosine similarity, which is why the
contrastive loss multiplies by a ``scale`` (an inverse temperature) before the softmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rankstack.errors import MissingExtraError

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - the [neural] extra brings torch
    raise MissingExtraError("torch", "neural") from None


class InBatchContrastiveLoss(nn.Module):
    """Cross-entropy of each query's positive against every other document in the batch.

    Row ``i`` of ``queries`` scores all columns ``[positives; negatives]``; the target is column ``i``.
    The positives of the other queries act as negatives for free (in-batch negatives, DPR: Karpukhin et al.,
    2020, "Dense Passage Retrieval for Open-Domain Question Answering"), and hard negatives (BM25- or
    model-mined) are extra columns shared by all queries, as in DPR and sentence-transformers'
    MultipleNegativesRankingLoss. ``scale`` multiplies the scores before the softmax (20 suits cosine scores).

    ``ignore`` ([B, B + N] booleans) marks columns that must not count as negatives for a row, e.g. a
    document that is also a judged positive of that query but belongs to another row; they get a score of
    minus infinity. The target column is never ignored.
    """

    def __init__(self, scale: float = 20.0):
        super().__init__()
        self.scale = float(scale)

    def forward(
        self,
        queries: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor | None = None,
        ignore: torch.Tensor | None = None,
    ) -> torch.Tensor:
        docs = (
            positives if negatives is None or len(negatives) == 0 else torch.cat([positives, negatives.flatten(0, -2)])
        )
        return in_batch_cross_entropy(queries @ docs.T * self.scale, ignore)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def in_batch_cross_entropy(scores: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of row ``i`` of ``scores [B, B + N]`` towards column ``i`` (its positive), with the
    ``ignore``d columns of each row (other rows' documents that are judged positives of it) left out: the
    in-batch softmax of ``InBatchContrastiveLoss``, for any model that scores every query against every
    column (inner products, ColBERT's MaxSim)."""
    target = torch.arange(len(scores), device=scores.device)
    if ignore is not None:
        ignore = ignore.clone()
        ignore[target, target] = False
        scores = scores.masked_fill(ignore, float("-inf"))
    return nn.functional.cross_entropy(scores, target)


def kl_distillation(student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``KL(softmax(teacher) || softmax(student))`` over the ``valid`` columns of each row."""
    neg_inf = torch.tensor(float("-inf"), dtype=student.dtype, device=student.device)
    log_q = torch.log_softmax(torch.where(valid, student, neg_inf), dim=-1)
    log_p = torch.log_softmax(torch.where(valid, teacher.to(student.dtype), neg_inf), dim=-1)
    terms = torch.where(valid, log_p.exp() * (log_p - log_q), torch.zeros_like(student))
    return terms.sum(dim=-1).mean()


class MarginMSELoss(nn.Module):
    """Mean squared error between the student's and a teacher's score margins.

    For a query, a positive and a negative the student margin is ``s(q, pos) - s(q, neg)``; the loss pulls
    it towards the teacher's margin on the same triple (Hofstätter et al., 2020, "Improving Efficient Neural
    Ranking Models with Cross-Architecture Knowledge Distillation"). Only margins are matched, so a
    cross-encoder teacher whose raw scores live on another scale still teaches the ranking. ``negatives``
    is ``[B, d]`` (one negative per query) or ``[B, H, d]``; ``teacher_margins`` is ``[B]`` or ``[B, H]``.
    """

    def forward(
        self,
        queries: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
        teacher_margins: torch.Tensor,
    ) -> torch.Tensor:
        pos = (queries * positives).sum(-1)
        if negatives.dim() == 3:
            neg = torch.einsum("bd,bhd->bh", queries, negatives)
            margin = pos.unsqueeze(1) - neg
        else:
            margin = pos - (queries * negatives).sum(-1)
        return nn.functional.mse_loss(margin, teacher_margins.to(margin.dtype))


# ------------------------------------------------------------------------------------------------ re-rankers
# Re-ranker losses take scores, not embeddings: ``scores`` is ``[B, 1 + n]``, column 0 the query's positive and
# columns 1.. its hard negatives (``valid`` marks the columns that hold a real negative). ``weights`` ``[B, 1 + n]``
# are per-pair curriculum weights (all ones without a curriculum).


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Σ w·ℓ / |mask|``: curriculum weights scale the loss down (MacAvaney et al., 2020, weight each sample's
    loss; a batch of hard samples early in training moves the model less), they are not renormalised away."""
    mask = mask.to(values.dtype)
    return (values * weights * mask).sum() / mask.sum().clamp(min=1)


def _log_complement(log_p: torch.Tensor) -> torch.Tensor:
    """``log(1 - p)`` from ``log p``, as ``log(-expm1(log p))``: exact where ``1 - e^{log p}`` would round to 0 or 1.

    ``log p`` is first capped at ``-1e-7`` (``p`` that rounds to 1 in float32 otherwise gives ``log 0``): a
    model that certain gets a finite loss of about 16 for the wrong label and no gradient from that pair.
    """
    return torch.log(-torch.expm1(log_p.clamp(max=-1e-7)))


class PointwiseLoss(nn.Module):
    """Binary cross-entropy of each pair's relevance label (positive 1, negatives 0): monoBERT's loss
    (Nogueira & Cho, 2019).

    One-logit heads give a logit ``s``: ``-[y log σ(s) + (1 - y) log(1 - σ(s))]``. Two-class heads and monoT5
    give ``s = log p(relevant)`` already (``log_probs=True``): ``-[y s + (1 - y) log(1 - e^s)]``.
    """

    def __init__(self, log_probs: bool = False):
        super().__init__()
        self.log_probs = bool(log_probs)

    def forward(self, scores: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        if self.log_probs:
            log_p = scores.clamp(max=-1e-7)
            losses = -(labels * log_p + (1 - labels) * _log_complement(log_p))
        else:
            losses = nn.functional.binary_cross_entropy_with_logits(scores, labels, reduction="none")
        return _weighted_mean(losses, weights, valid)


class PairwiseHingeLoss(nn.Module):
    """``max(0, margin - (s_pos - s_neg))`` over each (positive, negative) pair of a query: the pairwise
    ranking loss of RankSVM-style learning to rank, as used for BERT re-rankers by MacAvaney et al. (2020)."""

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = float(margin)

    def forward(self, scores: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        losses = (self.margin - (scores[:, :1] - scores[:, 1:])).clamp(min=0)
        return _weighted_mean(losses, _pair_weights(weights), valid[:, 1:])

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class LocalizedContrastiveLoss(nn.Module):
    """Localized contrastive estimation (Gao, Dai & Callan, 2021, "Rethink Training of BERT Rerankers in
    Multi-Stage Retrieval Pipeline"): softmax cross-entropy of the positive against ``n`` hard negatives drawn
    from the first stage's top results for the same query, ``-log(e^{s_pos} / Σ_{d ∈ group} e^{s_d})``.
    Under a curriculum a group weighs as its hardest (positive, negative) pair, ``min_j (w_pos + w_neg_j) / 2``
    (as MacAvaney et al.'s released code weighs a training group), so one hard pair is not averaged away."""

    def forward(self, scores: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        logits = scores.masked_fill(~valid.bool(), float("-inf"))
        losses = -logits.log_softmax(-1)[:, 0]
        negatives = valid[:, 1:].bool()
        group_weights = _pair_weights(weights).masked_fill(~negatives, float("inf")).min(-1).values
        has_negative = negatives.any(-1)
        return _weighted_mean(losses, group_weights.masked_fill(~has_negative, 0.0), has_negative)


class ScoreMarginMSELoss(nn.Module):
    """MarginMSE on a re-ranker's scores (Hofstätter et al., 2020): ``((s_pos - s_neg) - (t_pos - t_neg))²``
    per (positive, negative) pair, where ``t`` is the teacher's score. Only margins are matched, so a teacher
    on another scale (BM25, a fusion, a bigger cross-encoder) still teaches the order."""

    def forward(
        self, scores: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor, teacher: torch.Tensor
    ) -> torch.Tensor:
        student = scores[:, :1] - scores[:, 1:]
        target = (teacher[:, :1] - teacher[:, 1:]).to(student.dtype)
        return _weighted_mean((student - target) ** 2, _pair_weights(weights), valid[:, 1:])


# Pairwise (duo) re-rankers score an ordered pair: ``forward`` ``[B, n]`` holds ``log p(pos beats neg_j)`` for each
# query's positive against its negatives, ``backward`` ``[B, n]`` the reverse order ``log p(neg_j beats pos)``;
# ``valid`` and ``weights`` are ``[B, 1 + n]`` as above (column 0 the positive), and a pair weighs the mean of its two
# documents' weights, as in the pairwise hinge.


def _pair_weights(weights: torch.Tensor) -> torch.Tensor:
    """``[B, n]`` weights of the (positive, negative_j) pairs: the mean of the two documents' weights."""
    return (weights[:, :1] + weights[:, 1:]) / 2


class PreferenceLoss(nn.Module):
    """Binary cross-entropy of a pairwise model's preference, on both orders of each (positive, negative)
    pair: duoBERT's training (Nogueira, Yang, Cho & Lin, 2019, "Multi-Stage Document Ranking with BERT"),
    where ``(q, d⁺, d⁻)`` has label 1 ("the first document is the more relevant") and ``(q, d⁻, d⁺)`` label 0.
    Per pair, averaging the two orders::

        ℓ = -½ [log p(d⁺ ≻ d⁻) + log(1 - p(d⁻ ≻ d⁺))]

    with ``log(1 - p) = log(-expm1(log p))``. Showing both orders is what teaches the model that position
    carries no relevance (a model fed only relevant-first pairs learns to always answer "the first").
    """

    def forward(
        self, forward: torch.Tensor, backward: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        losses = -(forward + _log_complement(backward)) / 2
        return _weighted_mean(losses, _pair_weights(weights), valid[:, 1:])


class PreferenceMarginMSELoss(nn.Module):
    """MarginMSE (Hofstätter et al., 2020) for a pairwise student, read through the Bradley–Terry model.

    A teacher that scores documents one at a time implies, under Bradley & Terry (1952), the preference
    ``p(a ≻ b) = σ(t_a - t_b)``, i.e. log-odds equal to its margin. So the pairwise student's log-odds
    ``L(a, b) = log p(a ≻ b) - log(1 - p(a ≻ b))`` play the role of the pointwise student's margin
    ``s_a - s_b``, and both orders of each pair are matched::

        ℓ = ½ [(L(d⁺, d⁻) - Δt)² + (L(d⁻, d⁺) + Δt)²],    Δt = t(d⁺) - t(d⁻)

    ``teacher`` ``[B, 1 + n]`` holds the teacher's scores (column 0 the positive). Only margins count, so the
    teacher's scale is kept as it is: a BM25 margin of 5 asks for ``p ≈ σ(5) ≈ 0.993``.
    """

    def forward(
        self,
        forward: torch.Tensor,
        backward: torch.Tensor,
        valid: torch.Tensor,
        weights: torch.Tensor,
        teacher: torch.Tensor,
    ) -> torch.Tensor:
        margin = (teacher[:, :1] - teacher[:, 1:]).to(forward.dtype)

        def log_odds(log_p: torch.Tensor) -> torch.Tensor:
            return log_p.clamp(max=-1e-7) - _log_complement(log_p)

        losses = ((log_odds(forward) - margin) ** 2 + (log_odds(backward) + margin) ** 2) / 2
        return _weighted_mean(losses, _pair_weights(weights), valid[:, 1:])


def generation_loss(model: nn.Module, tokenizer: Any, sources: Sequence[str], targets: Sequence[str], max_length: int,
                    target_max_length: int) -> torch.Tensor:  # fmt: skip
    """Teacher-forced cross-entropy of each target text given its source for a sequence-to-sequence ``model``
    (doc2query's task, and GDMTL's generative one); padding is no target."""
    src = tokenizer(list(sources), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    tgt = tokenizer(list(targets), truncation=True, max_length=target_max_length, padding=True, return_tensors="pt")
    labels = tgt["input_ids"].masked_fill(tgt["attention_mask"] == 0, -100)
    device = next(model.parameters()).device
    out = model(input_ids=src["input_ids"].to(device), attention_mask=src["attention_mask"].to(device),
                labels=labels.to(device))  # fmt: skip
    return out.loss
