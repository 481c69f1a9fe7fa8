"""PROP pre-training (Ma et al., WSDM 2021): Representative wOrds Prediction, with masked language modelling.

A document's words are ranked by its own query-likelihood model: the Dirichlet-smoothed unigram model
``p(w | d) = (tf(w, d) + μ · p(w | C)) / (|d| + μ)``. For each document, two word sets are drawn from that model
(distinct non-stopword words, weighted by ``p(w | d)``; both of one length ``l ~ 1 + Poisson(λ − 1)``, so their
likelihoods compare without a length bias), and the one with the higher likelihood ``Σ log p(w | d)`` is the
more *representative*. A cross-encoder reads ``[CLS] word set [SEP] document [SEP]`` and learns to score the
representative set higher (hinge loss with margin 1); masked language modelling on the document's tokens
(15%, BERT's 80/10/10 replacement, the same positions in both inputs of a document, so masks cannot tell the
sets apart) runs alongside so the encoder keeps its language knowledge. The word sets
play the part of pseudo-queries: the pre-trained model is an ordinary cross-encoder checkpoint whose head
already scores "query" against document, which ``train_reranker`` then fine-tunes on judgments.

Each step's pairs and masks are drawn from ``(seed, step)``, so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import MissingExtraError
from rankstack.text.stopwords import LUCENE_ENGLISH
from rankstack.train.examples import DocSource, Example, TrainingSet, doc_texts
from rankstack.train.trainer import LoopSettings, TrainingLoop

try:
    import torch
except ImportError:  # pragma: no cover - the [neural] extra brings torch
    raise MissingExtraError("torch", "neural") from None

log = logging.getLogger(__name__)
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class PropConfig(LoopSettings):
    """Every knob of a PROP run. ``mu``: the Dirichlet prior; ``set_lambda``: the Poisson mean of word-set
    lengths; ``mlm_weight``: the masked-LM loss's weight beside ROP's; ``max_docs``: pre-train on a seeded
    sample of that many documents (a CPU budget)."""

    epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 3e-5
    head_learning_rate: float | None = 1e-3
    max_length: int = 256
    mu: float = 500.0
    set_lambda: float = 3.0
    mlm_weight: float = 1.0
    mlm_probability: float = 0.15
    margin: float = 1.0
    max_docs: int | None = None
    seed: int = 42
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.max_length < 16:
            raise ValueError("epochs and batch_size must be >= 1 and max_length >= 16")
        if self.mu <= 0 or self.set_lambda < 1 or not 0 < self.mlm_probability < 1 or self.mlm_weight < 0:
            raise ValueError("mu must be > 0, set_lambda >= 1, mlm_probability in (0, 1), mlm_weight >= 0")


def words(text: str) -> list[str]:
    """Lowercased word tokens without (Lucene's English) stopwords: the vocabulary of the document models."""
    return [w for w in _WORD.findall(text.lower()) if w not in LUCENE_ENGLISH]


class DocumentModels:
    """Dirichlet-smoothed unigram models of a corpus's documents (``p(w | d)``, module docstring)."""

    def __init__(self, texts: Mapping[str, str], mu: float = 500.0):
        self.mu = float(mu)
        self.counts = {docid: Counter(words(t)) for docid, t in texts.items()}
        collection: Counter[str] = Counter()
        for c in self.counts.values():
            collection.update(c)
        self.total = max(1, sum(collection.values()))
        self.collection = collection

    def probabilities(self, docid: str) -> tuple[list[str], np.ndarray]:
        """The document's distinct words and their ``p(w | d)``."""
        counts = self.counts[docid]
        length = sum(counts.values())
        vocab = sorted(counts)
        tf = np.array([counts[w] for w in vocab], dtype=np.float64)
        pc = np.array([self.collection[w] / self.total for w in vocab], dtype=np.float64)
        return vocab, (tf + self.mu * pc) / (length + self.mu)

    def sample_pair(self, docid: str, rng: np.random.Generator, lam: float) -> tuple[list[str], list[str]] | None:
        """(more representative set, less representative set), or None when the document has too few words
        (fewer than two distinct ones, or two sets that are equally likely)."""
        vocab, p = self.probabilities(docid)
        if len(vocab) < 2:
            return None
        length = int(min(len(vocab) - 1, 1 + rng.poisson(lam - 1))) or 1
        weights = p / p.sum()
        a = rng.choice(len(vocab), size=length, replace=False, p=weights)
        b = rng.choice(len(vocab), size=length, replace=False, p=weights)
        la, lb = float(np.log(p[a]).sum()), float(np.log(p[b]).sum())
        if math.isclose(la, lb):
            return None
        first, second = ([vocab[i] for i in a], [vocab[i] for i in b])
        return (first, second) if la > lb else (second, first)


class PropModel:
    """A cross-encoder (one logit) plus the masked-LM head PROP trains beside it; saves as the cross-encoder."""

    def __init__(self, model: str | os.PathLike[str] | Any, max_length: int = 256):
        from rankstack.models import lazy
        from rankstack.rerank import CrossEncoder

        if isinstance(model, CrossEncoder):
            self.cross = model
        else:
            with warnings.catch_warnings():  # a fresh head on a bare encoder is what pre-training is for
                warnings.filterwarnings("ignore", message=r".*no sequence-classification head")
                self.cross = CrossEncoder(model, max_length=max_length, num_labels=1)
        hf = self.cross.model
        if self.cross.num_labels != 1 or getattr(hf.config, "model_type", "") != "bert":
            raise ValueError("PROP pre-trains a one-logit BERT-style cross-encoder (its masked-LM head is BERT's)")
        transformers = lazy.transformers()
        mlm, info = lazy.from_pretrained_quietly(transformers.AutoModelForMaskedLM, self.cross.path)
        self.fresh_mlm = any(k.startswith("cls.") for k in info.get("missing_keys", []))
        self.mlm_head = mlm.cls.to(self.cross.device)
        self.mlm_head.predictions.decoder.weight = hf.base_model.embeddings.word_embeddings.weight  # tied, as in BERT
        parts = {"bert": hf.base_model, "classifier": hf.classifier, "mlm": self.mlm_head, "dropout": hf.dropout}
        self.model = torch.nn.ModuleDict(parts)

    def fresh_parameters(self) -> list[Any]:
        """Parts that start from scratch (trained at ``head_learning_rate``): a new relevance head and pooler, and
        the masked-LM head's transform when the checkpoint had none (its decoder is the tied embeddings)."""
        fresh: list[Any] = []
        if self.cross.fresh_head:
            fresh += list(self.cross.model.classifier.parameters()) + list(self.cross.model.base_model.pooler.parameters())
        if self.fresh_mlm:
            fresh += [*self.mlm_head.predictions.transform.parameters(), self.mlm_head.predictions.bias]
        return fresh

    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save_file

        out = self.cross.save(path)
        state = {k: v.detach().cpu().clone().contiguous() for k, v in self.mlm_head.state_dict().items()
                 if not k.startswith("predictions.decoder.")}  # fmt: skip  # tied: the embeddings and predictions.bias
        save_file(state, str(out / "prop_mlm_head.safetensors"))
        return out

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        from safetensors.torch import load_file

        from rankstack.rerank import CrossEncoder

        again = CrossEncoder(path, max_length=self.cross.max_length)
        self.cross.model.load_state_dict(again.model.state_dict())
        self.mlm_head.load_state_dict(load_file(str(Path(path) / "prop_mlm_head.safetensors")), strict=False)


class PropTrainer(TrainingLoop):
    """ROP hinge loss plus weighted masked-LM loss over a corpus (module docstring)."""

    def __init__(self, prop: PropModel, data: TrainingSet, models: DocumentModels, config: PropConfig,
                 output_dir: str | os.PathLike[str]):  # fmt: skip
        self.prop, self.models_of_docs = prop, models
        super().__init__(prop, [prop.model], data, config, output_dir)

    def fresh_parameters(self) -> list[torch.nn.Parameter]:
        return self.prop.fresh_parameters()

    def loss(self, examples: Sequence[Example], step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.config.seed, step, 7])
        cross, tok = self.prop.cross, self.prop.cross.tokenizer
        pos_q, neg_q, docs = [], [], []
        for e in examples:
            pair = self.models_of_docs.sample_pair(e.positive, rng, self.config.set_lambda)
            if pair is not None:
                pos_q.append(" ".join(pair[0]))
                neg_q.append(" ".join(pair[1]))
                docs.append(self.data.texts[e.positive])
        if not docs:  # no document of this batch had two word sets to compare
            return self.no_op_loss()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*max_length")
            feats = cross.features(pos_q + neg_q, docs + docs)
        n = len(docs)
        labels = torch.full_like(feats["input_ids"], -100)
        if self.config.mlm_weight > 0:
            # mask the same document positions in both inputs of a document (counted from the document's first
            # token), so "has [MASK] tokens" tells the two word sets apart in neither direction
            ids = feats["input_ids"]
            types = feats.get("token_type_ids", torch.ones_like(ids))
            doc_part = types.bool() & (ids != tok.sep_token_id) & feats["attention_mask"].bool()
            offset = doc_part.long().cumsum(-1) - 1  # position within the document, -1 before it
            width = int(offset.max()) + 1
            draw = torch.from_numpy(rng.random((n, width))).to(ids.device)
            how = torch.from_numpy(rng.random((n, width))).to(ids.device)
            swap_to = torch.from_numpy(rng.integers(0, len(tok), size=(n, width))).to(ids)
            pair = torch.arange(2 * n, device=ids.device) % n
            at = offset.clamp_min(0)
            chosen = doc_part & (draw[pair[:, None], at] < self.config.mlm_probability)
            labels[chosen] = ids[chosen]
            kind = how[pair[:, None], at]
            masked = ids.clone()
            masked[chosen & (kind < 0.8)] = tok.mask_token_id
            swap = chosen & (kind >= 0.8) & (kind < 0.9)
            masked[swap] = swap_to[pair[:, None], at][swap]
            feats["input_ids"] = masked
        base = cross.model.base_model
        kwargs = {k: feats[k] for k in ("token_type_ids",) if k in feats}
        hidden = base(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"], **kwargs).last_hidden_state
        pooled = base.pooler(hidden)
        scores = cross.model.classifier(cross.model.dropout(pooled))[:, 0]
        rop = torch.relu(self.config.margin - scores[:n] + scores[n:]).mean()
        if self.config.mlm_weight == 0 or not (labels != -100).any():
            return rop
        logits = self.prop.mlm_head(hidden)
        mlm = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                ignore_index=-100)  # fmt: skip
        return rop + self.config.mlm_weight * mlm


def pretrain_prop(
    model: str | os.PathLike[str] | Any,
    corpus: DocSource,
    output_dir: str | os.PathLike[str],
    *,
    config: PropConfig | None = None,
    resume: bool = False,
) -> Path:
    """Pre-train a cross-encoder with PROP on ``corpus``; returns the final directory (a cross-encoder that
    ``train_reranker`` fine-tunes as any other). ``model``: an encoder directory or Hub id (a BERT-style model:
    a fresh one-logit head is made) or a ``CrossEncoder``."""
    config = config or PropConfig()
    texts = doc_texts(corpus)
    docids = sorted(texts)
    if config.max_docs is not None and config.max_docs < len(docids):
        rng = np.random.default_rng([config.seed, 3])
        docids = sorted(rng.choice(docids, size=config.max_docs, replace=False).tolist())
    texts = {d: texts[d] for d in docids}
    models = DocumentModels(texts, config.mu)
    data = TrainingSet([Example(d, "", d) for d in docids], texts, {})
    prop = PropModel(model, config.max_length)
    log.info("PROP pre-training on %d documents", len(docids))
    return PropTrainer(prop, data, models, config, output_dir).train(resume=resume)
