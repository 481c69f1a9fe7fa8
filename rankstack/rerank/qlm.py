"""Query likelihood with a language model: rank a document by how likely it makes the query.

dos Santos, Ma, Nallapati, Huang & Xiang (2020), "Beyond [CLS] through Ranking by Generation", score a
document by the probability a generative model conditioned on it gives the query; Zhuang, Li & Zuccon
(2021), "Deep Query Likelihood Models for Information Retrieval", and Zhuang & Zuccon's TILDE work do the
same with T5 trained to write queries from documents (docT5query). The score here is the per-token average log-likelihood

    s(q, d) = (1 / |q|) * sum_t log p(q_t | prompt(d), q_<t)          (``normalize=True``, default)

or the plain sum (``normalize=False``, the log-likelihood itself). A query's tokens are the same for every
document (unless a causal template ends mid-word, so the query's first token merges with the document's
last), so both rank a query's documents alike; the average puts queries of different lengths on one
scale, which matters once scores of different queries meet (fusion, thresholds).

The model family is read from the checkpoint's config (``is_encoder_decoder``), never from its name:

- sequence-to-sequence (``AutoModelForSeq2SeqLM``): the encoder reads ``template`` filled with the document,
  encoded as the tokenizer does it (T5: the text then ``</s>``); the decoder, from the decoder start token,
  reads the query. The default template is ``"{document}"``, docT5query's input (the passage text alone),
  so a docT5query checkpoint (castorini/doc2query-t5-base-msmarco) is a QLM with no prompt. ``eos=True``
  (default) also scores the end-of-sequence token: docT5query is trained on targets ending in ``</s>``,
  so p(q) is the probability of the whole query and nothing after it.
- causal (``AutoModelForCausalLM``): one sequence, ``template`` (default ``"Document: {document} Query:"``)
  then ``query_template`` (default ``" {query}"``), tokenised together as running text; only the tokens
  covering query characters count. The tokenizer's leading special tokens (a BOS, where it adds one) come
  first. ``eos=False`` by default: a general causal LM has no reason to end a query with its EOS token.

The query is kept (up to ``query_max_length`` tokens, cut at a token boundary); the document is cut from
its end so everything fits ``max_length``. Batches are padded on the right: a causal model's real tokens
then keep positions 0..n-1 and attend only to earlier real tokens, exactly as for the row alone; the seq2seq
encoder masks its padding and the decoder's padding comes after every scored step. Padded positions are
never read (scores gather only the scored positions), so a row's score does not depend on its batch.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.batching import longest_first
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.rerank.base import Missing, PointwiseReranker
from rankstack.rerank.prompts import cut_to_tokens, fit_documents, resolve_template
from rankstack.rerank.settings import read_reranker_config, write_reranker_config
from rankstack.rerank.texts import DocSource

log = logging.getLogger(__name__)

Family = Literal["seq2seq", "causal"]

#: named document templates
TEMPLATES: dict[str, str] = {
    "docT5query": "{document}",
    "document-query": "Document: {document} Query:",
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "seq2seq": {"template": "docT5query", "query_template": "{query}", "eos": True},
    "causal": {"template": "document-query", "query_template": " {query}", "eos": False},
}
_SEQ2SEQ_MAX_LENGTH = 512


class QueryLikelihood(PointwiseReranker):
    """Query likelihood re-ranker over a causal or sequence-to-sequence language model (module docstring).

    ``model``: local directory or Hub id. ``template``: a name from ``TEMPLATES`` or a format string over
    ``{document}``; ``query_template`` a format string over ``{query}``. ``normalize``: average (default) or
    sum of the query tokens' log-probabilities. ``eos``: also score the end-of-sequence token (default: yes
    for seq2seq, no for causal). ``max_length``: the causal sequence, or the seq2seq encoder input (512);
    ``query_max_length`` caps the query (64 tokens, or half of a smaller ``max_length``). Settings saved by
    ``save`` are the defaults on reload.
    """

    family_name = "query-likelihood"

    def __init__(
        self,
        model: str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        template: str | None = None,
        query_template: str | None = None,
        normalize: bool | None = None,
        eos: bool | None = None,
        max_length: int | None = None,
        query_max_length: int | None = None,
        device: str | None = None,
        batch_size: int = 16,
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
        revision: str | None = None,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress, cache=cache)
        self.model_name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path)
        saved = read_reranker_config(self.path, self.family_name)
        transformers = lazy.transformers()
        config = transformers.AutoConfig.from_pretrained(self.path)
        self.family: Family = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
        defaults = _DEFAULTS[self.family]
        self.template = resolve_template(
            template or saved.get("template") or defaults["template"], ("document",), TEMPLATES
        )
        self.query_template = resolve_template(
            query_template or saved.get("query_template") or defaults["query_template"], ("query",), {}
        )
        self.normalize = bool(saved.get("normalize", True) if normalize is None else normalize)
        self.eos = bool(saved.get("eos", defaults["eos"]) if eos is None else eos)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        if self.family == "causal":
            limit = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
        else:
            limit = None
        wanted = int(max_length or saved.get("max_length") or limit or _SEQ2SEQ_MAX_LENGTH)
        self.max_length = min(wanted, int(limit)) if limit else wanted
        self.query_max_length = int(query_max_length or saved.get("query_max_length") or min(64, self.max_length // 2))
        if self.query_max_length + 2 >= self.max_length:
            raise ValueError(f"query_max_length ({self.query_max_length}) must be below max_length ({self.max_length})")
        self.eos_id: int | None = _eos_id(self.tokenizer, config)
        if self.eos and self.eos_id is None:
            raise ModelDirectoryError(
                f"{self.path}: neither the tokenizer nor config.json names an end-of-sequence token; pass eos=False"
            )
        if self.family == "seq2seq":
            start = getattr(config, "decoder_start_token_id", None)
            if start is None:
                raise ModelDirectoryError(f"{self.path}: config.json has no decoder_start_token_id")
            self._decoder_start = int(start)
            self._lead: list[int] = []
            loader = transformers.AutoModelForSeq2SeqLM
        else:
            self._lead = _leading_specials(self.tokenizer)
            loader = transformers.AutoModelForCausalLM
        self.batch_size = int(batch_size)
        self._warned_truncation = False
        torch = lazy.torch()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = loader.from_pretrained(self.path)
        self.model.to(self.device).eval()

    # ------------------------------------------------------------------------------------ identity
    @property
    def cache_key(self) -> Hashable:
        return (
            self.family_name,
            self.model_name,
            self.template,
            self.query_template,
            self.normalize,
            self.eos,
            self.max_length,
            self.query_max_length,
        )

    def __repr__(self) -> str:
        docs = f", docs={self.docs!r}" if self.docs is not None else ""
        extra = "" if self.normalize else ", normalize=False"
        if self.template != TEMPLATES[_DEFAULTS[self.family]["template"]]:
            extra += f", template={self.template!r}"
        return f"QueryLikelihood({self.model_name!r}{docs}{extra})"

    # ------------------------------------------------------------------------------------ tokenising
    def encode(self, queries: Sequence[str], docs: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """Per row: causal ``(input ids, positions of the scored tokens)``; seq2seq ``(encoder ids, target ids)``."""
        queries = cut_to_tokens(self.tokenizer, queries, self.query_max_length)
        out = self._encode_causal(queries, docs) if self.family == "causal" else self._encode_seq2seq(queries, docs)
        return out

    def _warn_cut(self, cut: int, total: int) -> None:
        if cut and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{self.model_name}: {cut} of {total} documents were cut to fit max_length={self.max_length} "
                "tokens with the query (shown once)",
                stacklevel=4,
            )

    def _encode_seq2seq(self, queries: Sequence[str], docs: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        prompts = [self.template.format(document=d) for d in docs]
        enc = self.tokenizer(prompts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        cut = 0
        for i, ids in enumerate(enc):
            if len(ids) > self.max_length:
                cut += 1
                (d,) = fit_documents(
                    self.tokenizer, lambda ds: self.template.format(document=ds[0]), [docs[i]], self.max_length
                )
                enc[i] = self.tokenizer(self.template.format(document=d), add_special_tokens=True, verbose=False)[
                    "input_ids"
                ]
        self._warn_cut(cut, len(docs))
        unique = list(dict.fromkeys(queries))
        qids = self.tokenizer(
            [self.query_template.format(query=q) for q in unique], add_special_tokens=False, verbose=False
        )["input_ids"]
        targets = {q: [*x, self.eos_id] if self.eos else list(x) for q, x in zip(unique, qids, strict=True)}
        empty = [q for q in unique if not targets[q]]
        if empty:
            raise ValueError(f"query {empty[0]!r} has no tokens to score; drop empty queries or pass eos=True")
        return [(list(e), targets[q]) for e, q in zip(enc, queries, strict=True)]

    def _encode_causal(self, queries: Sequence[str], docs: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        extra = len(self._lead) + int(self.eos)
        out = []
        cut = 0
        for q, d in zip(queries, docs, strict=True):
            qpart = self.query_template.format(query=q)
            prompt = self.template.format(document=d)
            enc = self.tokenizer(prompt + qpart, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            if extra + len(enc["input_ids"]) > self.max_length:
                cut += 1
                (d,) = fit_documents(
                    self.tokenizer,
                    lambda ds, qpart=qpart: self.template.format(document=ds[0]) + qpart,
                    [d],
                    self.max_length,
                    add_special_tokens=False,
                    extra=extra,
                )
                prompt = self.template.format(document=d)
                enc = self.tokenizer(
                    prompt + qpart, add_special_tokens=False, return_offsets_mapping=True, verbose=False
                )
            boundary = len(prompt)
            lead = len(self._lead)
            # a token counts when it covers a query character (its end lies past the prompt)
            scored = [lead + k for k, (_, end) in enumerate(enc["offset_mapping"]) if end > boundary]
            ids = [*self._lead, *enc["input_ids"]]
            if self.eos:
                scored.append(len(ids))
                ids.append(self.eos_id)
            if not scored:
                raise ValueError(f"query {q!r} has no tokens to score; drop empty queries or pass eos=True")
            if scored[0] == 0:
                raise ValueError(
                    "the first query token has nothing before it to condition on: the template renders empty and the "
                    "tokenizer adds no BOS token; use a template with text before the query"
                )
            out.append((ids, scored))
        self._warn_cut(cut, len(docs))
        return out

    # ------------------------------------------------------------------------------------ scoring
    def _log_likelihoods(self, rows: Sequence[tuple[list[int], list[int]]], dtype: Any = None) -> Any:
        """Per-row (normalised) query log-likelihood as a torch tensor ``[B]`` (gradients flow)."""
        torch = lazy.torch()
        if self.family == "causal":
            width = max(len(ids) for ids, _ in rows)
            x = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            row_idx, pos_idx, tgt = [], [], []
            for r, (ids, scored) in enumerate(rows):
                x[r, : len(ids)] = torch.tensor(ids)
                mask[r, : len(ids)] = 1
                for t in scored:  # token t is predicted by the logits at t - 1
                    row_idx.append(r)
                    pos_idx.append(t - 1)
                    tgt.append(ids[t])
            logits = self.model(input_ids=x.to(self.device), attention_mask=mask.to(self.device)).logits
        else:
            width = max(len(enc) for enc, _ in rows)
            dec_width = max(len(target) for _, target in rows)
            pad = self.tokenizer.pad_token_id or 0
            x = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            dec = torch.full((len(rows), dec_width), pad, dtype=torch.long)
            dec_mask = torch.zeros((len(rows), dec_width), dtype=torch.long)
            row_idx, pos_idx, tgt = [], [], []
            for r, (enc, target) in enumerate(rows):
                x[r, : len(enc)] = torch.tensor(enc)
                mask[r, : len(enc)] = 1
                dec[r, : len(target)] = torch.tensor([self._decoder_start, *target[:-1]])  # teacher forcing
                dec_mask[r, : len(target)] = 1
                row_idx += [r] * len(target)
                pos_idx += list(range(len(target)))
                tgt += target
            logits = self.model(
                input_ids=x.to(self.device),
                attention_mask=mask.to(self.device),
                decoder_input_ids=dec.to(self.device),
                decoder_attention_mask=dec_mask.to(self.device),
            ).logits
        r_t = torch.tensor(row_idx, device=self.device)
        picked = logits[r_t, torch.tensor(pos_idx, device=self.device)]  # [N, V]: only the scored positions
        if dtype is not None:
            picked = picked.to(dtype)
        logp = picked.log_softmax(-1).gather(1, torch.tensor(tgt, device=self.device)[:, None])[:, 0]
        total = torch.zeros(len(rows), dtype=logp.dtype, device=self.device).index_add(0, r_t, logp)
        if not self.normalize:
            return total
        count = torch.zeros(len(rows), dtype=logp.dtype, device=self.device).index_add(0, r_t, torch.ones_like(logp))
        return total / count

    def pair_scores(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        """Query log-likelihoods (averaged when ``normalize``) as a torch tensor ``[B]`` with gradients."""
        return self._log_likelihoods(self.encode(queries, docs))

    def score_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        if not len(queries):
            return np.zeros(0, dtype=np.float64)
        torch = lazy.torch()
        rows = self.encode(queries, docs)
        out = np.empty(len(rows), dtype=np.float64)
        with lazy.progress(len(rows), "query likelihood", self.show_progress, unit="pair") as bar:
            for batch in longest_first([len(a) + len(b) for a, b in rows], self.batch_size):
                with torch.inference_mode():
                    s = self._log_likelihoods([rows[i] for i in batch], dtype=torch.float64)
                out[batch] = s.cpu().numpy()
                bar.update(len(batch))
        return out

    # ------------------------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        """A Hugging Face directory plus ``rankstack_reranker.json`` (templates, normalisation, EOS, lengths)."""
        out = model_dir.save_pretrained(path, self.model, self.tokenizer)
        write_reranker_config(
            out,
            self.family_name,
            {
                "model_family": self.family,
                "template": self.template,
                "query_template": self.query_template,
                "normalize": self.normalize,
                "eos": self.eos,
                "max_length": self.max_length,
                "query_max_length": self.query_max_length,
            },
        )
        return out


def _eos_id(tokenizer: Any, config: Any) -> int | None:
    """The end-of-sequence id: the tokenizer's, else the model config's (its first, if a list)."""
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, list | tuple):
        eos = eos[0] if eos else None
    return None if eos is None else int(eos)


def _leading_specials(tokenizer: Any) -> list[int]:
    """The special tokens the tokenizer puts before a text (a BOS for Llama-style, none for GPT-2)."""
    with_specials = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    for k in range(len(with_specials) - len(plain) + 1):
        if with_specials[k : k + len(plain)] == plain:
            return list(with_specials[:k])
    return []
