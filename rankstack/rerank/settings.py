"""What a rankstack re-ranker saves beside the Hugging Face files, and quiet model loading.

A re-ranker directory is an ordinary Hugging Face model directory; families whose behaviour is more than the
weights (a prompt, label tokens, lengths, an aggregation) also write ``rankstack_reranker.json`` so the
directory re-ranks the same way when loaded again (STYLE.md: each family saves its config with the model).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rankstack.models import lazy
from rankstack.models.model_dir import ModelDirectoryError

#: the small JSON file a rankstack re-ranker writes beside the Hugging Face files (prompt, label tokens, lengths)
CONFIG_FILE = "rankstack_reranker.json"
CONFIG_VERSION = 1


def read_reranker_config(path: Path, family: str) -> dict[str, Any]:
    """The settings a rankstack re-ranker saved in ``path`` (``{}`` for a plain Hugging Face directory).

    A directory saved by another family is refused: a monoT5 checkpoint read as duoT5 would score nonsense.
    """
    file = Path(path) / CONFIG_FILE
    if not file.exists():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelDirectoryError(
            f"cannot read {file}: {e}; delete it to load the directory as a plain model"
        ) from None
    saved = data.get("family")
    if saved != family:
        raise ModelDirectoryError(
            f"{path} was saved as a {saved!r} re-ranker, not {family!r}; load it with the {saved} class "
            f"(or remove {CONFIG_FILE} to read the weights afresh)"
        )
    if int(data.get("format_version", 0)) > CONFIG_VERSION:
        raise ModelDirectoryError(
            f"{file} has format_version {data.get('format_version')}, newer than this rankstack reads "
            f"({CONFIG_VERSION}); upgrade rankstack"
        )
    return {k: v for k, v in data.items() if k not in ("family", "format_version")}


def write_reranker_config(path: Path, family: str, settings: Mapping[str, Any]) -> None:
    data = {"family": family, "format_version": CONFIG_VERSION, **settings}
    (Path(path) / CONFIG_FILE).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


class quiet_transformers:
    """Silence transformers' 'newly initialized weights' notice: the warning above says it plainly."""

    def __enter__(self) -> None:
        tl = lazy.transformers().utils.logging
        self._level = tl.get_verbosity()
        tl.set_verbosity_error()

    def __exit__(self, *exc: object) -> None:
        lazy.transformers().utils.logging.set_verbosity(self._level)


def load_classifier(path: Path, name: str, labels: int, has_head: bool, device: str | None) -> tuple[Any, str]:
    """A sequence-classification model on its device, in eval mode, and the device: the checkpoint's own head,
    or for a bare encoder a fresh ``labels``-way head, with a warning that it must be trained first."""
    import warnings

    torch, transformers = lazy.torch(), lazy.transformers()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    loader = transformers.AutoModelForSequenceClassification
    if has_head:
        model = loader.from_pretrained(path)
    else:
        warnings.warn(
            f"{name} has no sequence-classification head; a new {labels}-label head was initialised at random: "
            "train it (rankstack train --reranker, rankstack.train.train_reranker) before re-ranking",
            stacklevel=3,
        )
        with quiet_transformers():
            model = loader.from_pretrained(path, num_labels=labels)
    return model.to(device).eval(), device


def merged_settings(owner: str, defaults: Mapping[str, Any], saved: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults``, overridden by what a directory ``saved``, overridden by the caller's keywords (``given``); a
    keyword the defaults do not name is refused with the known ones (a misspelt setting must not pass silently)."""
    unknown = set(given) - set(defaults)
    if unknown:
        raise TypeError(f"{owner} has no setting {sorted(unknown)} (it has {sorted(defaults)})")
    return {**defaults, **saved, **given}
