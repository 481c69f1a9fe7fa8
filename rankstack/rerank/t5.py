"""Sequence-to-sequence re-rankers: monoT5 and duoT5, relevance read from two label tokens.

Nogueira, Jiang, Pradeep & Lin (2020), "Document Ranking with a Pretrained Sequence-to-Sequence Model":
monoT5 reads ``Query: {q} Document: {d} Relevant:`` and is trained to answer "true" or "false". The score
is taken after one decoder step from the decoder start token, over the two label tokens only:

    s(q, d) = log_softmax([z_false, z_true])[1]      (z: the first decoder step's logits)

which is pygaggle's ``MonoT5`` (``pygaggle/rerank/transformer.py``: ``greedy_decode`` for one step, the
logits of ``[false_id, true_id]``, ``log_softmax``, index 1). Renormalising over the two labels makes the
score a calibrated log-probability of "true" against "false" whatever mass the model gives other tokens.

Pradeep, Nogueira & Lin (2021), "The Expando-Mono-Duo Design Pattern for Text Ranking with Pretrained
Sequence-to-Sequence Models": duoT5 reads ``Query: {q} Document0: {d0} Document1: {d1} Relevant:`` and

    p(d0 beats d1) = softmax([z_false, z_true])[1]

over every ordered pair of a query's candidates, aggregated (default, as pygaggle's ``DuoT5``) by SYM-SUM:
``s_i = sum_{j != i} p_ij + (1 - p_ji)`` (``rankstack.rerank.duo`` has the aggregations and the pair cache).

Label tokens are words looked up in the checkpoint's tokenizer, never fixed ids (``label_token_id``): with
a T5 SentencePiece vocabulary "true"/"false" encode to the single pieces ``▁true``/``▁false`` (ids 1176 and
6136), the tokens castorini's monoT5/duoT5 checkpoints were trained to emit; mT5/ptt5 checkpoints use other
words ("yes"/"no", "sim"/"não") and are read by passing them. The encoder input is the tokenizer's own
encoding of the filled template (for T5, the text then ``</s>``, as pygaggle's slow tokenizer produces).

Truncation keeps the query (up to ``query_max_length`` tokens) and the template's text, in particular the
closing ``Relevant:`` the model answers; documents are cut from their end to fit ``max_length`` (pygaggle
cuts the whole string, losing ``Relevant:`` on long inputs). duoT5 shares the room fairly: a document
shorter than half keeps all of it, the other takes the rest, two long ones get the same budget, so both
orders of a pair see the same document text (the cut is re-checked on the rendered prompt, so a
tokenizer that merges across a document's edge can cost one order a token more).

A re-ranker saves as a Hugging Face directory plus ``rankstack_reranker.json`` (template, label tokens and
their ids, lengths), read back as the defaults when the directory is loaded.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.batching import longest_first, pad_rows, symmetric_batches
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.rerank.base import Missing, PointwiseReranker
from rankstack.rerank.duo import PairwiseReranker, check_aggregate
from rankstack.rerank.prompts import TEMPLATES, cut_to_tokens, fit_documents, label_token_id, resolve_template
from rankstack.rerank.settings import read_reranker_config, write_reranker_config
from rankstack.rerank.texts import DocSource

log = logging.getLogger(__name__)

_DEFAULT_MAX_LENGTH = 512


# ------------------------------------------------------------------------------------ the shared model
class _LabelModel:
    """What monoT5 and duoT5 share: a seq2seq model read after one decoder step over two label tokens."""

    family: str
    default_template: str
    fields: tuple[str, ...]

    def _setup(
        self,
        model: str | os.PathLike[str],
        *,
        template: str | None,
        true_token: str | None,
        false_token: str | None,
        max_length: int | None,
        query_max_length: int | None,
        device: str | None,
        batch_size: int,
        revision: str | None,
    ) -> dict[str, Any]:
        self.model_name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path)
        saved = read_reranker_config(self.path, self.family)
        transformers = lazy.transformers()
        config = transformers.AutoConfig.from_pretrained(self.path)
        if not getattr(config, "is_encoder_decoder", False):
            raise ModelDirectoryError(
                f"{self.path} holds a {getattr(config, 'model_type', '?')} model, not an encoder-decoder; "
                f"{self.family} needs a sequence-to-sequence checkpoint (T5, e.g. castorini/monot5-base-msmarco)"
            )
        self.template = resolve_template(template or saved.get("template") or self.default_template, self.fields)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.true_token = str(true_token or saved.get("true_token") or "true")
        self.false_token = str(false_token or saved.get("false_token") or "false")
        self.true_id = label_token_id(self.tokenizer, self.true_token)
        self.false_id = label_token_id(self.tokenizer, self.false_token)
        if self.true_id == self.false_id:
            raise ValueError(f"true_token {self.true_token!r} and false_token {self.false_token!r} are the same token")
        saved_ids = saved.get("label_ids")
        if (
            saved_ids
            and not (true_token or false_token)
            and saved_ids != {"false": self.false_id, "true": self.true_id}
        ):
            raise ModelDirectoryError(
                f"{self.path}: the label tokens were saved with ids {saved_ids}, but this tokenizer gives "
                f"false={self.false_id}, true={self.true_id}; the tokenizer changed since the model was saved"
            )
        self.max_length = int(max_length or saved.get("max_length") or _DEFAULT_MAX_LENGTH)
        self.query_max_length = int(query_max_length or saved.get("query_max_length") or min(64, self.max_length // 2))
        if self.query_max_length >= self.max_length:
            raise ValueError(f"query_max_length ({self.query_max_length}) must be below max_length ({self.max_length})")
        start = getattr(config, "decoder_start_token_id", None)
        if start is None:
            raise ModelDirectoryError(f"{self.path}: config.json has no decoder_start_token_id to start decoding from")
        self._decoder_start = int(start)
        self.batch_size = int(batch_size)
        self._warned_truncation = False
        torch = lazy.torch()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = transformers.AutoModelForSeq2SeqLM.from_pretrained(self.path)
        self.model.to(self.device).eval()
        return saved

    @property
    def cache_key(self) -> Hashable:
        return (
            self.family,
            self.model_name,
            self.template,
            self.false_id,
            self.true_id,
            self.max_length,
            self.query_max_length,
        )

    # ------------------------------------------------------------------------------------ tokenising
    def encode_prompts(self, queries: Sequence[str], docs: Sequence[Sequence[str]]) -> list[list[int]]:
        """Encoder token ids per row: the template filled with the query and the row's documents, cut to fit."""
        fields = self.fields[1:]
        queries = cut_to_tokens(self.tokenizer, queries, self.query_max_length)

        def render_for(q: str) -> Callable[[Sequence[str]], str]:
            return lambda ds: self.template.format(query=q, **dict(zip(fields, ds, strict=True)))

        texts = [render_for(q)(ds) for q, ds in zip(queries, docs, strict=True)]
        ids = self.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        long = [i for i, x in enumerate(ids) if len(x) > self.max_length]
        for i in long:
            cut = fit_documents(self.tokenizer, render_for(queries[i]), docs[i], self.max_length)
            ids[i] = self.tokenizer(render_for(queries[i])(cut), add_special_tokens=True, verbose=False)["input_ids"]
        if long and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{self.model_name}: {len(long)} of {len(texts)} inputs reach max_length={self.max_length} tokens; "
                "their documents were cut (shown once)",
                stacklevel=3,
            )
        return [list(x) for x in ids]

    def _pad(self, rows: Sequence[int], ids: Sequence[Sequence[int]]) -> dict[str, Any]:
        torch = lazy.torch()
        batch = pad_rows(rows, {"input_ids": ids}, self.tokenizer.pad_token_id)
        return {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}

    # ------------------------------------------------------------------------------------ scoring
    def label_logits(self, features: dict[str, Any]) -> Any:
        """Logits ``[B, 2]`` of (false, true) at the first decoder step, with gradients."""
        torch = lazy.torch()
        start = torch.full(
            (features["input_ids"].shape[0], 1), self._decoder_start, dtype=torch.long, device=self.device
        )
        logits = self.model(
            input_ids=features["input_ids"], attention_mask=features["attention_mask"], decoder_input_ids=start
        ).logits
        return logits[:, 0, [self.false_id, self.true_id]]

    def _true_probabilities(self, ids: list[list[int]], lengths_in_couples: bool, desc: str, log: bool) -> np.ndarray:
        """softmax (or log_softmax) of "true" over the two labels for each row, batched by length."""
        torch = lazy.torch()
        out = np.empty(len(ids), dtype=np.float64)
        lengths = [len(x) for x in ids]
        batches = (symmetric_batches if lengths_in_couples else longest_first)(lengths, self.batch_size)
        with lazy.progress(len(ids), desc, self.show_progress, unit="pair") as bar:
            for rows in batches:
                with torch.inference_mode():
                    z = self.label_logits(self._pad(rows, ids)).double()
                    s = z.log_softmax(-1)[:, 1] if log else z.softmax(-1)[:, 1]
                out[rows] = s.cpu().numpy()
                bar.update(len(rows))
        return out

    # ------------------------------------------------------------------------------------ saving
    def _save(self, path: str | os.PathLike[str], extra: dict[str, Any]) -> Path:
        out = model_dir.save_pretrained(path, self.model, self.tokenizer)
        settings = {
            "template": self.template,
            "true_token": self.true_token,
            "false_token": self.false_token,
            "label_ids": {"false": self.false_id, "true": self.true_id},
            "max_length": self.max_length,
            "query_max_length": self.query_max_length,
            **extra,
        }
        write_reranker_config(out, self.family, settings)
        return out

    def _repr_extra(self) -> str:
        extra = f", template={self.template!r}" if self.template != TEMPLATES[self.default_template] else ""
        if (self.true_token, self.false_token) != ("true", "false"):
            extra += f", true_token={self.true_token!r}, false_token={self.false_token!r}"
        extra += f", max_length={self.max_length}" if self.max_length != _DEFAULT_MAX_LENGTH else ""
        return extra


# ------------------------------------------------------------------------------------ monoT5
class MonoT5(_LabelModel, PointwiseReranker):
    """monoT5 (Nogueira et al. 2020): ``s = log_softmax([z_false, z_true])[1]`` after one decoder step.

    ``model``: a local directory or Hub id of a T5-style ``AutoModelForSeq2SeqLM`` (castorini/monot5-base-msmarco).
    ``template``: ``"monoT5"`` (``Query: {query} Document: {document} Relevant:``) or a format string over
    ``{query}`` and ``{document}``. ``true_token`` / ``false_token``: the label words (module docstring).
    ``max_length``: encoder tokens (512, monoT5's training length); ``query_max_length`` caps the query
    (64 tokens, or half of a smaller ``max_length``).
    Scores are cached by (model, query, docid) like every pointwise re-ranker.
    """

    family = "monoT5"
    default_template = "monoT5"
    fields = ("query", "document")

    def __init__(
        self,
        model: str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        template: str | None = None,
        true_token: str | None = None,
        false_token: str | None = None,
        max_length: int | None = None,
        query_max_length: int | None = None,
        device: str | None = None,
        batch_size: int = 16,
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
        revision: str | None = None,
    ):
        PointwiseReranker.__init__(self, docs, missing=missing, show_progress=show_progress, cache=cache)
        self._setup(
            model,
            template=template,
            true_token=true_token,
            false_token=false_token,
            max_length=max_length,
            query_max_length=query_max_length,
            device=device,
            batch_size=batch_size,
            revision=revision,
        )

    def __repr__(self) -> str:
        docs = f", docs={self.docs!r}" if self.docs is not None else ""
        return f"MonoT5({self.model_name!r}{docs}{self._repr_extra()})"

    #: scores are log p(true): the trainer's pointwise loss reads them as log-probabilities
    scores_are_log_probs = True

    def features(self, queries: Sequence[str], docs: Sequence[str]) -> dict[str, Any]:
        """A padded torch batch of prompts on the model's device: what training feeds ``label_logits``."""
        ids = self.encode_prompts(queries, [(d,) for d in docs])
        return self._pad(range(len(ids)), ids)

    def pair_scores(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        """``log p(true)`` normalised over the two labels, a torch tensor ``[B]`` with gradients (for training)."""
        return self.label_logits(self.features(queries, docs)).log_softmax(-1)[:, 1]

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        if not len(queries):
            return np.zeros(0, dtype=np.float64)
        ids = self.encode_prompts(queries, [(d,) for d in docs])
        return self._true_probabilities(ids, False, "monoT5 re-ranking", log=True)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """A Hugging Face directory plus ``rankstack_reranker.json`` (template, label tokens, lengths)."""
        return self._save(path, {})


# ------------------------------------------------------------------------------------ duoT5
class DuoT5(_LabelModel, PairwiseReranker):
    """duoT5 (Pradeep et al. 2021): ``p(d0 beats d1) = softmax([z_false, z_true])[1]`` over ordered pairs.

    Same arguments as ``MonoT5`` with ``template="duoT5"`` (``{query}``, ``{document0}``, ``{document1}``) and
    ``aggregate`` (default ``"sym-sum"``, pygaggle's; see ``rankstack.rerank.duo``). Both orders of a pair are
    batched together and preferences are cached by (model, query, docid_i, docid_j).
    """

    family = "duoT5"
    default_template = "duoT5"
    fields = ("query", "document0", "document1")

    def __init__(
        self,
        model: str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        aggregate: str | None = None,
        template: str | None = None,
        true_token: str | None = None,
        false_token: str | None = None,
        max_length: int | None = None,
        query_max_length: int | None = None,
        device: str | None = None,
        batch_size: int = 16,
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
        revision: str | None = None,
    ):
        PairwiseReranker.__init__(self, docs, missing=missing, show_progress=show_progress, cache=cache)
        saved = self._setup(
            model,
            template=template,
            true_token=true_token,
            false_token=false_token,
            max_length=max_length,
            query_max_length=query_max_length,
            device=device,
            batch_size=max(2, batch_size),
            revision=revision,
        )
        self.aggregate = check_aggregate(aggregate or saved.get("aggregate") or "sym-sum")

    def __repr__(self) -> str:
        docs = f", docs={self.docs!r}" if self.docs is not None else ""
        agg = f", aggregate={self.aggregate!r}" if self.aggregate != "sym-sum" else ""
        return f"DuoT5({self.model_name!r}{docs}{agg}{self._repr_extra()})"

    def features(self, queries: Sequence[str], docs_a: Sequence[str], docs_b: Sequence[str]) -> dict[str, Any]:
        """A padded torch batch of (query, d0, d1) prompts on the model's device."""
        ids = self.encode_prompts(queries, list(zip(docs_a, docs_b, strict=True)))
        return self._pad(range(len(ids)), ids)

    def pair_scores(self, queries: Sequence[str], docs_a: Sequence[str], docs_b: Sequence[str]) -> Any:
        """``log p(a beats b)`` per row, a torch tensor ``[B]`` with gradients (for training)."""
        return self.label_logits(self.features(queries, docs_a, docs_b)).log_softmax(-1)[:, 1]

    def pair_probabilities(self, queries: Sequence[str], docs_a: Sequence[str], docs_b: Sequence[str]) -> np.ndarray:
        """``p(a beats b)`` per row; rows ``2m``, ``2m + 1`` (both orders of a pair) share a batch."""
        if not len(queries):
            return np.zeros(0, dtype=np.float64)
        ids = self.encode_prompts(queries, list(zip(docs_a, docs_b, strict=True)))
        return self._true_probabilities(ids, True, "duoT5 re-ranking", log=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """A Hugging Face directory plus ``rankstack_reranker.json`` (template, label tokens, lengths, aggregation)."""
        return self._save(path, {"aggregate": self.aggregate})
