"""Cascade Transformer (Soldaini & Moschitti, 2020): one cross-encoder with small classifiers after intermediate
layers, so candidates that an early exit already rates low never reach the expensive top layers.

``exits`` are layer numbers (default: a third, two thirds and all of the layers: 2, 4, 6 for MiniLM-L6); the
last exit is the cross-encoder's own classification head, so a trained cascade is also an ordinary
cross-encoder checkpoint (sentence-transformers' ``CrossEncoder`` loads it and ignores the extra heads, kept in
``cascade.safetensors``). Training (``train_reranker``) scores every pair at every exit and averages the exits'
losses, so all heads learn jointly on the shared layers.

Re-ranking, per query: all candidates run up to the first exit; the ``keep`` fraction with the best scores
there (rounded up) goes on to the next exit, and so on. A document's score is ``k + σ(logit)``, where ``k`` is
the number of the last exit it reached (counting from 0) and the logit is that exit's: every survivor ranks
above every document dropped earlier, and within a tier by the exit's own judgement. ``keep=1`` scores all
candidates with the full model (the score is then ``len(exits) - 1 + σ(cross-encoder logit)``). ``protect``: the
first stage's top ``protect`` candidates go on at every exit besides the ``keep`` fraction, so the full model
always judges them: an early exit that misjudges one of the first stage's best cannot drop it (at BM25's top 100
on SciFact this is what makes dropping affordable: ``benchmarks/results/cascade-rules.md``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.models import lazy
from rankstack.models.batching import longest_first, pad_rows
from rankstack.models.layers import run_layers
from rankstack.models.model_dir import ModelDirectoryError, read_versioned, write_versioned
from rankstack.rerank.cross import CrossEncoder
from rankstack.rerank.texts import DocSource

CONFIG_FILE = "cascade.json"
WEIGHTS_FILE = "cascade.safetensors"
FORMAT_VERSION = 1


def is_cascade(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` is a saved cascade directory."""
    return (Path(model) / CONFIG_FILE).is_file()


class CascadeCrossEncoder(CrossEncoder):
    """A one-logit BERT cross-encoder with early exits (module docstring). ``keep``: the fraction of a query's
    candidates that goes on at each intermediate exit; ``protect``: how many of the first stage's top candidates
    always go on (both saved with the model; pass them to override)."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        exits: Sequence[int] | None = None,
        keep: float | None = None,
        protect: int | None = None,
        seed: int = 0,
        **kwargs: Any,
    ):
        if kwargs.get("backend", "torch") != "torch":
            raise ValueError("a cascade runs its layers one slice at a time: backend must be 'torch'")
        super().__init__(model, docs, **kwargs)
        torch = lazy.torch()
        saved = read_versioned(self.path / CONFIG_FILE, FORMAT_VERSION)
        if self.num_labels != 1:
            raise ModelDirectoryError(f"{self.path}: a cascade's exits score one logit each; this head has {self.num_labels}")
        self.hf = self.model
        base = self.hf.base_model
        if not all(hasattr(x, y) for x, y in ((base, "embeddings"), (base, "encoder"), (base, "pooler"),
                                              (self.hf, "classifier"))) or base.pooler is None:  # fmt: skip
            raise ModelDirectoryError(f"{self.path}: the cascade runs BERT-style encoders (embeddings, encoder.layer, "
                                      f"pooler, classifier); {type(self.hf).__name__} is not one")  # fmt: skip
        layers = len(base.encoder.layer)
        if saved and exits is not None and list(exits) != saved.get("exits"):
            raise ValueError(f"{self.path} was trained with exits {saved.get('exits')}, not {list(exits)}")
        self.exits = [int(e) for e in (saved.get("exits") or exits or sorted({max(1, layers // 3), max(1, 2 * layers // 3), layers}))]
        if self.exits != sorted(set(self.exits)) or self.exits[0] < 1 or self.exits[-1] != layers:
            raise ValueError(f"exits must be increasing layer numbers ending at the last layer ({layers}), not {self.exits}")
        self.keep = float(keep if keep is not None else saved.get("keep", 0.5))
        if not 0.0 < self.keep <= 1.0:
            raise ValueError(f"keep must be in (0, 1], not {self.keep}")
        self.protect = int(protect if protect is not None else saved.get("protect", 0))
        if self.protect < 0:
            raise ValueError(f"protect must be a number of candidates >= 0, not {self.protect}")
        hidden = int(self.hf.config.hidden_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            heads = torch.nn.ModuleList(
                torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
                for _ in self.exits[:-1]
            )
        if (self.path / WEIGHTS_FILE).exists():
            from safetensors.torch import load_file

            heads.load_state_dict(load_file(str(self.path / WEIGHTS_FILE)))
        self.fresh_exits = not (self.path / WEIGHTS_FILE).exists()
        heads.to(self.device)
        parts = {"bert": base, "classifier": self.hf.classifier, "exits": heads}
        if hasattr(self.hf, "dropout"):  # in the dict so that train() / eval() switch it too
            parts["dropout"] = self.hf.dropout
        self.model = torch.nn.ModuleDict(parts)
        self.model.eval()

    def fresh_parameters(self) -> list[Any]:
        """The parts that start from scratch, which the trainer runs at ``head_learning_rate``: new exits, and
        the pooler and classifier only when the checkpoint had no trained head."""
        fresh = list(self.model["exits"].parameters()) if self.fresh_exits else []
        if self.fresh_head:
            fresh += list(self.hf.base_model.pooler.parameters()) + list(self.hf.classifier.parameters())
        return fresh

    # ------------------------------------------------------------------------------------ the exits
    def _start(self, feats: dict[str, Any]) -> Any:
        base = self.hf.base_model
        kwargs = {"token_type_ids": feats["token_type_ids"]} if "token_type_ids" in feats else {}
        return base.embeddings(input_ids=feats["input_ids"], **kwargs)

    def _advance(self, hidden: Any, mask: Any, stage: int) -> Any:
        lo = self.exits[stage - 1] if stage else 0
        return run_layers(self.hf.base_model.encoder.layer[lo : self.exits[stage]], hidden, mask)

    def _exit_logit(self, hidden: Any, stage: int) -> Any:
        if stage == len(self.exits) - 1:  # the cross-encoder's own head: pooler, dropout, classifier
            pooled = self.hf.base_model.pooler(hidden)
            return self.hf.classifier(self.hf.dropout(pooled) if hasattr(self.hf, "dropout") else pooled)[:, 0]
        return self.model["exits"][stage](hidden[:, 0])[:, 0]

    def exit_logits(self, feats: dict[str, Any]) -> Any:
        """Every exit's logit ``[B, len(exits)]`` with gradients."""
        torch = lazy.torch()
        hidden, mask, out = self._start(feats), feats["attention_mask"], []
        for stage in range(len(self.exits)):
            hidden = self._advance(hidden, mask, stage)
            out.append(self._exit_logit(hidden, stage))
        return torch.stack(out, dim=-1)

    def pair_scores(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        """``[B, len(exits)]`` logits: the trainer averages the exits' losses (joint training)."""
        return self.exit_logits(self.features(queries, docs))

    def _forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """``score_pairs``: the full model's logit (the last exit), as a plain cross-encoder scores the pair."""
        torch = lazy.torch()
        with torch.inference_mode():
            feats = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
            hidden = self._start(feats)
            for stage in range(len(self.exits)):
                hidden = self._advance(hidden, feats["attention_mask"], stage)
            return self._exit_logit(hidden, len(self.exits) - 1).double().cpu().numpy()

    # ------------------------------------------------------------------------------------ the cascade
    def rescore(self, ranking: Any, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        torch = lazy.torch()
        scores = np.empty(len(ranking), dtype=np.float64)
        self.last_counts = np.zeros(len(self.exits), dtype=np.int64)  # pairs that reached each exit
        with lazy.progress(len(ranking), "cascade re-ranking", self.show_progress, unit="pair") as bar, torch.inference_mode():
            for _, rows in ranking.groups():
                idx = np.arange(rows.start, rows.stop)
                scores[idx] = self._cascade([queries[i] for i in idx], [texts[i] for i in idx], ranking.rank[idx])
                bar.update(len(idx))
        return scores

    def _cascade(self, queries: Sequence[str], texts: Sequence[str], first_rank: np.ndarray) -> np.ndarray:
        """One query's candidates through the exits, dropping the lowest at each (module docstring);
        ``first_rank``: each one's rank in the first stage (``protect``)."""
        torch = lazy.torch()
        enc = self.encode_pairs(queries, texts)
        n = len(queries)
        out = np.empty(n, dtype=np.float64)
        alive = np.arange(n)
        states: dict[int, Any] = {}  # row -> hidden states [T, H] after the current stage
        lengths = [len(x) for x in enc["input_ids"]]
        for stage in range(len(self.exits)):
            self.last_counts[stage] += len(alive)
            logits = np.empty(len(alive), dtype=np.float64)
            for part in longest_first([lengths[i] for i in alive], self.batch_size):
                rows = [int(alive[j]) for j in part]
                batch = {k: torch.from_numpy(v).to(self.device) for k, v in pad_rows(rows, enc, self.tokenizer.pad_token_id).items()}
                width = batch["input_ids"].shape[1]
                if stage == 0:
                    hidden = self._start(batch)
                else:
                    hidden = torch.stack([torch.nn.functional.pad(states[r], (0, 0, 0, width - len(states[r]))) for r in rows])
                hidden = self._advance(hidden, batch["attention_mask"], stage)
                logits[part] = self._exit_logit(hidden, stage).double().cpu().numpy()
                for b, r in enumerate(rows):
                    states[r] = hidden[b, : lengths[r]]
            out[alive] = stage + 1.0 / (1.0 + np.exp(-logits))
            if stage == len(self.exits) - 1:
                break
            survives = first_rank[alive] <= self.protect
            survives[np.argsort(-logits, kind="stable")[: math.ceil(self.keep * len(alive))]] = True
            for r in alive[~survives].tolist():
                states.pop(r, None)
            alive = alive[survives]
        return out

    # ------------------------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save_file

        model, self.model = self.model, self.hf
        try:
            out = super().save(path)
        finally:
            self.model = model
        state = {k: v.detach().cpu().contiguous() for k, v in self.model["exits"].state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE))
        write_versioned(out / CONFIG_FILE, FORMAT_VERSION, {"exits": self.exits, "keep": self.keep, "protect": self.protect})
        return out

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load a directory this cascade saved (training resumes through it)."""
        again = CascadeCrossEncoder(path, max_length=self.max_length, query_max_length=self.query_max_length,
                                    device=self.device)  # fmt: skip
        self.model.load_state_dict(again.model.state_dict())
