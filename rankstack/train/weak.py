"""Weak supervision for re-rankers: pseudo-queries from unlabeled documents, and a data selector trained by the
dev-set reward (ReInfoSelect: Zhang et al., WWW 2020, "Selective Weak Supervision for Neural Information
Retrieval").

``pseudo_queries`` turns a corpus into weak training data: a document's title, or its first sentence, becomes a
query for which that document is the (only) relevant one. Such pairs are plentiful and noisy: some titles are
good queries, many sentences are not.

``SelectiveRerankerTrainer`` learns which weak pairs to train on. A selector (logistic regression over a few
features of the pair: pseudo-query length, the share of its words found in the document, the document's length,
whether it came from a title) keeps each example of a batch with probability ``σ(w · f)`` (sampled from
``(seed, step)``); the ranker's loss counts only the kept ones. Every ``reward_every`` steps the ranker
re-ranks the dev queries' first-stage candidates; the change of the dev metric since the previous evaluation
is the reward of all keep/drop decisions taken in between, and the selector follows REINFORCE, the policy
gradient ``reward · mean ∇ log π(action | f)`` applied by Adam (ReInfoSelect trains its selector with Adam too;
plain steps would be ~1e-4 for rewards of ~0.01). Which pairs help the ranker on *real* queries is thus learned from
the ranker's own progress, not guessed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankstack.errors import MissingExtraError
from rankstack.train.api import _bm25_index, _documents
from rankstack.train.examples import DocSource, Example
from rankstack.train.rerank import RerankerTrainer
from rankstack.types import Qrels, Queries, Ranking

try:
    import torch
except ImportError:  # pragma: no cover - the [neural] extra brings torch
    raise MissingExtraError("torch", "neural") from None

log = logging.getLogger(__name__)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W_]+")
SOURCES = ("title", "first_sentence", "both")


def pseudo_queries(
    corpus: DocSource, source: str = "both", min_words: int = 3, max_words: int = 24
) -> tuple[Queries, Qrels]:
    """Weak (query, document) pairs: each document's title and/or first sentence as a query it answers.

    Query ids are ``title:<docid>`` and ``sentence:<docid>``. Texts with fewer than ``min_words`` words are
    skipped; longer than ``max_words`` are cut. A first sentence is taken from the body (not the title), and
    the document stays the judged positive even though its text holds the query word for word (that overlap
    is what the selector learns to discount)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    qids, texts, docids = [], [], []
    for doc in _documents(corpus):
        candidates = []
        if source in ("title", "both") and doc.title:
            candidates.append(("title", doc.title))
        if source in ("first_sentence", "both") and doc.text:
            candidates.append(("sentence", _SENTENCE_END.split(doc.text.strip(), maxsplit=1)[0]))
        for kind, text in candidates:
            words = text.split()
            if len(words) >= min_words:
                qids.append(f"{kind}:{doc.docid}")
                texts.append(" ".join(words[:max_words]))
                docids.append(doc.docid)
    if not qids:
        raise ValueError(f"no document has a {source.replace('_', ' ')} of at least {min_words} words to use as a query")
    return Queries(qids, texts), Qrels(qids, docids, [1] * len(qids))


def pair_features(example: Example, text: str) -> list[float]:
    """The selector's view of a weak pair (module docstring): bias, query length, overlap, document length, title."""
    q = [w.lower() for w in _WORD.findall(example.query)]
    d = {w.lower() for w in _WORD.findall(text)}
    overlap = sum(w in d for w in q) / max(1, len(q))
    return [1.0, len(q) / 10.0, overlap, np.log1p(len(d)) / 5.0, float(example.qid.startswith("title:"))]


@dataclass(frozen=True)
class Reward:
    """Where the selector's reward comes from: ``run`` (first-stage candidates of the dev queries, carrying
    their query texts) re-scored by the model from ``texts`` (docid -> text), then ``metric`` against ``qrels``."""

    run: Ranking
    qrels: Qrels
    texts: Mapping[str, str]
    metric: str = "nDCG@10"

    def __post_init__(self) -> None:
        lacking = [d for d in dict.fromkeys(self.run.docid.tolist()) if d not in self.texts]
        if lacking:
            raise ValueError(f"{len(lacking)} candidates of the dev run have no text, e.g. {lacking[:3]}")
        if self.run.queries is None:
            raise ValueError("the dev run must carry its query texts (Ranking(..., queries=...))")


class SelectiveRerankerTrainer(RerankerTrainer):
    """``RerankerTrainer`` over weak examples with a REINFORCE-trained data selector (module docstring).

    ``reward``: the dev queries' candidates and judgments; ``reward_every``: steps between dev evaluations;
    ``selector_lr``: the selector's Adam learning rate (0 keeps the initial selector). The selector's weights and the dev metric after each
    evaluation go into the training log (``trainer_state.json``).
    """

    def __init__(self, reranker: Any, data: Any, config: Any, output_dir: Any, *, reward: Reward,
                 reward_every: int = 10, selector_lr: float = 0.05, **kwargs: Any):  # fmt: skip
        super().__init__(reranker, data, config, output_dir, **kwargs)
        if reward_every < 1:
            raise ValueError("reward_every must be at least 1")
        self.reward, self.reward_every, self.selector_lr = reward, int(reward_every), float(selector_lr)
        self.selector = np.zeros(5)
        self.selector[0] = 2.0  # start by keeping most pairs (σ(2) ≈ 0.88)
        self._adam = {"m": np.zeros(5), "v": np.zeros(5), "t": 0}
        self._decisions: list[tuple[np.ndarray, float, float]] = []  # (features, action, p(keep))
        self._last_metric: float | None = None

    def keep_probability(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(features @ self.selector)))

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.config.seed, step, 11])
        feats = np.array([pair_features(e, self.data.texts[e.positive]) for e in examples])
        p = self.keep_probability(feats)
        actions = (rng.random(len(examples)) < p).astype(np.float64)
        self._decisions += list(zip(feats, actions.tolist(), p.tolist(), strict=True))
        kept = [e for e, a in zip(examples, actions, strict=True) if a]
        if not kept:
            return self.no_op_loss()
        return super().loss(kept, step)

    def _optimise(self, step: int) -> float:
        value = super()._optimise(step)
        if (step + 1) % self.reward_every == 0 or step + 1 == self.total_steps:
            self._update_selector()
        return value

    def dev_metric(self) -> float:
        from rankstack.eval import evaluate

        for model in self.models:
            model.eval()
        if hasattr(self.reranker, "clear_cache"):
            self.reranker.clear_cache()
        run = self.reward.run
        qtext = run.queries.to_dict()  # type: ignore[union-attr]
        with torch.no_grad():
            scores = self.reranker.score_pairs([qtext[q] for q in run.qid.tolist()],
                                               [self.reward.texts[d] for d in run.docid.tolist()])  # fmt: skip
        for model in self.models:
            model.train()
        out = Ranking(run.qid, run.docid, np.asarray(scores, dtype=np.float64))
        return float(evaluate(out, self.reward.qrels, [self.reward.metric])[self.reward.metric])

    def _update_selector(self) -> None:
        metric = self.dev_metric()
        if self._last_metric is not None and self._decisions:
            reward = metric - self._last_metric
            grad = np.zeros_like(self.selector)
            for f, a, p in self._decisions:  # ∇_w log π(a | f) for a Bernoulli(σ(w·f)) policy = (a − p) f
                grad += (a - p) * f
            self.selector += self._adam_step(reward * grad / len(self._decisions))
        self._decisions = []
        self._last_metric = metric
        self.log_history.append({"step": self.step + 1, "event": "selector", self.reward.metric: metric,
                                 "selector": [round(float(x), 6) for x in self.selector]})  # fmt: skip

    def _adam_step(self, grad: np.ndarray, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> np.ndarray:
        """Adam's ascent step for ``grad``: rewards (metric changes of ~0.01) make raw policy gradients tiny, and
        Adam's per-weight normalisation turns them into steps of about ``selector_lr``."""
        state = self._adam
        state["t"] += 1
        state["m"] = beta1 * state["m"] + (1 - beta1) * grad
        state["v"] = beta2 * state["v"] + (1 - beta2) * grad**2
        m_hat = state["m"] / (1 - beta1 ** state["t"])
        v_hat = state["v"] / (1 - beta2 ** state["t"])
        return self.selector_lr * m_hat / (np.sqrt(v_hat) + eps)

    def _state(self) -> dict[str, Any]:
        pending = [[f.tolist(), a, p] for f, a, p in self._decisions]  # decisions awaiting their reward
        adam = {"m": self._adam["m"].tolist(), "v": self._adam["v"].tolist(), "t": self._adam["t"]}
        return {**super()._state(), "selector": self.selector.tolist(), "last_metric": self._last_metric,
                "pending": pending, "selector_adam": adam}  # fmt: skip

    def _restore(self, state: Any, negatives: Any) -> None:
        super()._restore(state, negatives)
        if "selector" in state:
            self.selector = np.array(state["selector"], dtype=np.float64)
            self._last_metric = state.get("last_metric")
            self._decisions = [(np.array(f, dtype=np.float64), float(a), float(p)) for f, a, p in state.get("pending", [])]
            adam = state.get("selector_adam")
            if adam:
                self._adam = {"m": np.array(adam["m"]), "v": np.array(adam["v"]), "t": int(adam["t"])}


def train_weakly(
    model: Any,
    corpus: DocSource,
    dev_queries: Queries,
    dev_qrels: Qrels,
    output_dir: Any,
    *,
    source: str = "both",
    config: Any = None,
    dev_depth: int = 20,
    metric: str = "nDCG@10",
    reward_every: int = 10,
    selector_lr: float = 0.05,
    bm25_index: Any = None,
    resume: bool = False,
) -> Any:
    """Train a re-ranker on pseudo-queries of ``corpus`` with a ReInfoSelect data selector rewarded by ``metric``
    over the dev queries' BM25 top ``dev_depth`` (module docstring); returns the final model directory.

    ``model`` and ``config`` are as for ``train_reranker``; negatives come from BM25 over ``bm25_index`` (built
    from ``corpus`` under ``output_dir/bm25-index`` when not given)."""
    from pathlib import Path

    from rankstack.train.examples import doc_texts
    from rankstack.train.rerank import RerankConfig, train_reranker

    config = config or RerankConfig()
    docs = _documents(corpus)  # once: a corpus may be a one-shot iterator
    queries, qrels = pseudo_queries(docs, source)
    index = _bm25_index(bm25_index, docs, Path(output_dir) / "bm25-index")
    texts = doc_texts(docs)
    run = index.bm25(k=dev_depth)(dev_queries)
    reward = Reward(run, dev_qrels, texts, metric)
    options = {"reward": reward, "reward_every": reward_every, "selector_lr": selector_lr}
    return train_reranker(model, queries, qrels, index, output_dir, config=config, bm25_index=index, resume=resume,
                          trainer_class=SelectiveRerankerTrainer, trainer_options=options)  # fmt: skip
