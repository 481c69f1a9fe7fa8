"""The MatchZoo family as re-ranking stages: ``InteractionReranker(model, docs, family="knrm")``.

``model`` is either a checkpoint this class saved (its family, settings, trained embeddings and tokenizer
come with it) or where fresh token embeddings come from (``rankstack.rerank.vocabulary``: ``minilm``, the
packaged all-MiniLM-L6-v2's input embeddings; ``static-model``, the packaged Model2Vec model; any Hugging
Face encoder or Model2Vec directory), in which case ``family`` picks the model of ``models()`` and the rest of
its parts start from a seeded random initialisation. Families: the MatchZoo models of ``matchzoo`` and TKL
(``tkl``, for long documents). Train it with ``rankstack.train.train_reranker`` (the
cross-encoders' trainer: the embeddings fine-tune at ``learning_rate``, the fresh layers at
``head_learning_rate``), or ``rankstack train COLL --reranker --family knrm --model minilm``.

A checkpoint is a directory: ``interaction_reranker.json`` (format version, family, settings, source),
``model.safetensors`` (every weight, embeddings included) and ``tokenizer.json``. Nothing is pickled.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.batching import longest_first, pad_rows
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.rerank.base import Missing, PointwiseReranker
from rankstack.rerank.texts import DocSource
from rankstack.rerank.vocabulary import Vocabulary

log = logging.getLogger(__name__)

CONFIG_FILE = "interaction_reranker.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1
FAMILIES: tuple[str, ...] = ("knrm", "conv-knrm", "drmm", "matchpyramid", "duet", "dssm", "tkl")


def models() -> dict[str, Any]:
    """Family name -> model class (imports torch)."""
    from rankstack.rerank import matchzoo, tkl

    return {"knrm": matchzoo.KNRM, "conv-knrm": matchzoo.ConvKNRM, "drmm": matchzoo.DRMM,
            "matchpyramid": matchzoo.MatchPyramid, "duet": matchzoo.Duet, "dssm": matchzoo.DSSM, "tkl": tkl.TKL}  # fmt: skip


def is_interaction(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` is a saved interaction re-ranker directory (so its family needs no flag)."""
    return (Path(model) / CONFIG_FILE).is_file()


def read_config(path: Path) -> dict[str, Any]:
    """A checkpoint's settings file, checked for the format version this code reads and a known family."""
    config = model_dir.read_versioned(path / CONFIG_FILE, FORMAT_VERSION)
    if config.get("family") not in FAMILIES:
        raise ModelDirectoryError(f"{path / CONFIG_FILE} names family {config.get('family')!r}, not one of {FAMILIES}")
    return config


class InteractionReranker(PointwiseReranker):
    """A MatchZoo-family model as a pointwise re-ranker (module docstring).

    ``max_length`` / ``query_max_length``: document / query tokens kept (default 512 / 32, or what a saved model
    was trained with; longer texts are cut, with one warning). ``skip_punctuation``: drop tokens made only of punctuation. ``settings`` are the family's
    hyper-parameters (``models()[family].defaults``). An empty query or document scores finitely (its
    interaction features are all zero) and is reported by one warning per call.
    """

    score_kind = "logit"

    def __init__(
        self,
        model: str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        family: str | None = None,
        max_length: int | None = None,
        query_max_length: int | None = None,
        batch_size: int = 64,
        skip_punctuation: bool = True,
        device: str | None = None,
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
        seed: int = 0,
        **settings: Any,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress, cache=cache)
        torch = lazy.torch()
        classes = models()

        self.name = str(model)
        saved = is_interaction(model)
        config = read_config(Path(model)) if saved else {}
        self.max_length = int(max_length or config.get("max_length") or 512)
        self.query_max_length = int(query_max_length or config.get("query_max_length") or 32)
        self.batch_size = int(batch_size)
        if self.max_length < 1 or self.query_max_length < 1:
            raise ValueError("max_length and query_max_length must be at least 1 token")
        self.device = lazy.default_device(device)
        if saved:
            path = Path(model)
            if family is not None and family != config["family"]:
                raise ValueError(f"{path} holds a {config['family']} model, not {family}")
            self.family = config["family"]
            self.skip_punctuation = bool(config.get("skip_punctuation", skip_punctuation))
            self.settings = {**config.get("settings", {}), **settings}
            self.source = str(config.get("source", path))
            self.vocabulary = Vocabulary(_checkpoint_tokenizer(path), np.zeros((0, 0), np.float32), str(path), check=False)
        else:
            if family is None:
                raise ValueError(f"{model} is not a saved interaction re-ranker: pass family= (one of {', '.join(FAMILIES)}) "
                                 "to build a fresh one on its embeddings")  # fmt: skip
            if family not in classes:
                raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
            self.family, self.skip_punctuation, self.source = family, bool(skip_punctuation), str(model)
            self.vocabulary = Vocabulary.load(model)
            self.settings = dict(settings)
        cls = classes[self.family]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if saved:
                self.model = _load_model(cls, Path(model), self.vocabulary, self.settings)
            else:
                self.model = cls(*self.vocabulary.matrix.shape, **self.settings)
                self.model.embedding.weight.data.copy_(torch.from_numpy(self.vocabulary.matrix))
                self.vocabulary.matrix = np.zeros((0, 0), np.float32)  # the module holds the vectors now
        self.settings = dict(self.model.settings)
        self.model.embedding.weight.requires_grad_(cls.trains_embeddings)
        self.model.base_model_prefix = "embedding"  # the trainer gives the other (fresh) parts head_learning_rate
        self.fresh_head = not saved
        self.model.to(self.device).eval()
        self._warned_cut = False

    # ------------------------------------------------------------------------------------ inputs
    def _pad(self, ids: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        """Token ids and a float keep-mask, at least one position wide (all-empty batches score too)."""
        torch = lazy.torch()
        batch = pad_rows(range(len(ids)), {"input_ids": ids}, 0, min_width=1)
        mask = batch["attention_mask"].astype(np.float32)
        return torch.from_numpy(batch["input_ids"]).to(self.device), torch.from_numpy(mask).to(self.device)

    def _ids(self, texts: Sequence[str], limit: int, what: str) -> list[list[int]]:
        ids, cut = self.vocabulary.ids(texts, limit, self.skip_punctuation)
        if cut and not self._warned_cut and what == "document":
            self._warned_cut = True
            warnings.warn(
                f"{cut} of {len(texts)} documents are longer than max_length={limit} tokens and were cut; raise "
                "max_length, or score passages (rankstack.rerank.PassageReranker) for long documents",
                stacklevel=4,
            )
        empty = sum(1 for x in ids if not x)
        if empty:
            warnings.warn(
                f"{empty} {what}{'s' if empty > 1 else ''} of {len(texts)} have no tokens left (empty, or only "
                f"punctuation): {self.family} scores them on all-zero interaction features",
                stacklevel=4,
            )
        return ids

    # ------------------------------------------------------------------------------------ scoring
    def pair_scores(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        """Logits of (query, document) pairs with gradients ``[B]``: the trainer's entry point."""
        q_ids, q_mask = self._pad(self._ids(queries, self.query_max_length, "query"))
        d_ids, d_mask = self._pad(self._ids(docs, self.max_length, "document"))
        return self.model(q_ids, q_mask, d_ids, d_mask)

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        torch = lazy.torch()
        out = np.empty(len(queries), dtype=np.float64)
        if not len(queries):
            return out
        q_all = self._ids(queries, self.query_max_length, "query")
        d_all = self._ids(docs, self.max_length, "document")
        bar = lazy.progress(len(queries), f"{self.family} re-ranking", self.show_progress, unit="pair")
        with torch.inference_mode():
            for rows in longest_first([len(x) for x in d_all], self.batch_size):
                q_ids, q_mask = self._pad([q_all[i] for i in rows])
                d_ids, d_mask = self._pad([d_all[i] for i in rows])
                out[rows] = self.model(q_ids, q_mask, d_ids, d_mask).float().cpu().numpy()
                bar.update(len(rows))
        bar.close()
        return out

    def __repr__(self) -> str:
        return f"InteractionReranker({self.name!r}, family={self.family!r})"

    # ------------------------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE))
        self.vocabulary.tokenizer.save(str(out / "tokenizer.json"))
        config = {"family": self.family, "settings": self.settings,
                  "skip_punctuation": self.skip_punctuation, "source": self.source, "max_length": self.max_length,
                  "query_max_length": self.query_max_length,
                  "vocab_size": int(self.model.embedding.num_embeddings), "dim": int(self.model.dim)}  # fmt: skip
        model_dir.write_versioned(out / CONFIG_FILE, FORMAT_VERSION, config)
        return out

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load the weights of a directory this re-ranker saved (training resumes through it)."""
        again = _load_model(type(self.model), Path(path), self.vocabulary, self.settings)
        self.model.load_state_dict(again.state_dict())


def _checkpoint_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    if not (path / "tokenizer.json").exists():
        raise ModelDirectoryError(f"{path} has no tokenizer.json: an interaction re-ranker saves its tokenizer beside "
                                  "its weights; copy it from the model the embeddings came from")  # fmt: skip
    return Tokenizer.from_file(str(path / "tokenizer.json"))


def _load_model(cls: Any, path: Path, vocabulary: Vocabulary, settings: dict[str, Any]) -> Any:
    from safetensors.torch import load_file

    if not (path / WEIGHTS_FILE).exists():
        raise ModelDirectoryError(f"{path} has no {WEIGHTS_FILE}")
    state = load_file(str(path / WEIGHTS_FILE))
    table = state.get("embedding.weight")
    if table is None:
        raise ModelDirectoryError(f"{path / WEIGHTS_FILE} holds no embedding.weight: not an interaction re-ranker")
    vocabulary.check_size(len(table))
    model = cls(*table.shape, **settings)
    model_dir.load_exactly(model, state, path / WEIGHTS_FILE, f"a {cls.__name__} with settings {settings}")
    return model
