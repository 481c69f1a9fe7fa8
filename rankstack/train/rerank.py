"""Training re-rankers (cross-encoders, monoT5, query likelihood, duoBERT, duoT5): pointwise, pairwise,
localized contrastive and MarginMSE losses over first-stage hard negatives, with an optional BM25 curriculum.

Each optimisation step takes ``batch_size`` (query, positive) examples, draws ``num_negatives`` hard negatives
per query from its first-stage pool (a (seed, step) draw, so a resumed run repeats it exactly), scores all
pairs in one batch through the model's ``pair_scores(queries, docs)`` and applies the chosen loss to the
``[B, 1 + n]`` score matrix. The loop itself (schedule, checkpoints, exact resume) is the bi-encoders' one.

Pairwise models (a ``rankstack.rerank.PairwiseReranker``: ``DuoCrossEncoder``, ``DuoT5``) score an ordered
pair, ``pair_scores(queries, docs_a, docs_b) = log p(a beats b)``. Each sampled (query, positive, negative)
gives two inputs, ``(q, pos, neg)`` with the label "a wins" and ``(q, neg, pos)`` with "b wins" (duoBERT's
training, Nogueira et al. 2019), all scored in one batch. ``loss="pointwise"`` is then the binary
cross-entropy of those labels (``losses.PreferenceLoss``) and ``loss="margin_mse"`` matches the model's
log-odds to the teacher's margin (``losses.PreferenceMarginMSELoss``); ``"pairwise"`` and ``"lce"`` compare
single documents' scores, which a pairwise model does not give, and are refused.

What a pointwise scorer's numbers mean decides which losses apply (``score_kind``): binary cross-entropy
needs a relevance logit or ``log p(relevant)``; a score that only orders documents (a query log-likelihood)
trains with the ranking losses only.

Curriculum (MacAvaney et al., 2020, "Training Curricula for Open Domain Answer Re-Ranking"): each training
pair gets a difficulty weight ``D`` in [0, 1] from the first stage (1 = easy: a positive BM25 ranks high, a
negative BM25 ranks low), and its loss weight ``W = D + min(1, step / m) · (1 − D)`` rises to 1 by step ``m``
(``curriculum_ratio`` of all steps), so the model learns the easy cases first. Heuristics: ``"recip"``
(``D = 1/rank`` for positives, ``1 − 1/rank`` for negatives; unretrieved positives 0, unretrieved negatives 1)
and ``"norm"`` (the same with the query's min-max normalised BM25 score in place of ``1/rank``).
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.errors import MissingExtraError
from rankstack.index import InvertedIndex
from rankstack.pipeline import Stage
from rankstack.rerank.duo import PairwiseReranker
from rankstack.train.api import _bm25_index, _documents
from rankstack.train.examples import DocSource, Example, TrainingSet, doc_texts
from rankstack.train.losses import (
    LocalizedContrastiveLoss,
    PairwiseHingeLoss,
    PointwiseLoss,
    PreferenceLoss,
    PreferenceMarginMSELoss,
    ScoreMarginMSELoss,
    generation_loss,
)
from rankstack.train.trainer import LoopSettings, TrainingLoop
from rankstack.types import Qrels, Queries, Ranking

try:
    import torch
except ImportError:  # pragma: no cover - the [neural] extra brings torch
    raise MissingExtraError("torch", "neural") from None

log = logging.getLogger(__name__)

RerankLoss = Literal["pointwise", "pairwise", "lce", "margin_mse"]
Curriculum = Literal["recip", "norm"]
LOSSES: tuple[str, ...] = ("pointwise", "pairwise", "lce", "margin_mse")
ScoreKind = Literal["logit", "log_prob", "score"]
SCORE_KINDS: tuple[str, ...] = ("logit", "log_prob", "score")
#: the losses a pairwise (duo) model trains with (see the module docstring)
PAIRWISE_LOSSES: tuple[str, ...] = ("pointwise", "margin_mse")


@dataclass(frozen=True)
class RerankConfig(LoopSettings):
    """Every knob of a re-ranker training run; saved into ``trainer_state.json``.

    ``loss``: ``"pointwise"`` (binary cross-entropy), ``"pairwise"`` (hinge with ``margin``), ``"lce"``
    (softmax over the positive and ``num_negatives`` hard negatives), ``"margin_mse"`` (needs a teacher). A
    pairwise (duo) model trains with ``"pointwise"`` (cross-entropy of "which of the two is the positive", both
    orders) or ``"margin_mse"`` (its log-odds against the teacher's margin); see the module docstring.
    ``head_learning_rate``: the rate (same schedule) for the classification head and pooler, which start from
    scratch on a bare encoder: at the encoder's rate a fresh head needs hundreds of steps before the loss
    moves (None: one rate for all). ``negative_depth``: how deep in the first stage's ranking negatives are
    drawn from. ``max_length`` /
    ``query_max_length``: the pair window during training (shorter than inference is cheaper and usually
    enough). ``curriculum``: None, ``"recip"`` or ``"norm"``, annealed to uniform weights over the first
    ``curriculum_ratio`` of the steps. ``batch_size`` counts queries; a step scores ``batch_size × (1 + n)``
    pairs. ``max_examples``: train on a seeded sample of that many (query, positive) examples (every judgment
    still counts as a positive, so no judged document is ever drawn as a negative): a budget for collections
    with more judgments than a CPU can get through (NFCorpus: ~110k). ``max_per_query``: at most that many
    examples per query, sampled first (``TrainingSet.sample``: a uniform sample of NFCorpus' judgments trains
    mostly on a few broad topic queries). ``positive_depth``: train only on positives the first stage ranks
    within that depth, the candidates the re-ranker will be given (``TrainingSet.retrieved_by``; on NFCorpus,
    where BM25's top 100 holds a quarter of the judged positives, training on all of them makes a re-ranker
    worse than BM25). ``generation_weight``: multitask discriminative + generative training (GDMTL-style) for
    a sequence-to-sequence re-ranker (monoT5): the same model also learns to generate each positive's query from
    ``Document: {text}`` (doc2query's task), and that cross-entropy, times this weight, joins the ranking loss.
    """

    epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 3e-5
    head_learning_rate: float | None = 1e-3
    loss: RerankLoss = "lce"
    num_negatives: int = 7
    margin: float = 1.0
    negative_depth: int = 100
    max_length: int = 256
    query_max_length: int = 64
    curriculum: Curriculum | None = None
    curriculum_ratio: float = 0.5
    max_examples: int | None = None
    max_per_query: int | None = None
    positive_depth: int | None = None
    generation_weight: float = 0.0
    seed: int = 42
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.curriculum not in (None, "recip", "norm"):
            raise ValueError(f"curriculum must be None, 'recip' or 'norm', not {self.curriculum!r}")
        if self.loss != "pointwise" and self.num_negatives < 1:
            raise ValueError(f"loss={self.loss!r} compares positives with negatives: num_negatives must be >= 1")
        if not 0.0 <= self.warmup_ratio < 1.0 or not 0.0 < self.curriculum_ratio <= 1.0:
            raise ValueError("warmup_ratio must be in [0, 1) and curriculum_ratio in (0, 1]")
        if any(n is not None and n < 1 for n in (self.max_examples, self.max_per_query, self.positive_depth)):
            raise ValueError("max_examples, max_per_query and positive_depth must be at least 1 (or None)")
        if min(self.num_negatives, self.negative_depth, self.log_every, self.save_every) < 0:
            raise ValueError("num_negatives, negative_depth, log_every and save_every must be >= 0")
        if self.max_length < 8 or self.query_max_length < 1:
            raise ValueError("max_length must be at least 8 tokens and query_max_length at least 1")
        if self.generation_weight < 0:
            raise ValueError("generation_weight must be >= 0")


# ------------------------------------------------------------------------------------------------ data
def first_stage_pools(
    run: Ranking, positives: Mapping[str, Sequence[str] | frozenset[str]], depth: int
) -> dict[str, list[str]]:
    """Each query's top ``depth`` non-positive docids of a first-stage ``run``, best first."""
    docids = run.docid.tolist()
    pools: dict[str, list[str]] = {}
    for qid, rows in run.groups():
        judged = positives.get(qid, ())
        pools[qid] = [d for d in docids[rows] if d not in judged][:depth]
    return pools


def curriculum_difficulty(
    run: Ranking, positives: Mapping[str, Sequence[str] | frozenset[str]], heuristic: Curriculum = "recip"
) -> dict[str, dict[str, float]]:
    """qid -> docid -> easiness ``D`` in [0, 1] of every document the first stage ranked (see the module doc);
    documents the run does not hold are looked up by the trainer with the defaults 0 (positive) / 1 (negative)."""
    out: dict[str, dict[str, float]] = {}
    docids, ranks, scores = run.docid.tolist(), run.rank, run.score
    for qid, rows in run.groups():
        if heuristic == "recip":
            closeness = 1.0 / ranks[rows].astype(np.float64)
        else:
            s = scores[rows]
            span = float(s.max() - s.min())
            closeness = (s - s.min()) / span if span > 0 else np.ones(len(s))
        judged = positives.get(qid, ())
        out[qid] = {
            d: float(c if d in judged else 1.0 - c) for d, c in zip(docids[rows], closeness.tolist(), strict=True)
        }
    return out


def teacher_scores(
    teacher: Stage, queries: Mapping[str, str], candidates: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, float]]:
    """qid -> docid -> the teacher stage's score for every candidate, for MarginMSE.

    The teacher gets a Ranking of the candidates: a re-ranker scores exactly them; a retriever (BM25, dense, a
    fusion of both) ranks the collection for the query, and a candidate it did not return gets the lowest
    score it gave that query (it ranked below everything returned)."""
    q, d, s = [], [], []
    for qid, docs in candidates.items():
        for i, docid in enumerate(dict.fromkeys(docs)):
            q.append(qid)
            d.append(docid)
            s.append(-float(i))
    run = Ranking(q, d, s, queries=Queries.from_dict({k: queries[k] for k in candidates}))
    out = teacher(run)
    got: dict[str, dict[str, float]] = out.to_dict()
    scores: dict[str, dict[str, float]] = {}
    unscored = 0
    for qid, docs in candidates.items():
        mine = got.get(qid, {})
        floor = min(mine.values()) if mine else 0.0
        unscored += sum(1 for doc in docs if doc not in mine)
        scores[qid] = {doc: float(mine.get(doc, floor)) for doc in docs}
    if unscored:
        log.info("teacher: %d candidates were not returned by the teacher and get its lowest score", unscored)
    return scores


# ------------------------------------------------------------------------------------------------ the trainer
def score_kind(reranker: Any) -> ScoreKind:
    """What a pointwise scorer's ``pair_scores`` are, which decides the losses it can train with.

    - ``"logit"``: a relevance logit, ``p(relevant) = σ(s)`` (a one-logit ``CrossEncoder``);
    - ``"log_prob"``: ``s = log p(relevant)`` (a two-class ``CrossEncoder``, ``MonoT5``);
    - ``"score"``: a number that only orders a query's documents (``QueryLikelihood``'s query log-likelihood,
      which is a log-probability of the *query*, not of relevance).

    A scorer declares it with a ``score_kind`` attribute; without one, ``scores_are_log_probs`` (what
    ``CrossEncoder`` and ``MonoT5`` say, and what ``PassageReranker``'s PCGM reads) gives ``"log_prob"`` when
    true and ``"logit"`` when false; a scorer that says neither is taken as ``"score"``, the kind that claims
    nothing. Binary cross-entropy (``loss="pointwise"``) needs ``"logit"`` or ``"log_prob"``: on a
    query likelihood it would push every negative document's query likelihood towards zero, a different task.
    """
    kind = getattr(reranker, "score_kind", None)
    if kind is not None:
        if kind not in SCORE_KINDS:
            raise ValueError(f"{type(reranker).__name__}.score_kind must be one of {SCORE_KINDS}, not {kind!r}")
        return kind  # type: ignore[return-value]
    if hasattr(reranker, "scores_are_log_probs"):
        return "log_prob" if reranker.scores_are_log_probs else "logit"
    return "score"


def check_loss(reranker: Any, config: RerankConfig) -> None:
    """Refuse, with what to use instead, a loss that does not apply to ``reranker`` (module docstring)."""
    name = type(reranker).__name__
    pairwise = isinstance(reranker, PairwiseReranker)
    seq2seq = getattr(getattr(getattr(reranker, "model", None), "config", None), "is_encoder_decoder", False)
    if config.generation_weight > 0 and (pairwise or not seq2seq):
        raise ValueError(
            f"generation_weight applies to a pointwise sequence-to-sequence re-ranker (MonoT5), which can also "
            f"generate queries; {name} cannot"
        )
    if pairwise:
        if config.loss not in PAIRWISE_LOSSES:
            raise ValueError(
                f"{name} is a pairwise model (it scores p(a beats b), not one document), so loss={config.loss!r}, "
                "which compares single documents' scores, does not apply; use loss='pointwise' (binary "
                "cross-entropy on both orders of each (positive, negative) pair, duoBERT's training) or "
                "loss='margin_mse' (its log-odds matched to a teacher's score margin)"
            )
        if config.num_negatives < 1:
            raise ValueError(f"{name} learns from (positive, negative) pairs: num_negatives must be >= 1")
    elif config.loss == "pointwise" and score_kind(reranker) == "score":
        raise ValueError(
            f"{name}'s scores are neither a relevance logit nor log p(relevant) (score_kind 'score': e.g. a query "
            "log-likelihood), so binary cross-entropy (loss='pointwise') has no label to fit; use loss='lce', "
            "'pairwise' or 'margin_mse', which only need scores that order documents (a scorer whose scores are "
            "logits or log-probabilities declares score_kind = 'logit' or 'log_prob')"
        )


class RerankerTrainer(TrainingLoop):
    """Train ``reranker`` in place on ``data``; its hard-negative pools come from the first stage.

    ``reranker``: anything with ``pair_scores``, a ``.model`` torch module and ``.save(directory)``: a pointwise
    scorer (``CrossEncoder``, ``MonoT5``, ``QueryLikelihood``: ``pair_scores(queries, docs) -> [B]``) or a
    ``PairwiseReranker`` (``DuoCrossEncoder``, ``DuoT5``: ``pair_scores(queries, docs_a, docs_b) -> log p(a
    beats b)``). Which losses apply depends on it (module docstring, ``score_kind``); others are refused here.
    ``difficulty`` (from ``curriculum_difficulty``) is needed when ``config.curriculum`` is set; ``data.teacher``
    when ``config.loss == "margin_mse"``. Cached scores of the re-ranker are dropped when training ends.
    """

    def __init__(
        self,
        reranker: Any,
        data: TrainingSet,
        config: RerankConfig,
        output_dir: str | os.PathLike[str],
        *,
        difficulty: Mapping[str, Mapping[str, float]] | None = None,
    ):
        if config.loss == "margin_mse" and not data.teacher:
            raise ValueError("loss='margin_mse' needs teacher scores (TrainingSet.teacher; train_reranker(teacher=...))")
        if config.curriculum is not None and difficulty is None:
            raise ValueError("a curriculum needs first-stage difficulties (curriculum_difficulty(run, positives))")
        check_loss(reranker, config)
        self.pairwise = isinstance(reranker, PairwiseReranker)
        kind = None if self.pairwise else score_kind(reranker)
        self.loss_fn: torch.nn.Module = {
            "pointwise": lambda: PreferenceLoss() if self.pairwise else PointwiseLoss(kind == "log_prob"),
            "pairwise": lambda: PairwiseHingeLoss(config.margin),
            "lce": LocalizedContrastiveLoss,
            "margin_mse": lambda: PreferenceMarginMSELoss() if self.pairwise else ScoreMarginMSELoss(),
        }[config.loss]()
        self.reranker = reranker
        self.difficulty = difficulty or {}
        self._view = _training_view(reranker, config)
        super().__init__(reranker, [reranker.model], data, config, output_dir)

    def fresh_parameters(self) -> list[torch.nn.Parameter]:
        """What starts from scratch and so trains at ``head_learning_rate`` (the loop splits it off): what the
        re-ranker names itself (``reranker.fresh_parameters()``, e.g. a cascade's exits on a trained
        cross-encoder), else the head made for a bare encoder (``reranker.fresh_head``): everything outside the
        base model, and the pooler. A checkpoint's trained head fine-tunes at ``learning_rate`` like the rest.

        Only a model whose base model is a child module (``BertForSequenceClassification.bert``) has a head
        to split off. A sequence-to-sequence or causal language model (monoT5, duoT5, query likelihood) names
        a ``base_model_prefix`` it does not hold, and its language-modelling head is the pretrained (tied)
        embedding matrix, not a fresh layer: all of it trains at ``learning_rate``.
        """
        named = getattr(self.reranker, "fresh_parameters", None)
        if callable(named):
            return list(named())
        model = self.reranker.model
        prefix = getattr(model, "base_model_prefix", "")
        if not getattr(self.reranker, "fresh_head", False) or prefix not in dict(model.named_children()):
            return []
        return [p for name, p in model.named_parameters() if name.split(".")[0] != prefix or ".pooler." in f".{name}"]

    def curriculum_weight(self, qid: str, docid: str, positive: bool, step: int) -> float:
        if self.config.curriculum is None:
            return 1.0
        easiness = self.difficulty.get(qid, {}).get(docid, 0.0 if positive else 1.0)
        horizon = max(1, round(self.config.curriculum_ratio * self.total_steps))
        return easiness + min(1.0, step / horizon) * (1.0 - easiness)

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.config.seed, step, 1])
        texts, pools = self.data.texts, self.data.negatives
        groups = [[e.positive, *self._sample(pools.get(e.qid, ()), rng)] for e in examples]
        if self.pairwise or self.config.loss != "pointwise":
            keep = [i for i, g in enumerate(groups) if len(g) > 1]
            if not keep:  # no query of this batch has a negative: nothing to compare, a no-op step
                return self.no_op_loss()
            examples, groups = [examples[i] for i in keep], [groups[i] for i in keep]
        width = max(len(g) for g in groups)
        valid = torch.zeros((len(groups), width))
        weights = torch.ones((len(groups), width))
        teacher = torch.zeros((len(groups), width), dtype=torch.float64)
        for row, (e, g) in enumerate(zip(examples, groups, strict=True)):
            valid[row, : len(g)] = 1.0
            for col, d in enumerate(g):
                weights[row, col] = self.curriculum_weight(e.qid, d, col == 0, step)
                if self.data.teacher is not None:
                    teacher[row, col] = self.data.teacher.get(e.qid, {}).get(d, 0.0)
        if self.pairwise:
            return self._preference_loss(examples, groups, valid, weights, teacher)
        queries = [e.query for e, g in zip(examples, groups, strict=True) for _ in g]
        docs = [texts[d] for g in groups for d in g]
        with warnings.catch_warnings():  # in training, truncation is the intent
            warnings.filterwarnings("ignore", message=r".*max_length")
            flat = self._view.pair_scores(queries, docs).float()  # the loss in fp32 under bf16 autocast
        if flat.dim() == 2:  # one column per exit (a cascade): the exits' losses, averaged, train them jointly
            loss = torch.stack([self._score_loss(flat[:, j], groups, valid, weights, teacher)
                                for j in range(flat.shape[1])]).mean()  # fmt: skip
        else:
            loss = self._score_loss(flat, groups, valid, weights, teacher)
        if self.config.generation_weight > 0:
            loss = loss + self.config.generation_weight * self._generation_loss(examples)
        return loss

    def _generation_loss(self, examples: Sequence[Example]) -> torch.Tensor:
        """Cross-entropy of generating each example's query from its positive's text (GDMTL's generative task)."""
        texts = [f"Document: {self.data.texts[e.positive]}" for e in examples]
        return generation_loss(self.reranker.model, self._view.tokenizer, texts, [e.query for e in examples],
                               self._view.max_length, self._view.query_max_length)  # fmt: skip

    def _score_loss(
        self,
        flat: torch.Tensor,
        groups: Sequence[Sequence[str]],
        valid: torch.Tensor,
        weights: torch.Tensor,
        teacher: torch.Tensor,
    ) -> torch.Tensor:
        """A pointwise scorer's loss from its flat scores, laid out as ``[queries, 1 + negatives]``."""
        width = valid.shape[1]
        scores = flat.new_full((len(groups), width), float("-inf") if self.config.loss == "lce" else 0.0)
        pos = 0
        for row, g in enumerate(groups):
            scores[row, : len(g)] = flat[pos : pos + len(g)]
            pos += len(g)
        valid, weights = valid.to(flat), weights.to(flat)
        if self.config.loss == "margin_mse":
            return self.loss_fn(scores, valid, weights, teacher.to(flat.device))
        return self.loss_fn(scores, valid, weights)

    def _preference_loss(
        self,
        examples: Sequence[Example],
        groups: Sequence[Sequence[str]],
        valid: torch.Tensor,
        weights: torch.Tensor,
        teacher: torch.Tensor,
    ) -> torch.Tensor:
        """A pairwise model's loss: both orders of every (positive, negative) pair, scored in one batch."""
        texts = self.data.texts
        queries: list[str] = []
        first: list[str] = []
        second: list[str] = []
        for e, g in zip(examples, groups, strict=True):
            for neg in g[1:]:  # rows 2m, 2m + 1: (q, pos, neg) "a wins", then (q, neg, pos) "b wins"
                queries += [e.query, e.query]
                first += [texts[g[0]], texts[neg]]
                second += [texts[neg], texts[g[0]]]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*max_length")
            flat = self._view.pair_scores(queries, first, second).float()
        n = valid.shape[1] - 1
        forward = flat.new_zeros((len(groups), n))
        backward = flat.new_zeros((len(groups), n))
        pos = 0
        for row, g in enumerate(groups):
            k = len(g) - 1
            forward[row, :k] = flat[pos : pos + 2 * k : 2]
            backward[row, :k] = flat[pos + 1 : pos + 2 * k : 2]
            pos += 2 * k
        valid, weights = valid.to(flat), weights.to(flat)
        if self.config.loss == "margin_mse":
            return self.loss_fn(forward, backward, valid, weights, teacher.to(flat.device))
        return self.loss_fn(forward, backward, valid, weights)


def _training_view(reranker: Any, config: RerankConfig) -> Any:
    """The same model under the training window (no copy of the weights).

    Every trainable family (``CrossEncoder``, ``MonoT5``, ``QueryLikelihood``, ``DuoCrossEncoder``, ``DuoT5``)
    reads ``max_length`` (the whole input, in tokens) and ``query_max_length`` (the query's cap) when it
    encodes; a scorer without them is used as it is. The window is the smaller of the model's and the
    configuration's, and the query keeps at most half of it (a third for a pairwise model, whose input holds
    two documents), so each family's own invariant (room left for the documents) still holds.
    """
    view = copy.copy(reranker)
    if hasattr(view, "max_length"):
        view.max_length = min(int(config.max_length), int(reranker.max_length))
    if hasattr(view, "query_max_length"):
        share = 3 if isinstance(reranker, PairwiseReranker) else 2
        room = view.max_length // share if hasattr(view, "max_length") else int(config.query_max_length)
        view.query_max_length = max(1, min(int(config.query_max_length), int(reranker.query_max_length), room))
    return view


# ------------------------------------------------------------------------------------------------ one call
def train_reranker(
    model: str | os.PathLike[str] | Any,
    queries: Queries,
    qrels: Qrels,
    corpus: DocSource,
    output_dir: str | os.PathLike[str],
    *,
    config: RerankConfig | None = None,
    first_stage: Stage | None = None,
    bm25_index: InvertedIndex | str | os.PathLike[str] | None = None,
    teacher: Stage | None = None,
    resume: bool = False,
    trainer_class: type[RerankerTrainer] | None = None,
    trainer_options: Mapping[str, Any] | None = None,
) -> Path:
    """Fine-tune a re-ranker on ``qrels`` with first-stage hard negatives; returns the final model directory.

    ``model``: a directory or Hub id (a ``CrossEncoder``; a bare encoder such as all-MiniLM-L6-v2 gets a
    fresh one-logit head), or a re-ranker object trained in place: ``CrossEncoder``, ``MonoT5``,
    ``QueryLikelihood`` (not with ``loss="pointwise"``), ``DuoCrossEncoder`` or ``DuoT5`` (with
    ``loss="pointwise"`` or ``"margin_mse"``; see ``RerankerTrainer``).
    ``first_stage``: where negatives come from (default: BM25 over ``bm25_index``, built from ``corpus``
    under ``output_dir/bm25-index`` when not given), retrieved ``config.negative_depth`` deep past the
    positives; the same run gives the curriculum its difficulties. ``teacher``: any stage whose scores are
    distilled with MarginMSE (``config.loss`` must be ``"margin_mse"``): a bigger re-ranker, or a fusion of
    BM25 and a dense retriever. ``trainer_class`` / ``trainer_options``: another trainer over the same data
    (``rankstack.train.weak.SelectiveRerankerTrainer``). Checkpoints are Hugging Face directories (sentence-transformers'
    ``CrossEncoder`` loads a trained cross-encoder as is); ``resume=True`` continues an interrupted run.
    """
    config = config or RerankConfig()
    if (teacher is None) != (config.loss != "margin_mse"):
        raise ValueError("a teacher is needed exactly when config.loss='margin_mse'")
    output_dir = Path(output_dir)
    reranker = _as_reranker(model, config)
    check_loss(reranker, config)  # before any index is built
    if isinstance(corpus, InvertedIndex) and bm25_index is None:
        bm25_index = corpus
    docs = _documents(corpus)
    data = TrainingSet.from_qrels(queries, qrels, doc_texts(docs))
    if config.positive_depth is None:
        data = data.sample(config.max_examples, config.max_per_query, config.seed)
    if first_stage is None:
        index = _bm25_index(bm25_index, docs, output_dir / "bm25-index")
        most = max((len(p) for p in data.positives.values()), default=0)
        first_stage = index.bm25(k=config.negative_depth + most)
    run = first_stage(Queries.from_dict(data.query_texts()))
    if config.positive_depth is not None:  # the filter needs every query's run; sample what it keeps
        data = data.retrieved_by(run, config.positive_depth)
        data = data.sample(config.max_examples, config.max_per_query, config.seed)
        run = run.for_qids(sorted(data.query_texts()))
    data = data.with_negatives(first_stage_pools(run, data.positives, config.negative_depth))
    log.info("re-ranker training: %s, %s negatives per query drawn from depth %d", data, config.num_negatives,
             config.negative_depth)
    difficulty = curriculum_difficulty(run, data.positives, config.curriculum) if config.curriculum else None
    if teacher is not None:
        candidates = {q: [*data.positives.get(q, ()), *pool] for q, pool in data.negatives.items()}
        data.teacher = teacher_scores(teacher, data.query_texts(), candidates)
    trainer = (trainer_class or RerankerTrainer)(reranker, data, config, output_dir, difficulty=difficulty,
                                                 **(trainer_options or {}))  # fmt: skip
    return trainer.train(resume=resume)


def _as_reranker(model: Any, config: RerankConfig) -> Any:
    if hasattr(model, "pair_scores"):
        return model
    from rankstack.rerank import CrossEncoder

    with warnings.catch_warnings():  # a fresh head on a bare encoder is exactly what training is for
        warnings.filterwarnings("ignore", message=r".*no sequence-classification head")
        return CrossEncoder(model, max_length=config.max_length, query_max_length=config.query_max_length)
