"""DeepCT and HDCT: term importance predicted in context, replacing term frequencies in a BM25 index.

Dai & Callan (2020), "Context-Aware Term Weighting For First Stage Passage Retrieval": a BERT encoder with
a linear head regresses, for each word of a document, its *query term recall*: the fraction of the
document's relevant queries that contain the word (``query_term_recall``). DeepCT-Index then rewrites each
term's frequency as ``round(weight x scale)`` (scale 100, the paper's N) and indexes with ordinary BM25, so
search costs nothing extra. Words are the tokenizer's words (the prediction at a word's first subword);
a word counts as the index term the BM25 analyzer makes of it (stopwords drop out), and a term occurring
several times keeps its largest prediction.

HDCT (Dai & Callan, 2020, "Context-Aware Document Term Weighting for Ad-Hoc Search") applies the same
model to long documents passage by passage and combines the passages' weights; ``passage_words`` turns that
on (weights of a term summed over the passages it occurs in, each passage's weights being those of DeepCT).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.text.analysis import Analyzer
from rankstack.types import Document, Qrels, Queries

log = logging.getLogger(__name__)


def query_term_recall(
    queries: Queries | Mapping[str, str], qrels: Qrels, analyzer: Analyzer | None = None, min_relevance: int = 1
) -> dict[str, dict[str, float]]:
    """docid -> term -> the fraction of the document's relevant queries whose analysed text has the term."""
    analyzer = analyzer or Analyzer()
    texts = dict(queries.to_dict() if isinstance(queries, Queries) else queries)
    query_terms = {qid: set(analyzer(text)) for qid, text in texts.items()}
    by_doc: dict[str, list[str]] = {}
    for qid, docid, rel in zip(qrels.qid.tolist(), qrels.docid.tolist(), qrels.relevance.tolist(), strict=True):
        if rel >= min_relevance and qid in query_terms:
            by_doc.setdefault(docid, []).append(qid)
    out: dict[str, dict[str, float]] = {}
    for docid, qids in by_doc.items():
        counts: dict[str, int] = {}
        for qid in qids:
            for term in query_terms[qid]:
                counts[term] = counts.get(term, 0) + 1
        out[docid] = {t: c / len(qids) for t, c in counts.items()}
    return out


class DeepCT:
    """Predict each document term's importance (``term_weights``) and rewrite frequencies (``bags``).

    ``model``: a directory or Hub id; a token-classification checkpoint with one output, or a bare encoder
    (a fresh head, with a warning: train it with ``train_deepct``). ``analyzer``: the BM25 analyzer of the
    index to build (default Lucene English). ``max_length``: tokens per document (or per passage with
    ``passage_words``, HDCT).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        analyzer: Analyzer | None = None,
        max_length: int = 512,
        passage_words: int | None = None,
        batch_size: int = 16,
        device: str | None = None,
        revision: str | None = None,
    ):
        transformers = lazy.transformers()
        self.name = str(model)
        self.path, self.revision = model_dir.resolve(model, revision)
        model_dir.check_directory(self.path)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        if not getattr(self.tokenizer, "is_fast", False):
            raise model_dir.ModelDirectoryError(f"{self.path}: DeepCT needs a fast tokenizer (tokenizer.json) to find words")
        self.model, info = lazy.from_pretrained_quietly(transformers.AutoModelForTokenClassification, self.path, num_labels=1)
        if info.get("missing_keys"):
            warnings.warn(f"{self.name} has no DeepCT head: a fresh one was made; train it before use", stacklevel=2)
        self.device = lazy.default_device(device)
        self.model.to(self.device).eval()
        self.analyzer = analyzer or Analyzer()
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        self.passage_words = passage_words
        self._terms: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return f"DeepCT({self.name!r})"

    # ------------------------------------------------------------------------------------ words and terms
    def _term(self, word: str) -> str | None:
        if word not in self._terms:
            terms = self.analyzer(word)
            self._terms[word] = terms[0] if terms else None
        return self._terms[word]

    def features(self, texts: Sequence[str]) -> tuple[dict[str, Any], list[list[tuple[int, str]]]]:
        """A padded torch batch and, per text, ``(token position, term)`` of each word's first subword (words
        that are no index term, such as stopwords, left out)."""
        torch = lazy.torch()
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=True, return_tensors="np")
        words: list[list[tuple[int, str]]] = []
        for i, text in enumerate(texts):
            seen, row = set(), []
            for pos, wid in enumerate(enc.word_ids(i)):
                if wid is None or wid in seen:
                    continue
                seen.add(wid)
                span = enc.word_to_chars(i, wid)
                term = self._term(text[span.start : span.end])
                if term is not None:
                    row.append((pos, term))
            words.append(row)
        batch = {k: torch.from_numpy(enc[k]).to(self.device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        return batch, words

    def predictions(self, batch: Mapping[str, Any]) -> Any:
        """Per-token predictions ``[B, T]`` with gradients (training)."""
        return self.model(**batch).logits[..., 0]

    def term_weights(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Each text's terms with their predicted importance (the largest over a term's occurrences; HDCT: summed
        over passages)."""
        if self.passage_words:
            return [self._passage_weights(t) for t in texts]
        return self._weights(texts)

    def _weights(self, texts: Sequence[str]) -> list[dict[str, float]]:
        torch = lazy.torch()
        out: list[dict[str, float]] = []
        for lo in range(0, len(texts), self.batch_size):
            chunk = list(texts[lo : lo + self.batch_size])
            batch, words = self.features(chunk)
            with torch.inference_mode():
                pred = self.predictions(batch).float().cpu().numpy()
            for row, pairs in zip(pred, words, strict=True):
                weights: dict[str, float] = {}
                for pos, term in pairs:
                    weights[term] = max(weights.get(term, -np.inf), float(row[pos]))
                out.append(weights)
        return out

    def _passage_weights(self, text: str) -> dict[str, float]:
        words = text.split()
        step = int(self.passage_words)  # type: ignore[arg-type]
        passages = [" ".join(words[i : i + step]) for i in range(0, max(1, len(words)), step)]
        total: dict[str, float] = {}
        for weights in self._weights(passages):
            for term, w in weights.items():
                total[term] = total.get(term, 0.0) + max(w, 0.0)
        return total

    def bags(self, docs: Iterable[Document], scale: float = 100.0, show_progress: bool = True,
             chunk: int = 256) -> Iterator[tuple[str, dict[str, int], Document]]:  # fmt: skip
        """DeepCT-Index input for ``rankstack.index.build_term_index``: ``(docid, {term: round(weight x scale)},
        document)``, terms whose rounded weight is not positive left out."""
        with lazy.progress(None, "DeepCT", show_progress, unit="doc") as bar:
            for batch in lazy.chunked(docs, chunk):
                for d, weights in zip(batch, self.term_weights([x.contents() for x in batch]), strict=True):
                    tf = {t: round(w * scale) for t, w in weights.items()}
                    yield d.docid, {t: n for t, n in tf.items() if n > 0}, d
                bar.update(len(batch))

    def save(self, path: str | os.PathLike[str]) -> Path:
        return model_dir.save_pretrained(path, self.model, self.tokenizer)


__all__ = ["DeepCT", "query_term_recall"]
