"""Checkpoints: a Hugging Face model directory plus what resuming needs, written atomically.

``checkpoint-<step>/`` is an ordinary model directory made by the trained stage's ``save`` (``BiEncoder.save``,
``CrossEncoder.save``, ...: it loads in rankstack, transformers and sentence-transformers) with three additions: ``trainer_state.json`` (step, configuration,
loss history), ``negatives.json`` (the hard-negative pools in use, which an ANCE refresh changes) and
``optimizer.pt`` (AdamW's moments, written with ``torch.save`` and read back with ``weights_only=True``:
tensors and numbers only, never arbitrary pickled objects). No random-number state is needed: the trainer
derives every random draw from (seed, step), so step ``n`` is the same whether or not the run was resumed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rankstack.dense.encoder import BiEncoder
from rankstack.errors import RankstackError

STATE_FILE = "trainer_state.json"
NEGATIVES_FILE = "negatives.json"
OPTIMIZER_FILE = "optimizer.pt"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


class CheckpointError(RankstackError):
    """A checkpoint that cannot be resumed from; says which file is wrong and what to do."""


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest step first (half-written ones are hidden temp dirs)."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := _CHECKPOINT.fullmatch(p.name))]
    return [p for _, p in sorted(found) if (p / STATE_FILE).exists()]


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    tmp = path / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    tmp.replace(path / STATE_FILE)


def read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"cannot read {path / STATE_FILE} ({e}); delete {path} to resume from an earlier one"
        ) from None


def save(
    path: Path,
    encoder: Any,
    state: Mapping[str, Any],
    negatives: Mapping[str, Sequence[str]] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write a checkpoint into a hidden sibling, then rename it to ``path`` (a crash leaves no half checkpoint)."""
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    encoder.save(tmp)
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
    if negatives is not None:
        (tmp / NEGATIVES_FILE).write_text(json.dumps({q: list(p) for q, p in negatives.items()}), encoding="utf-8")
    write_state(tmp, state)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def load(
    path: Path, encoder: Any, optimizer: torch.optim.Optimizer | None = None
) -> tuple[dict[str, Any], dict[str, list[str]] | None]:
    """Load a checkpoint's weights into ``encoder`` (a BiEncoder, or any stage with a ``.model`` module)
    and the optimizer, returning the checkpoint's state and negative pools."""
    if hasattr(encoder, "load_checkpoint"):  # a model with parts outside its transformer (ColBERT's projection)
        encoder.load_checkpoint(path)
    else:
        for module, directory in _towers(encoder, path):
            saved = type(module).from_pretrained(directory)  # the same class that saved it: heads included
            module.load_state_dict(saved.state_dict())
    if optimizer is not None:
        if not (path / OPTIMIZER_FILE).exists():
            raise CheckpointError(
                f"{path} has no {OPTIMIZER_FILE}; it is a model directory, not a checkpoint to resume"
            )
        optimizer.load_state_dict(torch.load(path / OPTIMIZER_FILE, weights_only=True))
    negatives = None
    if (path / NEGATIVES_FILE).exists():
        negatives = json.loads((path / NEGATIVES_FILE).read_text(encoding="utf-8"))
    return read_state(path), negatives


def _towers(encoder: Any, path: Path) -> list[tuple[Any, Path]]:
    if not isinstance(encoder, BiEncoder):
        return [(encoder.model, path)]
    if encoder.shared:
        return [(encoder.query.model, path)]
    return [(encoder.query.model, path / "query"), (encoder.doc.model, path / "doc")]


def prune(output_dir: Path, keep: int | None) -> None:
    """Delete all but the newest ``keep`` checkpoints (None: keep all)."""
    if keep is None:
        return
    for old in checkpoints(output_dir)[: -keep or None]:
        shutil.rmtree(old)
