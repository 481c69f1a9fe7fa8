"""Training re-rankers (cross-encoders, monoT5): pointwise, pairwise, localized contrastive and MarginMSE
losses over first-stage hard negatives, with an optional BM25 curriculum.

Each optimisation step takes ``batch_size`` (query, positive) examples, draws ``num_negatives`` hard negatives
per query from its first-stage pool (a (seed, step) draw, so a resumed run repeats it exactly), scores all
pairs in one batch through the model's ``pair_scores(queries, docs)`` and applies the chosen loss to the
``[B, 1 + n]`` score matrix. The loop itself (schedule, checkpoints, exact resume) is the bi-encoders' one.

Curriculum (MacAvaney et al., 2020, "Training Curricula for Open Domain Answer Re-Ranking"): each training
pair gets a difficulty weight ``D`` in [0, 1] from the first stage (1 = easy: a positive BM25 ranks high, a
negative BM25 ranks low), and its loss weight ``W = D + min(1, step / m) · (1 − D)`` rises to 1 by step ``m``
(``curriculum_ratio`` of all steps), so the model learns the easy cases first. Heuristics: ``"recip"``
(``D = 1/rank`` for positives, ``1 − 1/rank`` for negatives; unretrieved positives 0, unretrieved negatives 1)
and ``"norm"`` (the same with the query's min-max normalised BM25 score in place of ``1/rank``).
"""

from __future__ import annotations

import copy
import dataclasses
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
from rankstack.train.api import _bm25_index, _documents
from rankstack.train.examples import DocSource, Example, TrainingSet, doc_texts
from rankstack.train.losses import LocalizedContrastiveLoss, PairwiseHingeLoss, PointwiseLoss, ScoreMarginMSELoss
from rankstack.train.trainer import TrainingLoop
from rankstack.types import Qrels, Queries, Ranking

try:
    import torch
except ImportError:  # pragma: no cover - the [neural] extra brings torch
    raise MissingExtraError("torch", "neural") from None

log = logging.getLogger(__name__)

RerankLoss = Literal["pointwise", "pairwise", "lce", "margin_mse"]
Curriculum = Literal["recip", "norm"]
LOSSES: tuple[str, ...] = ("pointwise", "pairwise", "lce", "margin_mse")


@dataclass(frozen=True)
class RerankConfig:
    """Every knob of a re-ranker training run; saved into ``trainer_state.json``.

    ``loss``: ``"pointwise"`` (binary cross-entropy), ``"pairwise"`` (hinge with ``margin``), ``"lce"``
    (softmax over the positive and ``num_negatives`` hard negatives), ``"margin_mse"`` (needs a teacher).
    ``head_learning_rate``: the rate (same schedule) for the classification head and pooler, which start from
    scratch on a bare encoder: at the encoder's rate a fresh head needs hundreds of steps before the loss
    moves (None: one rate for all). ``negative_depth``: how deep in the first stage's ranking negatives are
    drawn from. ``max_length`` /
    ``query_max_length``: the pair window during training (shorter than inference is cheaper and usually
    enough). ``curriculum``: None, ``"recip"`` or ``"norm"``, annealed to uniform weights over the first
    ``curriculum_ratio`` of the steps. ``batch_size`` counts queries; a step scores ``batch_size × (1 + n)``
    pairs. ``max_examples``: train on a seeded sample of that many (query, positive) examples (every judgment
    still counts as a positive, so no judged document is ever drawn as a negative): a budget for collections
    with more judgments than a CPU can get through (NFCorpus: ~110k).
    """

    epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 3e-5
    head_learning_rate: float | None = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    loss: RerankLoss = "lce"
    num_negatives: int = 7
    margin: float = 1.0
    negative_depth: int = 100
    max_length: int = 256
    query_max_length: int = 64
    curriculum: Curriculum | None = None
    curriculum_ratio: float = 0.5
    max_examples: int | None = None
    seed: int = 42
    log_every: int = 10
    save_every: int = 0
    keep_checkpoints: int | None = 2
    refresh_every: int = 0
    show_progress: bool = True

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
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError("max_examples must be at least 1 (or None for all)")
        if min(self.num_negatives, self.negative_depth, self.log_every, self.save_every) < 0:
            raise ValueError("num_negatives, negative_depth, log_every and save_every must be >= 0")

    def replace(self, **changes: Any) -> RerankConfig:
        return dataclasses.replace(self, **changes)


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
class RerankerTrainer(TrainingLoop):
    """Train ``reranker`` (a ``CrossEncoder``, ``MonoT5``: anything with ``pair_scores``, ``.model`` and
    ``.save``) in place on ``data``; its hard-negative pools come from the first stage.

    ``difficulty`` (from ``curriculum_difficulty``) is needed when ``config.curriculum`` is set; ``data.teacher``
    when ``config.loss == "margin_mse"``.
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
        self.reranker = reranker
        self.difficulty = difficulty or {}
        self._view = _training_view(reranker, config)
        log_probs = bool(getattr(reranker, "scores_are_log_probs", False))
        self.loss_fn: torch.nn.Module = {
            "pointwise": lambda: PointwiseLoss(log_probs),
            "pairwise": lambda: PairwiseHingeLoss(config.margin),
            "lce": LocalizedContrastiveLoss,
            "margin_mse": ScoreMarginMSELoss,
        }[config.loss]()
        super().__init__(reranker, [reranker.model], data, config, output_dir)

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """The loop's groups, with the head's parameters (outside the base model, and the pooler) split off
        into groups that run at ``head_learning_rate``."""
        groups = super()._parameter_groups()
        if self.config.head_learning_rate is None:
            return groups
        model = self.reranker.model
        prefix = getattr(model, "base_model_prefix", "")
        head = {
            id(p) for name, p in model.named_parameters() if name.split(".")[0] != prefix or ".pooler." in f".{name}"
        }
        scale = self.config.head_learning_rate / self.config.learning_rate
        out = []
        for group in groups:
            body = [p for p in group["params"] if id(p) not in head]
            top = [p for p in group["params"] if id(p) in head]
            out.append({**group, "params": body})
            if top:
                out.append({**group, "params": top, "lr_scale": scale})
        return out

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
        if self.config.loss != "pointwise":
            keep = [i for i, g in enumerate(groups) if len(g) > 1]
            if not keep:  # no query of this batch has a negative: nothing to compare, a no-op step
                return sum(p.sum() for p in self.reranker.model.parameters()) * 0.0
            examples, groups = [examples[i] for i in keep], [groups[i] for i in keep]
        width = max(len(g) for g in groups)
        queries = [e.query for e, g in zip(examples, groups, strict=True) for _ in g]
        docs = [texts[d] for g in groups for d in g]
        with warnings.catch_warnings():  # in training, truncation is the intent
            warnings.filterwarnings("ignore", message=r".*max_length")
            flat = self._view.pair_scores(queries, docs)
        scores = flat.new_full((len(groups), width), float("-inf") if self.config.loss == "lce" else 0.0)
        valid = torch.zeros((len(groups), width), dtype=flat.dtype)
        weights = torch.ones((len(groups), width), dtype=flat.dtype)
        teacher = torch.zeros((len(groups), width), dtype=torch.float64)
        pos = 0
        for row, (e, g) in enumerate(zip(examples, groups, strict=True)):
            scores[row, : len(g)] = flat[pos : pos + len(g)]
            pos += len(g)
            valid[row, : len(g)] = 1.0
            for col, d in enumerate(g):
                weights[row, col] = self.curriculum_weight(e.qid, d, col == 0, step)
                if self.data.teacher is not None:
                    teacher[row, col] = self.data.teacher.get(e.qid, {}).get(d, 0.0)
        if self.config.loss == "margin_mse":
            return self.loss_fn(scores, valid, weights, teacher)
        return self.loss_fn(scores, valid, weights)


def _training_view(reranker: Any, config: RerankConfig) -> Any:
    """The same model under the training window (no copy of the weights)."""
    view = copy.copy(reranker)
    if hasattr(view, "max_length"):
        view.max_length = min(int(config.max_length), int(reranker.max_length))
    if hasattr(view, "query_max_length"):
        view.query_max_length = min(int(config.query_max_length), view.max_length - 4)
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
) -> Path:
    """Fine-tune a re-ranker on ``qrels`` with first-stage hard negatives; returns the final model directory.

    ``model``: a directory or Hub id (a ``CrossEncoder``; a bare encoder such as all-MiniLM-L6-v2 gets a
    fresh one-logit head), or a re-ranker object (``CrossEncoder``, ``MonoT5``) trained in place.
    ``first_stage``: where negatives come from (default: BM25 over ``bm25_index``, built from ``corpus``
    under ``output_dir/bm25-index`` when not given), retrieved ``config.negative_depth`` deep past the
    positives; the same run gives the curriculum its difficulties. ``teacher``: any stage whose scores are
    distilled with MarginMSE (``config.loss`` must be ``"margin_mse"``): a bigger re-ranker, or a fusion of
    BM25 and a dense retriever. Checkpoints are Hugging Face directories (sentence-transformers'
    ``CrossEncoder`` loads a trained cross-encoder as is); ``resume=True`` continues an interrupted run.
    """
    config = config or RerankConfig()
    if (teacher is None) != (config.loss != "margin_mse"):
        raise ValueError("a teacher is needed exactly when config.loss='margin_mse'")
    output_dir = Path(output_dir)
    reranker = _as_reranker(model, config)
    if isinstance(corpus, InvertedIndex) and bm25_index is None:
        bm25_index = corpus
    docs = _documents(corpus)
    data = TrainingSet.from_qrels(queries, qrels, doc_texts(docs))
    if config.max_examples is not None and config.max_examples < len(data):
        rng = np.random.default_rng([config.seed, 2])
        keep = sorted(rng.choice(len(data), size=config.max_examples, replace=False).tolist())
        data = dataclasses.replace(data, examples=[data.examples[i] for i in keep])
    if first_stage is None:
        index = _bm25_index(bm25_index, docs, output_dir / "bm25-index")
        most = max((len(p) for p in data.positives.values()), default=0)
        first_stage = index.bm25(k=config.negative_depth + most)
    run = first_stage(Queries.from_dict(data.query_texts()))
    data = data.with_negatives(first_stage_pools(run, data.positives, config.negative_depth))
    log.info("re-ranker training: %s, %s negatives per query drawn from depth %d", data, config.num_negatives,
             config.negative_depth)
    difficulty = curriculum_difficulty(run, data.positives, config.curriculum) if config.curriculum else None
    if teacher is not None:
        candidates = {q: [*data.positives.get(q, ()), *pool] for q, pool in data.negatives.items()}
        data.teacher = teacher_scores(teacher, data.query_texts(), candidates)
    trainer = RerankerTrainer(reranker, data, config, output_dir, difficulty=difficulty)
    return trainer.train(resume=resume)


def _as_reranker(model: Any, config: RerankConfig) -> Any:
    if hasattr(model, "pair_scores"):
        return model
    from rankstack.rerank import CrossEncoder

    with warnings.catch_warnings():  # a fresh head on a bare encoder is exactly what training is for
        warnings.filterwarnings("ignore", message=r".*no sequence-classification head")
        return CrossEncoder(model, max_length=config.max_length, query_max_length=config.query_max_length)
