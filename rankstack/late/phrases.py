"""Phrase retrieval (DenSPI / DensePhrases): answer a question with a span of the collection, found by vectors.

Seo et al. (2019) and Lee et al. (2021) index every phrase of every passage: the passage encoder gives each
token a *start* and an *end* vector, a phrase ``(i, j)`` of at most ``max_phrase_length`` tokens scores
``q_start . start_i + q_end . end_j``, and the question encoder gives ``q_start`` and ``q_end``. Since the
score splits into a start and an end part, storing per-token vectors is enough: the index is a token index
(``rankstack.index.tokens``, float16) whose row for token ``t`` is ``[start_t ; end_t]``, and the best span
of a passage is found by a sliding maximum over the two score arrays.

A sparse, lexical part can be added, as DenSPI and SPARC do: ``sparse=`` any stage scoring passages (BM25,
SPLADE's contextual sparse vectors through ``rankstack.sparse.Impact``), weighted by ``sparse_weight`` and
added to every phrase of the passage.

No phrase model ships offline, so ``train_phrases`` trains one from a bare encoder on (question, passage,
answer) triples; ``cloze_pairs`` makes such triples from the corpus itself (a sentence with an entity or
number span blanked out asks for that span), which needs no annotation.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.types import Corpus, Document

CONFIG_FILE = "phrase_encoder.json"
WEIGHTS_FILE = "phrase_heads.safetensors"


class PhraseEncoder:
    """Start / end vectors for passage tokens and for questions (module docstring)."""

    def __init__(self, model: str | os.PathLike[str], *, dim: int = 128, max_phrase_length: int = 10,
                 doc_length: int = 256, query_length: int = 64, batch_size: int = 16, device: str | None = None,
                 seed: int = 0):  # fmt: skip
        torch, transformers = lazy.torch(), lazy.transformers()
        self.name = str(model)
        self.path, self.revision = model_dir.resolve(model)
        model_dir.check_directory(self.path)
        saved = model_dir.read_json_object(self.path / CONFIG_FILE)
        self.dim = int(saved.get("dim", dim))
        self.max_phrase_length = int(saved.get("max_phrase_length", max_phrase_length))
        self.doc_length, self.query_length, self.batch_size = doc_length, query_length, batch_size
        self.device = lazy.default_device(device)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.bert, _ = lazy.from_pretrained_quietly(transformers.AutoModel, self.path, **model_dir.encoder_kwargs(self.path))
        self.doc_length = min(self.doc_length, int(getattr(self.bert.config, "max_position_embeddings", 512)))
        hidden = int(self.bert.config.hidden_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            heads = {k: torch.nn.Linear(hidden, self.dim) for k in ("start", "end", "q_start", "q_end")}
        self.model = torch.nn.ModuleDict({"encoder": self.bert, **heads})
        self.model.base_model_prefix = "encoder"
        self.fresh_head = not (self.path / WEIGHTS_FILE).exists()
        if not self.fresh_head:
            from safetensors.torch import load_file

            state = load_file(str(self.path / WEIGHTS_FILE))
            for key, module in heads.items():
                module.load_state_dict({"weight": state[f"{key}.weight"], "bias": state[f"{key}.bias"]})
        self.model.to(self.device).eval()

    def __repr__(self) -> str:
        return f"PhraseEncoder({self.name!r})"

    def identity(self) -> dict[str, Any]:
        heads = [t for name, t in sorted(self.model.state_dict().items()) if not name.startswith("encoder.")]
        return {"model": self.name, "fingerprint": model_dir.fingerprint_with(self.path, heads), "dim": 2 * self.dim,
                "max_phrase_length": self.max_phrase_length, "doc_length": self.doc_length}  # fmt: skip

    # ------------------------------------------------------------------------------------ torch
    def _batch(self, texts: Sequence[str], limit: int) -> dict[str, Any]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=limit, padding=True, return_tensors="pt",
                             return_offsets_mapping=True)  # fmt: skip
        return {k: v.to(self.device) for k, v in enc.items()}

    def passage_vectors(self, texts: Sequence[str]) -> tuple[Any, Any, Any, Any]:
        """``(start [B, L, d], end [B, L, d], phrase-token mask [B, L], offsets [B, L, 2])`` with gradients; the
        mask leaves out special tokens and padding (no phrase starts or ends there)."""
        enc = self._batch(texts, self.doc_length)
        offsets = enc.pop("offset_mapping")
        hidden = self.bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        usable = enc["attention_mask"].bool() & (offsets[..., 1] > offsets[..., 0])
        return self.model["start"](hidden), self.model["end"](hidden), usable, offsets

    def question_vectors(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """``(q_start [B, d], q_end [B, d])`` with gradients, from the question's [CLS] state."""
        enc = self._batch(texts, self.query_length)
        enc.pop("offset_mapping")
        cls = self.bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state[:, 0]
        return self.model["q_start"](cls), self.model["q_end"](cls)

    # ------------------------------------------------------------------------------------ inference
    def encode_passages(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per passage: its usable tokens' ``[start ; end]`` vectors (float32 ``[T, 2d]``) and their character
        spans (int ``[T, 2]``)."""
        torch = lazy.torch()
        out = []
        with torch.inference_mode():
            for lo in range(0, len(texts), self.batch_size):
                start, end, usable, offsets = self.passage_vectors(texts[lo : lo + self.batch_size])
                both = torch.cat([start, end], -1).float().cpu().numpy()
                usable, offsets = usable.cpu().numpy(), offsets.cpu().numpy()
                out += [(both[r][usable[r]], offsets[r][usable[r]]) for r in range(len(both))]
        return out

    def token_spans(self, text: str) -> np.ndarray:
        """Character spans ``[T, 2]`` of a passage's usable tokens, in the order ``encode_passages`` stores them."""
        enc = self.tokenizer(text, truncation=True, max_length=self.doc_length, return_offsets_mapping=True)
        spans = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        return spans[spans[:, 1] > spans[:, 0]]

    def encode_questions(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[n, 2d]``: ``[q_start ; q_end]`` per question."""
        torch = lazy.torch()
        parts = []
        with torch.inference_mode():
            for lo in range(0, len(texts), self.batch_size):
                qs, qe = self.question_vectors(texts[lo : lo + self.batch_size])
                parts.append(torch.cat([qs, qe], -1).float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 2 * self.dim), np.float32)

    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save_file

        out = model_dir.save_pretrained(path, self.bert, self.tokenizer)
        heads = {f"{k}.{p}": v.detach().cpu().contiguous() for k in ("start", "end", "q_start", "q_end")
                 for p, v in self.model[k].state_dict().items()}  # fmt: skip
        save_file(heads, str(out / WEIGHTS_FILE))
        (out / CONFIG_FILE).write_text(json.dumps({"dim": self.dim, "max_phrase_length": self.max_phrase_length}))
        return out

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        again = PhraseEncoder(path, device=self.device, doc_length=self.doc_length, query_length=self.query_length)
        self.model.load_state_dict(again.model.state_dict())


# ---------------------------------------------------------------------------------------------- spans
def span_scores(start: np.ndarray, end: np.ndarray, owner: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """For start and end scores of every stored token ``[T]`` (``owner[t]``: its passage): each token's best end
    within ``max_length`` tokens of the same passage and that span's score ``start_i + end_j``."""
    n = len(start)
    best = np.full(n, -np.inf, dtype=np.float64)
    best_end = np.arange(n)
    for offset in range(min(max_length, n)):
        candidate = np.where(owner[: n - offset] == owner[offset:], start[: n - offset] + end[offset:], -np.inf)
        better = candidate > best[: n - offset]
        best[: n - offset][better] = candidate[better]
        best_end[: n - offset][better] = np.arange(offset, n)[better]
    return best_end, best


@dataclass(frozen=True)
class Phrase:
    qid: str
    rank: int
    text: str
    docid: str
    start: int
    end: int
    score: float


class PhraseIndexSearcher:
    """Top phrases for questions over a phrase index (a token index of ``[start ; end]`` vectors).

    ``docs`` gives passage texts (to cut the phrase out); ``sparse``: a stage scoring passages for each question
    (e.g. ``index.bm25()`` or an ``Impact`` SPLADE stage), its scores times ``sparse_weight`` added to every
    phrase of the passage (DenSPI / SPARC's sparse component).
    """

    def __init__(self, index: Any, encoder: PhraseEncoder, docs: Any, *, sparse: Any = None, sparse_weight: float = 0.0,
                 spans_per_passage: int = 3):  # fmt: skip
        from rankstack.rerank.texts import DocumentTexts

        if index.model.get("fingerprint") != encoder.identity()["fingerprint"]:
            raise ValueError(f"{index.path} was built by another phrase encoder ({index.model.get('model')!r})")
        self.index, self.encoder, self.texts = index, encoder, DocumentTexts(docs)
        self.sparse, self.sparse_weight, self.spans_per_passage = sparse, float(sparse_weight), spans_per_passage
        self._offsets: dict[int, np.ndarray] = {}
        positions = np.flatnonzero(~index.deleted)
        vectors, offsets = index.doc_vectors(positions)
        self._positions, self._vectors, self._doc_offsets = positions, vectors, offsets

    def _char_offsets(self, position: int) -> np.ndarray:
        if position not in self._offsets:
            docid = self.index.docids[position]
            text = self.texts.texts([docid])[0] or ""
            self._offsets[position] = self.encoder.token_spans(text)  # the tokenizer only, no forward pass
        return self._offsets[position]

    def search(self, queries: Any, k: int = 10) -> list[Phrase]:
        """The top ``k`` phrases of every query (``Queries``), best first; at most ``spans_per_passage`` from one
        passage (the best span starting at each token, the best starts first)."""
        qv = self.encoder.encode_questions(queries.text.tolist())
        d = self.encoder.dim
        start_scores = self._vectors[:, :d] @ qv[:, :d].T  # [T, nq]
        end_scores = self._vectors[:, d:] @ qv[:, d:].T
        sparse = self._sparse_scores(queries)
        owner = np.repeat(np.arange(len(self._positions)), np.diff(self._doc_offsets))  # passage of each token
        out: list[Phrase] = []
        for qi, qid in enumerate(queries.qid.tolist()):
            ends, scores = span_scores(start_scores[:, qi], end_scores[:, qi], owner, self.encoder.max_phrase_length)
            if sparse.get(qid):
                docids = self.index.docids[self._positions]
                bonus = np.array([sparse[qid].get(x, 0.0) for x in docids.tolist()]) * self.sparse_weight
                scores = scores + bonus[owner]
            taken: Counter[int] = Counter()
            rank = 0
            for t in np.argsort(-scores, kind="stable").tolist():
                p = int(owner[t])
                if not np.isfinite(scores[t]) or taken[p] >= self.spans_per_passage:
                    continue
                taken[p] += 1
                position = int(self._positions[p])
                lo = int(self._doc_offsets[p])
                chars = self._char_offsets(position)
                docid = str(self.index.docids[position])
                text = self.texts.texts([docid])[0] or ""
                start, end = int(chars[t - lo][0]), int(chars[int(ends[t]) - lo][1])
                rank += 1
                out.append(Phrase(qid, rank, text[start:end], docid, start, end, float(scores[t])))
                if rank == k:
                    break
        return out

    def _sparse_scores(self, queries: Any) -> dict[str, dict[str, float]]:
        if self.sparse is None or not self.sparse_weight:
            return {}
        return self.sparse(queries).to_dict()


def build_phrase_index(corpus: Corpus | Iterable[Document], encoder: PhraseEncoder, path: str | os.PathLike[str],
                       overwrite: bool = False) -> Any:  # fmt: skip
    """Every passage's usable tokens' ``[start ; end]`` vectors in a float16 token index."""
    from rankstack.index.tokens import build_token_index

    def blocks() -> Iterator[tuple[list[str], list[np.ndarray]]]:
        for chunk in lazy.chunked(corpus, 64):
            vectors = encoder.encode_passages([d.contents() for d in chunk])
            yield [d.docid for d in chunk], [v for v, _ in vectors]

    return build_token_index(path, blocks(), encoder.identity(), bits=0, num_centroids=1, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------- answers
def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in str(text).lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def exact_match(prediction: str, answer: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(answer))


def f1(prediction: str, answer: str) -> float:
    """SQuAD's token F1 between a predicted and a gold answer."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains_answer(text: str, answer: str) -> bool:
    """Whether a passage holds the answer (normalised substring, as DPR's answer recall)."""
    gold = normalize_answer(answer)
    return bool(gold) and f" {gold} " in f" {normalize_answer(text)} "


# ---------------------------------------------------------------------------------------------- training data
_SPAN = re.compile(r"(?:\b[A-Z][\w'-]*(?:\s+(?:of\s+|the\s+)?[A-Z][\w'-]*)*)|(?:\$?\b\d[\d,.]*%?(?:\s+(?:million|billion))?)")


def cloze_pairs(corpus: Iterable[Document], per_document: int = 2, seed: int = 0) -> list[tuple[str, str, str]]:
    """``(question, docid, answer)`` triples made from the corpus: a sentence with one entity or number span
    replaced by a blank asks for that span in its passage (self-supervised phrase training data)."""
    rng = np.random.default_rng(seed)
    out = []
    for doc in corpus:
        text = doc.contents()
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if 30 <= len(s) <= 300]
        rng.shuffle(sentences)
        made = 0
        for sentence in sentences:
            spans = [m for m in _SPAN.finditer(sentence) if m.start() > 0 and len(m.group().split()) <= 5]
            if not spans:
                continue
            m = spans[int(rng.integers(len(spans)))]
            question = (sentence[: m.start()] + "what" + sentence[m.end() :]).strip()
            out.append((question, doc.docid, m.group().strip()))
            made += 1
            if made >= per_document:
                break
    return out
