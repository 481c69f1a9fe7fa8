"""Pairwise re-rankers: duoBERT, and what every "which of two documents is better" model shares.

Nogueira, Yang, Cho & Lin (2019), "Multi-Stage Document Ranking with BERT": duoBERT reads
``[CLS] query [SEP] d_i [SEP] d_j [SEP]`` and a two-class head gives ``p_ij = p(d_i more relevant than d_j)``
``= softmax(logits)[1]``. Every ordered pair ``(i, j), i != j`` of a query's candidates is scored (n(n-1)
inferences for n candidates, which is why duo sits after a mono stage that cut the list to a few dozen) and
the preferences are aggregated into one score per document. Pradeep, Nogueira & Lin (2021), "The
Expando-Mono-Duo Design Pattern for Text Ranking with Pretrained Sequence-to-Sequence Models", add SYM-SUM
and use the same scheme for duoT5 (``rankstack.rerank.t5.DuoT5`` builds on ``PairwiseReranker`` here)::

    bm25 % 1000 >> mono % 50 >> duo

Aggregations (``aggregate=``), for the query's candidates ``j != i``:

- ``"sum"``:     ``s_i = sum_j p_ij``                 (duoBERT's SUM, what castorini/duobert's release ranks by)
- ``"binary"``:  ``s_i = sum_j 1[p_ij > 0.5]``        (BINARY: a vote per won comparison; ties are common)
- ``"min"``:     ``s_i = min_j p_ij``                 (MIN: a document is as good as its worst comparison)
- ``"max"``:     ``s_i = max_j p_ij``                 (MAX)
- ``"sym-sum"``: ``s_i = sum_j p_ij + (1 - p_ji)``     (SYM-SUM: both orders of each pair vote, which evens out
  a model's bias towards the first or the second position)

A query with one candidate has nothing to compare: it keeps its document with score 0.0 and no model runs.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Hashable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.batching import pad_rows, symmetric_batches
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.rerank.base import Missing, Reranker
from rankstack.rerank.settings import load_classifier, read_reranker_config, write_reranker_config
from rankstack.rerank.texts import DocSource
from rankstack.types import Ranking

log = logging.getLogger(__name__)

Aggregate = Literal["sum", "binary", "min", "max", "sym-sum"]
AGGREGATES: tuple[str, ...] = ("sum", "binary", "min", "max", "sym-sum")
DuoHead = Literal["two-class", "logit"]

# duoBERT's budget at 512 tokens: query 62 tokens, each document 223 (plus [CLS] and three [SEP])
_DUO_MAX_LENGTH = 512
_DUO_QUERY_TOKENS = 62


# ------------------------------------------------------------------------------------ aggregation
def check_aggregate(method: str) -> Aggregate:
    name = str(method).lower().replace("_", "-")
    if name not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, not {method!r}")
    return name  # type: ignore[return-value]


def aggregate_preferences(p: np.ndarray, method: str = "sum") -> np.ndarray:
    """Scores ``s_i`` from a preference matrix ``p[i, j] = p(d_i beats d_j)`` (the diagonal is ignored).

    Nogueira et al. (2019) define SUM, BINARY, MIN and MAX; Pradeep et al. (2021) SYM-SUM (module docstring).
    One document gives ``[0.0]``.

    >>> p = np.array([[np.nan, 0.9, 0.6], [0.2, np.nan, 0.4], [0.3, 0.7, np.nan]])
    >>> aggregate_preferences(p, "sum").round(2).tolist()
    [1.5, 0.6, 1.0]
    >>> aggregate_preferences(p, "sym-sum").round(2).tolist()
    [3.0, 1.0, 2.0]
    >>> aggregate_preferences(p, "binary").tolist()
    [2.0, 0.0, 1.0]
    """
    method = check_aggregate(method)
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"a preference matrix is square, got shape {p.shape}")
    n = p.shape[0]
    if n < 2:
        return np.zeros(n, dtype=np.float64)
    off = ~np.eye(n, dtype=bool)
    if method == "sum":
        return np.where(off, p, 0.0).sum(1)
    if method == "binary":
        return np.where(off, p > 0.5, False).sum(1).astype(np.float64)
    if method == "min":
        return np.where(off, p, np.inf).min(1)
    if method == "max":
        return np.where(off, p, -np.inf).max(1)
    return np.where(off, p + (1.0 - p.T), 0.0).sum(1)  # sym-sum


# ------------------------------------------------------------------------------------ the pairwise stage
class PairwiseReranker(Reranker):
    """A re-ranker that compares a query's candidates two by two: duoBERT, duoT5.

    Subclasses implement ``pair_probabilities(queries, docs_a, docs_b) -> float64 [n]`` (``p(a beats b)``;
    the inputs arrive in couples, row ``2m`` and ``2m + 1`` being the two orders of one pair) and name their
    model in ``cache_key``. For each query every unordered pair of candidates is built in both orders;
    preferences are cached by (model, query text, docid_i, docid_j) when ``cache=True``, so a re-run, or
    the same candidates under another aggregation, costs no inference. ``aggregate`` picks the aggregation.
    """

    def __init__(
        self,
        docs: DocSource | None = None,
        *,
        aggregate: str = "sum",
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
    ):
        super().__init__(docs, missing=missing, show_progress=show_progress)
        self.aggregate: Aggregate = check_aggregate(aggregate)
        self.cache = cache
        self._cache: dict[tuple[Hashable, str, str, str], float] = {}

    @property
    def cache_key(self) -> Hashable:
        """What identifies the model behind the preferences (the cache is per model, query and docid pair)."""
        return id(self)

    def pair_probabilities(self, queries: Sequence[str], docs_a: Sequence[str], docs_b: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def clear_cache(self) -> None:
        self._cache.clear()

    def preference_matrix(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """``p[i, j] = p(texts[i] beats texts[j])`` for one query (NaN diagonal); not cached."""
        n = len(texts)
        p = np.full((n, n), np.nan)
        pairs = list(combinations(range(n), 2))
        if not pairs:
            return p
        a, b = [], []
        for i, j in pairs:
            a += [texts[i], texts[j]]
            b += [texts[j], texts[i]]
        probs = np.asarray(self.pair_probabilities([query] * len(a), a, b), dtype=np.float64)
        for m, (i, j) in enumerate(pairs):
            p[i, j], p[j, i] = probs[2 * m], probs[2 * m + 1]
        return p

    def rescore(self, ranking: Ranking, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        model = self.cache_key
        cache = self._cache if self.cache else {}
        docids = ranking.docid.tolist()
        groups = [rows for _, rows in ranking.groups()]
        keys: list[tuple[Hashable, str, str, str]] = []
        q_in: list[str] = []
        a_in: list[str] = []
        b_in: list[str] = []
        scheduled: set[tuple[Hashable, str, str, str]] = set()
        for rows in groups:
            for i, j in combinations(range(rows.start, rows.stop), 2):
                kij = (model, queries[i], docids[i], docids[j])
                kji = (model, queries[i], docids[j], docids[i])
                if (kij in cache and kji in cache) or kij in scheduled:
                    continue
                scheduled.update((kij, kji))
                keys += [kij, kji]
                q_in += [queries[i], queries[i]]
                a_in += [texts[i], texts[j]]
                b_in += [texts[j], texts[i]]
        if keys:
            probs = np.asarray(self.pair_probabilities(q_in, a_in, b_in), dtype=np.float64)
            if len(probs) != len(keys):
                raise AssertionError(f"{type(self).__name__}.pair_probabilities returned {len(probs)} for {len(keys)}")
            cache.update(zip(keys, probs.tolist(), strict=True))
        scores = np.zeros(len(ranking), dtype=np.float64)
        for rows in groups:
            n = rows.stop - rows.start
            if n < 2:
                continue  # one candidate: nothing to compare, score 0.0
            p = np.full((n, n), np.nan)
            for i, j in combinations(range(n), 2):
                a, b = rows.start + i, rows.start + j
                p[i, j] = cache[(model, queries[a], docids[a], docids[b])]
                p[j, i] = cache[(model, queries[a], docids[b], docids[a])]
            scores[rows] = aggregate_preferences(p, self.aggregate)
        return scores


# ------------------------------------------------------------------------------------ duoBERT
class DuoCrossEncoder(PairwiseReranker):
    """duoBERT over ``AutoModelForSequenceClassification`` (Nogueira et al. 2019).

    Input, as castorini/duobert's data converter builds it: ``[CLS] q [SEP] d_i [SEP] d_j [SEP]`` with the
    query cut to ``query_max_length`` tokens (62 at ``max_length=512``, scaled in proportion otherwise) and
    each document to ``(max_length - len(query) - 2) // 2 - 1`` tokens (223 for a full-length query at 512;
    a shorter query leaves the documents more). Both documents get the same budget, so ``(i, j)`` and
    ``(j, i)`` hold the same tokens. Segment ids are 0 for ``[CLS] q [SEP]``, 1 for ``d_i [SEP]`` and 2 for
    ``d_j [SEP]`` (the original's) when the checkpoint has three token types; with BERT's usual two, ``d_j``
    shares segment 1.

    ``p_ij = softmax(logits)[1]`` of the two-class head: class 1 is "d_i is the more relevant" (the label the
    original training gives the relevant-first order). A one-logit checkpoint is refused by default: such
    heads are pointwise cross-encoders (sentence-transformers' ms-marco models), which would read three
    segments as a query and one document. ``head="logit"`` accepts a one-logit head trained *pairwise* with
    binary cross-entropy and reads ``p_ij = sigmoid(logit)``, the probability that loss calibrates.

    ``model``: a local directory or Hub id; a bare encoder (no classification head) gets a fresh, random
    two-class head with a warning (train it first). ``aggregate``: see the module docstring (default SUM).
    Settings saved by ``save`` (``rankstack_reranker.json``) are the defaults when the directory is read back.
    """

    family = "duoBERT"

    def __init__(
        self,
        model: str | os.PathLike[str],
        docs: DocSource | None = None,
        *,
        aggregate: str | None = None,
        head: DuoHead | None = None,
        max_length: int | None = None,
        query_max_length: int | None = None,
        device: str | None = None,
        batch_size: int = 32,
        missing: Missing = "error",
        show_progress: bool = False,
        cache: bool = True,
        revision: str | None = None,
    ):
        self.model_name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path)
        saved = read_reranker_config(self.path, self.family)
        super().__init__(
            docs,
            aggregate=aggregate or saved.get("aggregate", "sum"),
            missing=missing,
            show_progress=show_progress,
            cache=cache,
        )
        head = head or saved.get("head", "two-class")
        if head not in ("two-class", "logit"):
            raise ValueError(f"head must be 'two-class' or 'logit', not {head!r}")
        self.head: DuoHead = head
        transformers = lazy.transformers()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        if self.tokenizer.cls_token_id is None or self.tokenizer.sep_token_id is None:
            raise ModelDirectoryError(
                f"{self.path}: duoBERT's input is [CLS] q [SEP] d_i [SEP] d_j [SEP], but this tokenizer has no "
                "CLS/SEP tokens; use a BERT-style encoder"
            )
        config = transformers.AutoConfig.from_pretrained(self.path)
        has_head = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
        self.fresh_head = not has_head  # the trainer gives a fresh head its own learning rate
        want = 2 if head == "two-class" else 1
        if has_head and int(config.num_labels) != want:
            if int(config.num_labels) == 1:
                raise ModelDirectoryError(
                    f"{self.path} has a one-logit head: a pointwise cross-encoder (monoBERT / sentence-transformers "
                    "CrossEncoder), not a duo model. duoBERT needs a two-class head p(d_i beats d_j); re-rank with "
                    "rankstack.rerank.CrossEncoder instead, or, if this checkpoint was trained pairwise with binary "
                    "cross-entropy on one logit, pass head='logit' (p_ij = sigmoid(logit))"
                )
            raise ModelDirectoryError(
                f"{self.path} has a {config.num_labels}-label head, but head={head!r} needs {want}; duoBERT reads "
                "two classes (d_i less / more relevant than d_j)"
            )
        limit = min(int(getattr(config, "max_position_embeddings", _DUO_MAX_LENGTH) or _DUO_MAX_LENGTH), 512)
        self.max_length = min(int(max_length or saved.get("max_length") or limit), limit)
        qmax = query_max_length or saved.get("query_max_length")
        self.query_max_length = int(qmax) if qmax else max(1, _DUO_QUERY_TOKENS * self.max_length // _DUO_MAX_LENGTH)
        if self.query_max_length + 2 + 2 * 2 > self.max_length:
            raise ValueError(
                f"query_max_length ({self.query_max_length}) leaves no room for two documents within "
                f"max_length ({self.max_length}); lower query_max_length"
            )
        types = int(getattr(config, "type_vocab_size", 0) or 0)
        self._token_types = "token_type_ids" in self.tokenizer.model_input_names and types >= 2
        self._second_doc_segment = 2 if types >= 3 else 1
        self.batch_size = max(2, int(batch_size))
        self._warned_truncation = False
        self.model, self.device = load_classifier(self.path, self.model_name, want, has_head, device)

    # ------------------------------------------------------------------------------------ identity
    @property
    def cache_key(self) -> Hashable:
        return (self.family, self.model_name, self.head, self.max_length, self.query_max_length)

    def __repr__(self) -> str:
        docs = f", docs={self.docs!r}" if self.docs is not None else ""
        extra = f", aggregate={self.aggregate!r}" if self.aggregate != "sum" else ""
        extra += f", max_length={self.max_length}" if self.max_length != _DUO_MAX_LENGTH else ""
        return f"DuoCrossEncoder({self.model_name!r}{docs}{extra})"

    # ------------------------------------------------------------------------------------ tokenising
    def encode_pairs(
        self, queries: Sequence[str], docs_a: Sequence[str], docs_b: Sequence[str]
    ) -> dict[str, list[list[int]]]:
        """Token ids (and segment ids) of ``[CLS] q [SEP] a [SEP] b [SEP]`` per row, cut as the class says."""
        if not (len(queries) == len(docs_a) == len(docs_b)):
            raise ValueError("queries, docs_a and docs_b must have the same length")
        unique = list(dict.fromkeys([*queries, *docs_a, *docs_b]))
        tokens = dict(
            zip(
                unique,
                self.tokenizer(unique, add_special_tokens=False, truncation=False, verbose=False)["input_ids"],
                strict=True,
            )
        )
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        ids_out, types_out = [], []
        cut = 0
        for q, a, b in zip(queries, docs_a, docs_b, strict=True):
            qi = tokens[q][: self.query_max_length]
            budget = (self.max_length - len(qi) - 2) // 2 - 1
            ai, bi = tokens[a][:budget], tokens[b][:budget]
            cut += len(ai) < len(tokens[a]) or len(bi) < len(tokens[b])
            ids_out.append([cls, *qi, sep, *ai, sep, *bi, sep])
            types_out.append([0] * (len(qi) + 2) + [1] * (len(ai) + 1) + [self._second_doc_segment] * (len(bi) + 1))
        if cut and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{self.model_name}: {cut} of {len(queries)} document pairs were cut to fit max_length="
                f"{self.max_length} (shown once)",
                stacklevel=3,
            )
        out = {"input_ids": ids_out}
        if self._token_types:
            out["token_type_ids"] = types_out
        return out

    def _pad(self, rows: Sequence[int], enc: dict[str, list[list[int]]]) -> dict[str, Any]:
        torch = lazy.torch()
        batch = pad_rows(rows, enc, self.tokenizer.pad_token_id)
        return {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}

    def features(self, queries: Sequence[str], docs_a: Sequence[str], docs_b: Sequence[str]) -> dict[str, Any]:
        """A padded torch batch of (query, a, b) rows on the model's device: what training feeds ``logits``."""
        enc = self.encode_pairs(queries, docs_a, docs_b)
        return self._pad(range(len(queries)), enc)

    # ------------------------------------------------------------------------------------ scoring
    def logits(self, features: dict[str, Any]) -> Any:
        """The head's raw logits ``[B, 2]`` (or ``[B, 1]`` for ``head="logit"``) with gradients."""
        return self.model(**features).logits

    def log_probabilities(self, logits: Any) -> Any:
        """``log p(a beats b)`` from the logits: ``log_softmax(logits)[1]``, or ``logsigmoid(logit)``."""
        if self.head == "logit":
            return lazy.torch().nn.functional.logsigmoid(logits[..., 0])
        return logits.log_softmax(-1)[..., 1]

    def pair_scores(self, queries: Sequence[str], docs_a: Sequence[str], docs_b: Sequence[str]) -> Any:
        """``log p(a beats b)`` per row as a torch tensor ``[B]`` with gradients: the trainer's entry point."""
        return self.log_probabilities(self.logits(self.features(queries, docs_a, docs_b)))

    def pair_probabilities(self, queries: Sequence[str], docs_a: Sequence[str], docs_b: Sequence[str]) -> np.ndarray:
        """``p(a beats b)`` per row; rows ``2m``, ``2m + 1`` (both orders of a pair) share a batch."""
        if not len(queries):
            return np.zeros(0, dtype=np.float64)
        torch = lazy.torch()
        enc = self.encode_pairs(queries, docs_a, docs_b)
        out = np.empty(len(queries), dtype=np.float64)
        with lazy.progress(len(queries), "duo re-ranking", self.show_progress, unit="pair") as bar:
            for rows in symmetric_batches([len(x) for x in enc["input_ids"]], self.batch_size):
                with torch.inference_mode():
                    logits = self.logits(self._pad(rows, enc)).double()
                    p = logits[:, 0].sigmoid() if self.head == "logit" else logits.softmax(-1)[:, 1]
                out[rows] = p.cpu().numpy()
                bar.update(len(rows))
        return out

    # ------------------------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        """An ordinary Hugging Face directory plus ``rankstack_reranker.json`` (head, lengths, aggregation)."""
        self.model.config.architectures = [type(self.model).__name__]
        out = model_dir.save_pretrained(path, self.model, self.tokenizer)
        write_reranker_config(
            out,
            self.family,
            {
                "head": self.head,
                "max_length": self.max_length,
                "query_max_length": self.query_max_length,
                "aggregate": self.aggregate,
                "input": "[CLS] query [SEP] d_i [SEP] d_j [SEP]",
            },
        )
        return out
