"""One front door for every re-ranker family: ``load_reranker(path_or_id, docs=index)``.

The family comes from the checkpoint itself, never from its name (STYLE.md: ``rerankers`` guesses from
substrings of the model id): the ``rankstack_reranker.json`` a rankstack re-ranker saved names it; otherwise the
Hugging Face config decides — a sequence-classification head is a cross-encoder (monoBERT), a
sequence-to-sequence model monoT5, a causal language model query likelihood; an interaction model (KNRM and the
rest of the MatchZoo family) names its family in ``interaction_reranker.json``. A duoBERT or duoT5 checkpoint
from elsewhere says nothing that tells it apart from its mono sibling, so pass ``family=`` for those.
"""

from __future__ import annotations

import os
from typing import Any

from rankstack.models import lazy, model_dir
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.rerank.base import Reranker
from rankstack.rerank.cascade import CascadeCrossEncoder, is_cascade
from rankstack.rerank.cedr import CEDR, is_cedr
from rankstack.rerank.cross import CrossEncoder
from rankstack.rerank.duo import DuoCrossEncoder
from rankstack.rerank.interaction import FAMILIES as INTERACTION_FAMILIES
from rankstack.rerank.interaction import InteractionReranker, is_interaction
from rankstack.rerank.interaction import read_config as read_interaction_config
from rankstack.rerank.qlm import QueryLikelihood
from rankstack.rerank.settings import CONFIG_FILE, read_reranker_config
from rankstack.rerank.t5 import DuoT5, MonoT5

FAMILIES: dict[str, type[Reranker]] = {
    "monoBERT": CrossEncoder,
    "duoBERT": DuoCrossEncoder,
    "monoT5": MonoT5,
    "duoT5": DuoT5,
    "query-likelihood": QueryLikelihood,
}


def detect_family(model: str | os.PathLike[str], revision: str | None = None) -> str:
    """The family name of a checkpoint: from its saved rankstack settings, else from its config."""
    path, _ = model_dir.resolve(model, revision)
    if is_interaction(path):
        return str(read_interaction_config(path)["family"])
    if is_cedr(path):
        return "cedr"
    if is_cascade(path):
        return "cascade"
    if (path / CONFIG_FILE).exists():
        import json

        family = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")).get("family")
        if family in FAMILIES:
            read_reranker_config(path, family)  # checks the format version
            return str(family)
    config = lazy.transformers().AutoConfig.from_pretrained(path)
    architectures = list(config.architectures or [])
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "monoBERT"
    if getattr(config, "is_encoder_decoder", False):
        return "monoT5"
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "query-likelihood"
    raise ModelDirectoryError(
        f"{path} is a bare {config.model_type} encoder ({', '.join(architectures) or 'no architectures listed'}): "
        "it has no head that scores relevance. Train one (rankstack train --reranker) or pass family= to build a "
        f"fresh head on purpose; families: {', '.join(FAMILIES)}"
    )


def load_reranker(
    model: str | os.PathLike[str], docs: Any = None, *, family: str | None = None, **kwargs: Any
) -> Reranker:
    """A re-ranker of the right family for ``model`` (``family=`` overrides the detection)."""
    name = family or detect_family(model, kwargs.get("revision"))
    if name in INTERACTION_FAMILIES or name == "cedr" or name.startswith("cedr-"):
        kwargs.pop("revision", None)  # these load local directories (or packaged names) only
    if name in INTERACTION_FAMILIES:
        return InteractionReranker(model, docs, family=name, **kwargs)
    if name == "cascade":
        return CascadeCrossEncoder(model, docs, **kwargs)
    if name == "cedr" or name.startswith("cedr-"):
        head = kwargs.pop("head", None) or (name.removeprefix("cedr-") if name != "cedr" else None)
        return CEDR(model, docs, head=head, **kwargs)
    if name not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join([*FAMILIES, *INTERACTION_FAMILIES])}, not {name!r}")
    return FAMILIES[name](model, docs, **kwargs)
