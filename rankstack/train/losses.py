"""Training losses for bi-encoders, as small ``torch.nn.Module``s over embeddings.

The modules take embeddings, not models, so one loss serves a shared encoder, DPR-style separate towers and
any pooling; the trainer owns encoding. Scores are inner products: with normalised embeddings (what
all-MiniLM-L6-v2 and most sentence-transformers models produce) that is cosine similarity, which is why the
contrastive loss multiplies by a ``scale`` (an inverse temperature) before the softmax.
"""

from __future__ import annotations

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
        scores = queries @ docs.T * self.scale
        target = torch.arange(len(queries), device=queries.device)
        if ignore is not None:
            ignore = ignore.clone()
            ignore[target, target] = False
            scores = scores.masked_fill(ignore, float("-inf"))
        return nn.functional.cross_entropy(scores, target)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


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
