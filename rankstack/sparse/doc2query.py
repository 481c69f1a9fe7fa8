"""doc2query / docTTTTTquery: expand documents with queries a sequence-to-sequence model predicts for them.

Nogueira et al. (2019) sample queries a document might answer and append them to its text before
indexing, so BM25 (or uniCOIL) matches the words users ask with. ``Doc2Query`` samples ``num_queries`` per
document with top-k sampling (docTTTTTquery: k = 10), seeded per document, so a document's expansion does
not depend on what else is in its batch or run. doc2query-- (Gospodinov et al., 2023) drops generated
queries a relevance scorer finds unrelated to their document ("hallucinations"): pass ``scorer`` (any
pointwise re-ranker, e.g. a ``CrossEncoder``) and ``min_score``.

Generation is the costly part, so expansions are cached on disk: an append-only JSON-lines file in
``cache_dir`` keyed by a hash of the model's weights, the sampling settings and the document text. Indexing
again, or with other BM25 settings, samples nothing twice; a line left half-written by a killed run is
ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rankstack.models import lazy, model_dir
from rankstack.types import Document

log = logging.getLogger(__name__)
CACHE_FILE = "expansions.jsonl"


class Doc2Query:
    """Sample queries for documents with a seq2seq model and append them (``expand``).

    ``model``: a directory or Hub id (``castorini/doc2query-t5-base-msmarco``). ``num_queries`` per document,
    ``top_k`` sampling, ``max_new_tokens`` per query, documents cut at ``max_length`` tokens; ``prefix`` is
    put before each document (some models were trained with one). ``cache_dir``: where expansions are kept.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        num_queries: int = 10,
        top_k: int = 10,
        max_new_tokens: int = 64,
        max_length: int = 512,
        prefix: str = "",
        seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        revision: str | None = None,
    ):
        if num_queries < 1 or top_k < 1 or max_new_tokens < 1:
            raise ValueError("num_queries, top_k and max_new_tokens must be at least 1")
        transformers = lazy.transformers()
        self.name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.model, _ = lazy.from_pretrained_quietly(transformers.AutoModelForSeq2SeqLM, self.path)
        self.device = lazy.default_device(device)
        self.model.to(self.device).eval()
        self.num_queries, self.top_k, self.max_new_tokens = int(num_queries), int(top_k), int(max_new_tokens)
        self.max_length, self.prefix, self.seed = int(max_length), prefix, int(seed)
        settings = [self.num_queries, self.top_k, self.max_new_tokens, self.max_length, self.prefix, self.seed]
        self._settings = json.dumps([model_dir.fingerprint(self.path), *settings])
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._cache: dict[str, list[str]] = self._read_cache()
        self.generated = 0  # documents sampled by the model (not from the cache), for reports and tests

    def __repr__(self) -> str:
        return f"Doc2Query({self.name!r}, num_queries={self.num_queries}, top_k={self.top_k})"

    # ------------------------------------------------------------------------------------ cache
    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self._settings}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def _read_cache(self) -> dict[str, list[str]]:
        if self.cache_dir is None or not (self.cache_dir / CACHE_FILE).exists():
            return {}
        out: dict[str, list[str]] = {}
        with open(self.cache_dir / CACHE_FILE, encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                    out[str(record["key"])] = [str(q) for q in record["queries"]]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a killed run: that document is sampled again
        return out

    def _remember(self, key: str, queries: list[str]) -> None:
        self._cache[key] = queries
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with open(self.cache_dir / CACHE_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "queries": queries}, ensure_ascii=False) + "\n")

    # ------------------------------------------------------------------------------------ generation
    def generate(self, texts: Sequence[str], show_progress: bool = False) -> list[list[str]]:
        """``num_queries`` sampled queries for each text (from the cache where it has them)."""
        out: list[list[str]] = []
        with lazy.progress(len(texts), "doc2query", show_progress, unit="doc") as bar:
            for text in texts:
                key = self._key(text)
                if key not in self._cache:
                    self._remember(key, self._sample(text, key))
                out.append(list(self._cache[key]))
                bar.update(1)
        return out

    def _sample(self, text: str, key: str) -> list[str]:
        torch = lazy.torch()
        self.generated += 1
        enc = self.tokenizer(self.prefix + text, truncation=True, max_length=self.max_length, return_tensors="pt")
        generator_seed = int(key[:15], 16) ^ self.seed  # per document: independent of batch and order
        torch.manual_seed(generator_seed)
        with torch.inference_mode():
            ids = self.model.generate(
                input_ids=enc["input_ids"].to(self.device),
                attention_mask=enc["attention_mask"].to(self.device),
                do_sample=True,
                top_k=self.top_k,
                max_new_tokens=self.max_new_tokens,
                num_return_sequences=self.num_queries,
            )
        return [q.strip() for q in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    # ------------------------------------------------------------------------------------ expansion
    def expand(
        self,
        docs: Iterable[Document],
        *,
        scorer: Any = None,
        min_score: float | None = None,
        show_progress: bool = True,
        chunk: int = 256,
    ) -> Iterator[Document]:
        """Each document with its sampled queries appended to its text (one space apart), in order.

        With ``scorer`` (``score_pairs(queries, texts) -> scores``) and ``min_score``, only queries scoring at
        least ``min_score`` against their document are appended (doc2query--). The document keeps its docid,
        title and fields; ``fields["doc2query"]`` lists the appended queries.
        """
        if (scorer is None) != (min_score is None):
            raise ValueError("doc2query-- filtering needs both scorer and min_score")
        with lazy.progress(None, "doc2query", show_progress, unit="doc") as bar:
            for batch in lazy.chunked(docs, chunk):
                yield from self._expanded(batch, scorer, min_score)
                bar.update(len(batch))

    def _expanded(self, docs: list[Document], scorer: Any, min_score: float | None) -> Iterator[Document]:
        generated = self.generate([d.contents() for d in docs])
        if scorer is not None:
            pairs = [(q, d.contents()) for d, qs in zip(docs, generated, strict=True) for q in qs]
            scores = list(scorer.score_pairs([q for q, _ in pairs], [t for _, t in pairs])) if pairs else []
            it = iter(scores)
            generated = [[q for q in qs if next(it) >= min_score] for qs in generated]  # type: ignore[operator]
        for doc, queries in zip(docs, generated, strict=True):
            text = " ".join([doc.text, *queries]) if queries else doc.text
            yield Document(doc.docid, text, doc.title, {**doc.fields, "doc2query": queries})


__all__ = ["CACHE_FILE", "Doc2Query"]
