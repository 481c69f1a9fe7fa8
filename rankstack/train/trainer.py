"""The training loop: AdamW with linear warm-up and decay, clipping, logging, checkpoints, exact resume.

Deliberately small. Each optimisation step encodes a batch of queries, their positives and (optionally)
hard negatives, and minimises either the in-batch contrastive loss or MarginMSE against a teacher.

Reproducibility is by construction rather than by saving random states: the data order of epoch ``e`` is a
permutation drawn from ``(seed, e)``, the negatives sampled at step ``s`` from ``(seed, s)``, and torch is
re-seeded from ``(seed, s)`` before each step (dropout). The learning rate is a pure function of the step.
So a run resumed from ``checkpoint-<s>`` (weights, AdamW moments, negative pools) performs exactly the
steps the uninterrupted run would have, and two runs with the same seed are identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from rankstack.dense.encoder import BiEncoder
from rankstack.errors import MissingExtraError, RankstackError
from rankstack.train import _views, checkpoint
from rankstack.train.examples import Example, TrainingSet
from rankstack.train.losses import InBatchContrastiveLoss, MarginMSELoss

try:
    import torch
except ImportError:  # pragma: no cover - the [neural] extra brings torch
    raise MissingExtraError("torch", "neural") from None

log = logging.getLogger(__name__)

Refresh = Callable[[BiEncoder], Mapping[str, Sequence[str]]]
LossName = Literal["contrastive", "margin_mse"]
Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


@dataclass(frozen=True)
class LoopSettings:
    """What ``TrainingLoop`` itself reads beyond epochs, batch size and learning rates: the base of the trainers'
    configs (``RerankConfig``, ``PropConfig``, ``LiTConfig``, ``VLConfig``), which add their own knobs.
    ``save_every``: steps between checkpoints (0: only the final model), of which the newest ``keep_checkpoints``
    are kept; ``refresh_every``: steps between hard-negative refreshes (0: each epoch boundary). ``precision``:
    ``"bf16"`` runs the forward passes under bfloat16 autocast (weights, gradients and optimiser state stay fp32;
    losses are taken in fp32): 1.7-1.8x the training speed on a CPU with AMX (measured; GPUs gain too), at the
    cost of bit-for-bit reproducibility across machines; ``"fp32"`` (the default) is exact. ``attention_dropout``:
    the dropout on attention probabilities while training (``None``: each model's own, 0.1 for BERT), set on the
    attention layers of BERT-family encoders, DistilBERT, T5, GPT-2 and ``torch.nn.MultiheadAttention`` (others
    warn and keep theirs); a run resumes only with the precision and attention dropout it was started with;
    ``0.0`` lets PyTorch's fused attention run on a CPU, which has no dropout, so each layer no longer materialises
    its [batch, heads, length, length] probabilities: ~1.5x the training speed of an all-MiniLM-L6-v2
    cross-encoder on CPU, 1.7-2.4x CEDR's (``benchmarks/results/train-speed.md``), at the cost of that regulariser
    (hidden-state dropout stays)."""

    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    seed: int = 0
    log_every: int = 20
    save_every: int = 0
    keep_checkpoints: int | None = 2
    refresh_every: int = 0
    show_progress: bool = True
    precision: Precision = "fp32"
    attention_dropout: float | None = None

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainConfig(LoopSettings):
    """Every knob of a bi-encoder training run; saved into ``trainer_state.json`` so a run documents itself. The
    loop's own settings (schedule, checkpoints, refreshes, precision) are ``LoopSettings``'.

    ``loss``: ``"contrastive"`` (in-batch negatives plus ``num_negatives`` hard negatives per query, scores
    times ``scale``) or ``"margin_mse"`` (needs teacher scores in the training set). ``negative_depth``:
    how deep BM25/ANCE mining goes for each query's pool. ``refresh_every``: steps between ANCE refreshes
    (0 = at each epoch boundary) when a refresh hook is given. ``save_every``: steps between checkpoints
    (0 = none; the final model is always saved), of which the newest ``keep_checkpoints`` are kept.
    ``warmup_ratio``: fraction of all steps spent warming the learning rate up linearly from 0; it then
    decays linearly to 0 at the last step.
    """

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    loss: LossName = "contrastive"
    scale: float = 20.0
    num_negatives: int = 1
    negative_depth: int = 30
    query_max_length: int = 32
    doc_max_length: int = 128
    seed: int = 42
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.loss not in ("contrastive", "margin_mse"):
            raise ValueError(f"loss must be 'contrastive' or 'margin_mse', not {self.loss!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio}")
        if min(self.num_negatives, self.negative_depth, self.log_every, self.save_every, self.refresh_every) < 0:
            raise ValueError("num_negatives, negative_depth, log_every, save_every and refresh_every must be >= 0")


class TrainingStateError(RankstackError):
    """An output directory that already holds another run (checkpoints or a final model)."""


def _adamw(groups: list[dict[str, Any]], learning_rate: float) -> torch.optim.Optimizer:
    """AdamW, fused where the parameters' device allows it: one kernel over all tensors, ~6x faster than the
    per-tensor update on a 2-core CPU for MiniLM's 22M parameters (its step is a fixed cost of every batch)."""
    try:
        return torch.optim.AdamW(groups, lr=learning_rate, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype the fused kernel does not cover
        return torch.optim.AdamW(groups, lr=learning_rate)


def _train_in_float32(models: Sequence[torch.nn.Module]) -> None:
    """Cast models stored in half precision to float32 before training, with a warning: transformers loads a
    checkpoint in its stored dtype, and plain fp16 or bf16 weights under AdamW lose small updates to rounding
    (fp16 also overflows). Mixed precision is ``precision="bf16"``, over float32 weights."""
    for model in models:
        low = {str(p.dtype) for p in model.parameters() if p.is_floating_point() and p.dtype != torch.float32}
        if low:
            warnings.warn(
                f"{type(model).__name__} holds {', '.join(sorted(low))} weights: training casts them to float32 "
                "(for mixed precision use precision='bf16', which keeps float32 weights)",
                stacklevel=3,
            )
            model.float()


# An attention layer owns its query projection (BERT family, DistilBERT, T5 / MPNet, BART / CLIP, GPT-2) and keeps
# the dropout its attention applies to the probabilities under one of these names, as a ``Dropout`` or a float
# (BERT's SDPA layers in transformers 4.x read the float ``dropout_prob``). T5's ``T5LayerSelfAttention.dropout``
# acts on hidden states: that module owns no query projection, so it is left alone.
_QUERY_PROJECTIONS = ("query", "q_lin", "q", "q_proj", "c_attn")
_ATTENTION_DROPOUTS = ("dropout", "attn_dropout", "dropout_prob", "attention_dropout")


def _attention_dropout_slots(module: torch.nn.Module) -> list[tuple[Any, str, Any]]:
    """(owner, attribute, current value) for each attention-dropout setting of one module."""
    if isinstance(module, torch.nn.MultiheadAttention):
        return [(module, "dropout", module.dropout)]
    if not any(isinstance(getattr(module, name, None), torch.nn.Module) for name in _QUERY_PROJECTIONS):
        return []
    slots = []
    for name in _ATTENTION_DROPOUTS:
        value = getattr(module, name, None)
        if isinstance(value, torch.nn.Dropout):
            slots.append((value, "p", value.p))
        elif isinstance(value, float):
            slots.append((module, name, value))
    return slots


@contextlib.contextmanager
def _attention_dropout(models: Sequence[torch.nn.Module], p: float | None) -> Iterator[None]:
    """Set every attention layer's dropout probability to ``p`` while training, and restore it after (the saved
    config keeps the model's own). Models with no layer it recognises get a warning and keep theirs."""
    if p is None:
        yield
        return
    changed = [slot for model in models for module in model.modules() for slot in _attention_dropout_slots(module)]
    if not changed:
        warnings.warn(f"attention_dropout={p} is ignored: no attention layer it can set in these models", stacklevel=4)
    for owner, name, _ in changed:
        setattr(owner, name, p)
    try:
        yield
    finally:
        for owner, name, old in reversed(changed):
            setattr(owner, name, old)


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence mixes them well)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class TrainingLoop:
    """The loop every trainable stage shares: AdamW, the learning-rate schedule, the (seed, epoch) data order,
    per-step seeding, logging, checkpoints and exact resume. Subclasses say what one batch's loss is.

    ``trainable`` is what gets saved (anything with ``.save(directory)`` writing a Hugging Face directory,
    and a ``.model`` torch module, or a ``BiEncoder``); ``models`` are the torch modules it optimises;
    ``data.examples`` are what epochs permute. ``config`` needs the fields of ``TrainConfig`` that the loop
    reads (epochs, batch_size, learning_rate, weight_decay, warmup_ratio, max_grad_norm, seed, log_every,
    save_every, keep_checkpoints, refresh_every, show_progress, and optionally precision and attention_dropout).
    """

    def __init__(
        self,
        trainable: Any,
        models: Sequence[torch.nn.Module],
        data: TrainingSet,
        config: Any,
        output_dir: str | Path,
        *,
        refresh: Callable[[Any], Mapping[str, Sequence[str]]] | None = None,
    ):
        precision = getattr(config, "precision", "fp32")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.attention_dropout: float | None = getattr(config, "attention_dropout", None)
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"attention_dropout must be in [0, 1) or None, not {self.attention_dropout}")
        self.trainable, self.models, self.data, self.config, self.refresh = trainable, list(models), data, config, refresh
        _train_in_float32(self.models)
        self.output_dir = Path(output_dir)
        self.steps_per_epoch = math.ceil(len(data) / config.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.warmup_steps = math.ceil(config.warmup_ratio * self.total_steps)
        self.refresh_every = config.refresh_every or self.steps_per_epoch
        self.optimizer = _adamw(self._parameter_groups(), config.learning_rate)
        self.step = 0
        self.log_history: list[dict[str, Any]] = []

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        raise NotImplementedError

    def no_op_loss(self) -> torch.Tensor:
        """A zero loss tied to every trained parameter: a batch with nothing to learn from (no negative, no
        answer, no comparable pair) still takes a step, so the schedule and a resumed run stay in step."""
        return sum(p.sum() for model in self.models for p in model.parameters()) * 0.0  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------ setup
    def _parameter_groups(self) -> list[dict[str, Any]]:
        """Weight decay on weight matrices only: biases and LayerNorm gains are not decayed (as in BERT)."""
        decay, no_decay = [], []
        for model in self.models:
            for name, param in model.named_parameters():
                if param.requires_grad:
                    (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return self.split_fresh(groups, self.fresh_parameters(), getattr(self.config, "head_learning_rate", None))

    def fresh_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters that start from scratch (a new head or projection on a pretrained encoder); a subclass
        names them so they train at ``config.head_learning_rate``."""
        return []

    def split_fresh(self, groups: list[dict[str, Any]], fresh: Sequence[torch.nn.Parameter],
                    head_learning_rate: float | None) -> list[dict[str, Any]]:  # fmt: skip
        """``groups`` with the ``fresh`` parameters moved into groups of their own at ``head_learning_rate``
        (same schedule): at the encoder's rate a fresh head needs hundreds of steps before the loss moves."""
        if head_learning_rate is None or not fresh:
            return groups
        ids = {id(p) for p in fresh}
        scale = head_learning_rate / self.config.learning_rate
        out = []
        for group in groups:
            old = [p for p in group["params"] if id(p) not in ids]
            new = [p for p in group["params"] if id(p) in ids]
            out += [{**group, "params": old}] if old else []
            out += [{**group, "params": new, "lr_scale": scale}] if new else []
        return out

    def learning_rate(self, step: int) -> float:
        """Linear warm-up over ``warmup_steps`` (the first step already uses a non-zero rate), then linear decay."""
        lr = self.config.learning_rate
        if step < self.warmup_steps:
            return lr * (step + 1) / (self.warmup_steps + 1)
        return lr * max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))

    def batch(self, step: int) -> list[Example]:
        """The examples of optimisation step ``step`` (0-based): epoch ``e`` visits a (seed, e) permutation."""
        epoch, within = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.data))
        rows = order[within * self.config.batch_size : (within + 1) * self.config.batch_size]
        return [self.data.examples[i] for i in rows.tolist()]

    def _sample(self, pool: Sequence[str], rng: np.random.Generator) -> list[str]:
        """Up to ``config.num_negatives`` distinct docids of ``pool``, in pool order."""
        if not pool or not self.config.num_negatives:
            return []
        picks = rng.choice(len(pool), size=min(self.config.num_negatives, len(pool)), replace=False)
        return [pool[i] for i in sorted(picks.tolist())]

    def _optimise(self, step: int) -> float:
        torch.manual_seed(_seed(self.config.seed, step))
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step) * group.get("lr_scale", 1.0)
        with self._autocast():
            loss = self.loss(self.batch(step), step).float()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step()
        return float(loss.detach())

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bfloat16 autocast on the models' device when ``config.precision == "bf16"``; otherwise nothing."""
        if getattr(self.config, "precision", "fp32") != "bf16":
            return contextlib.nullcontext()
        device = next((p.device.type for m in self.models for p in m.parameters()), "cpu")
        return torch.autocast(device_type=device, dtype=torch.bfloat16)

    # ------------------------------------------------------------------------------------ the loop
    def train(self, resume: bool = False) -> Path:
        """Run (or with ``resume=True`` continue) training; returns the final model directory."""
        final = self.output_dir / "final"
        if resume and (final / checkpoint.STATE_FILE).exists():
            state, _ = checkpoint.load(final, self.trainable)
            self._restore(state, None)
            log.info("%s is complete; loaded its final model", self.output_dir)
            return final
        found = checkpoint.checkpoints(self.output_dir)
        if resume and found:
            state, negatives = checkpoint.load(found[-1], self.trainable, self.optimizer)
            self._check_regime(state, found[-1])
            self._restore(state, negatives)
            log.info("resuming from %s (step %d of %d)", found[-1], self.step, self.total_steps)
        elif found or final.exists():
            raise TrainingStateError(
                f"{self.output_dir} already holds a training run ({(found or [final])[-1].name}); pass resume=True "
                "to continue it, or choose another output directory"
            )
        random.seed(self.config.seed)
        np.random.seed(self.config.seed % 2**32)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        started, window = time.perf_counter(), []
        for model in self.models:
            model.train()
        from tqdm.auto import tqdm

        with _attention_dropout(self.models, self.attention_dropout), tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="training",
            unit="step",
            disable=not self.config.show_progress,
        ) as bar:
            while self.step < self.total_steps:
                window.append(self._optimise(self.step))
                self.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(window):.4f}", lr=f"{self.learning_rate(self.step - 1):.2e}")
                if self.config.log_every and (self.step % self.config.log_every == 0 or self.step == self.total_steps):
                    self._log(window, time.perf_counter() - started)
                    window = []
                if self.refresh is not None and self.step % self.refresh_every == 0 and self.step < self.total_steps:
                    self._refresh()
                if self.config.save_every and self.step % self.config.save_every == 0 and self.step < self.total_steps:
                    checkpoint.save(
                        self.output_dir / f"checkpoint-{self.step}",
                        self.trainable,
                        self._state(),
                        self.data.negatives,
                        self.optimizer,
                    )
                    checkpoint.prune(self.output_dir, self.config.keep_checkpoints)
        for model in self.models:
            model.eval()
        if hasattr(self.trainable, "clear_cache"):  # scores cached before training belong to other weights
            self.trainable.clear_cache()
        checkpoint.save(final, self.trainable, self._state())
        checkpoint.write_state(self.output_dir, self._state())
        return final

    def _refresh(self) -> None:
        assert self.refresh is not None
        for model in self.models:
            model.eval()
        self.data = self.data.with_negatives(self.refresh(self.trainable))
        for model in self.models:
            model.train()
        self.log_history.append({"step": self.step, "event": "refreshed negatives"})

    def _log(self, window: list[float], seconds: float) -> None:
        entry = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 4),
            "loss": float(np.mean(window)),
            "learning_rate": self.learning_rate(self.step - 1),
            "seconds": round(seconds, 2),
        }
        self.log_history.append(entry)
        log.info("step %d/%d loss %.4f", self.step, self.total_steps, entry["loss"])
        checkpoint.write_state(self.output_dir, self._state())

    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.step / self.steps_per_epoch,
            "examples": len(self.data),
            "config": dataclasses.asdict(self.config),
            "log_history": self.log_history,
        }

    def _check_regime(self, state: Mapping[str, Any], where: Path) -> None:
        """Resuming must not change how the remaining steps compute: the same precision and attention dropout."""
        saved = state.get("config", {})
        for knob in ("precision", "attention_dropout"):
            if knob in saved and saved[knob] != getattr(self.config, knob, None):
                raise TrainingStateError(
                    f"{where} was trained with {knob}={saved[knob]!r}, not {getattr(self.config, knob, None)!r}; "
                    "resume with the same setting, or start a new output directory"
                )

    def _restore(self, state: Mapping[str, Any], negatives: Mapping[str, Sequence[str]] | None) -> None:
        if state.get("total_steps") != self.total_steps or state.get("examples") != len(self.data):
            raise TrainingStateError(
                f"the checkpoint in {self.output_dir} was made for {state.get('examples')} examples and "
                f"{state.get('total_steps')} steps, not {len(self.data)} and {self.total_steps}; resume with the "
                "same data and configuration, or start a new output directory"
            )
        self.step = int(state["step"])
        self.log_history = list(state.get("log_history", []))
        if negatives is not None:
            self.data = dataclasses.replace(self.data, negatives={q: list(p) for q, p in negatives.items()})


class Trainer(TrainingLoop):
    """Fine-tune ``encoder`` in place on ``data`` and save checkpoints and the final model under ``output_dir``.

    ``refresh`` (e.g. ``negatives.AnceRefresh``) is called with the encoder every ``config.refresh_every``
    steps and its result replaces the hard-negative pools. ``train(resume=True)`` continues from the newest
    checkpoint (or returns at once if the final model is already there).
    """

    def __init__(
        self,
        encoder: BiEncoder,
        data: TrainingSet,
        config: TrainConfig,
        output_dir: str | Path,
        *,
        refresh: Refresh | None = None,
    ):
        if config.loss == "margin_mse":
            _check_teacher(data)
        self.encoder = encoder
        self._query = _views.with_max_length(encoder.query, config.query_max_length)
        self._doc = _views.with_max_length(encoder.doc, config.doc_max_length)
        self.loss_fn = InBatchContrastiveLoss(config.scale) if config.loss == "contrastive" else MarginMSELoss()
        models = [encoder.query.model] if encoder.shared else [encoder.query.model, encoder.doc.model]
        super().__init__(encoder, models, data, config, output_dir, refresh=refresh)

    # ------------------------------------------------------------------------------------ one step
    def _embed(self, encoder: Any, texts: Sequence[str]) -> torch.Tensor:
        return encoder.embed(**_views.features(encoder, texts)).float()  # similarities in fp32 under autocast

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        """The loss of one batch; hard negatives are drawn from each query's pool with a (seed, step) rng."""
        rng = np.random.default_rng([self.config.seed, step, 1])
        texts, pools = self.data.texts, self.data.negatives
        q = self._embed(self._query, [e.query for e in examples])
        if self.config.loss == "margin_mse":
            teacher = self.data.teacher or {}
            triples = [
                (row, neg)
                for row, e in enumerate(examples)
                for neg in self._sample([d for d in pools.get(e.qid, ()) if d in teacher[e.qid]], rng)
            ]
            if not triples:
                return q.sum() * 0.0  # no query of this batch has a scored negative: a no-op step
            rows = torch.tensor([r for r, _ in triples])
            docs = self._embed(self._doc, [texts[e.positive] for e in examples] + [texts[n] for _, n in triples])
            margins = torch.tensor(
                [teacher[examples[r].qid][examples[r].positive] - teacher[examples[r].qid][n] for r, n in triples]
            )
            return self.loss_fn(q[rows], docs[rows], docs[len(examples) :], margins)
        negatives = [n for e in examples for n in self._sample(pools.get(e.qid, ()), rng)]
        columns = [e.positive for e in examples] + negatives
        docs = self._embed(self._doc, [texts[d] for d in columns])
        ignore = torch.tensor([[d in self.data.positives.get(e.qid, ()) for d in columns] for e in examples])
        return self.loss_fn(q, docs[: len(examples)], docs[len(examples) :], ignore)


def _check_teacher(data: TrainingSet) -> None:
    teacher = data.teacher or {}
    missing = [e.qid for e in data.examples if e.positive not in teacher.get(e.qid, {})]
    if missing:
        raise ValueError(
            f"loss='margin_mse' needs teacher scores for every positive; {len(missing)} examples have none "
            f"(e.g. query {missing[0]!r}); fill TrainingSet.teacher with scoring.score_pools"
        )
