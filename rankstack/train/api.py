"""``train_biencoder``: the one call behind ``rankstack train``, from judgments to a fine-tuned model directory.

It strings the pieces together in the order the papers do: optional ICT pre-training on the corpus
(Lee et al., 2019), negatives from BM25 (DPR) and optionally refreshed by the model itself (ANCE), optional
removal of likely false negatives (RocketQA), optional MarginMSE distillation from a teacher, then the
trainer. Every stage writes under ``output_dir`` so a killed run resumes with ``resume=True``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

from rankstack.dense.encoder import BiEncoder
from rankstack.index import InvertedIndex, build_inverted_index, open_index
from rankstack.train.examples import DocSource, TrainingSet, bm25_negatives, doc_texts
from rankstack.train.ict import ict_pairs
from rankstack.train.negatives import AnceRefresh, denoise
from rankstack.train.scoring import BiEncoderScorer, PairModel, Scorer, score_pools
from rankstack.train.trainer import TrainConfig, Trainer
from rankstack.types import Document, Qrels, Queries

log = logging.getLogger(__name__)

NegativeSource = Literal["none", "bm25", "ance"]


def train_biencoder(
    model: str | os.PathLike[str] | BiEncoder,
    queries: Queries,
    qrels: Qrels,
    corpus: DocSource,
    output_dir: str | os.PathLike[str],
    *,
    negatives: NegativeSource = "bm25",
    config: TrainConfig | None = None,
    bm25_index: InvertedIndex | str | os.PathLike[str] | None = None,
    denoise_margin: float | None = None,
    denoiser: Scorer | None = None,
    teacher: Scorer | PairModel | None = None,
    ict_warmup: TrainConfig | None = None,
    ict_keep_probability: float = 0.1,
    ict_max_docs: int | None = None,
    resume: bool = False,
) -> Path:
    """Fine-tune a bi-encoder on ``qrels`` and return the directory of the final model.

    ``model``: a model directory or Hub id (loaded as ``BiEncoder(model)``), or a ``BiEncoder`` (trained in
    place). ``queries``/``qrels``: training queries and judgments (relevance > 0 is a positive).
    ``corpus``: the documents, as a Corpus, documents, ``{docid: text}`` or an inverted index's doc store.
    ``negatives``: ``"none"`` (in-batch negatives only), ``"bm25"`` (the top ``config.negative_depth`` BM25
    non-positives of each query), or ``"ance"`` (BM25 to start, then re-mined by the model being trained
    every ``config.refresh_every`` steps). ``bm25_index``: an index of the same corpus (default: built in
    ``output_dir/bm25-index``). ``denoise_margin``: drop hard negatives that ``denoiser`` (default: the
    starting model) scores above the query's positive minus the margin, before training. ``teacher``: a
    scorer whose margins are distilled with MarginMSE (``config.loss`` must be ``"margin_mse"``).
    ``ict_warmup``: first pre-train with the inverse cloze task on the corpus under this configuration
    (``ict_keep_probability``, at most ``ict_max_docs`` documents), in ``output_dir/ict``. ``resume``:
    continue an interrupted run in the same ``output_dir``. The final model is ``output_dir/final``.
    """
    config = config or TrainConfig()
    if negatives not in ("none", "bm25", "ance"):
        raise ValueError(f"negatives must be 'none', 'bm25' or 'ance', not {negatives!r}")
    if (teacher is None) != (config.loss != "margin_mse"):
        raise ValueError("a teacher is needed exactly when config.loss='margin_mse'")
    if teacher is not None and negatives == "none":
        raise ValueError("MarginMSE distils margins against hard negatives; use negatives='bm25' or 'ance'")
    output_dir = Path(output_dir)
    encoder = model if isinstance(model, BiEncoder) else BiEncoder(model)
    if isinstance(corpus, InvertedIndex) and bm25_index is None:
        bm25_index = corpus
    docs = _documents(corpus)
    texts = doc_texts(docs)

    if ict_warmup is not None:
        ict = ict_pairs(docs, seed=ict_warmup.seed, keep_probability=ict_keep_probability, max_docs=ict_max_docs)
        log.info("ICT pre-training on %d pseudo-queries", len(ict))
        Trainer(encoder, ict, ict_warmup, output_dir / "ict").train(resume=resume)

    data = TrainingSet.from_qrels(queries, qrels, texts)
    refresh = None
    if negatives != "none":
        index = _bm25_index(bm25_index, docs, output_dir / "bm25-index")
        data = data.with_negatives(bm25_negatives(data.query_texts(), data.positives, index, config.negative_depth))
    if negatives == "ance":
        refresh = AnceRefresh(
            data.query_texts(),
            texts,
            data.positives,
            config.negative_depth,
            doc_max_length=config.doc_max_length,
            query_max_length=config.query_max_length,
            show_progress=config.show_progress,
        )
    if denoise_margin is not None and data.negatives:
        scorer = denoiser or BiEncoderScorer(encoder, max_length=config.doc_max_length)
        pools = denoise(data.query_texts(), data.positives, data.negatives, texts, scorer, margin=denoise_margin)
        data = data.with_negatives(pools)
    if teacher is not None:
        data.teacher = score_pools(data.query_texts(), data.positives, data.negatives, texts, teacher)
    return Trainer(encoder, data, config, output_dir, refresh=refresh).train(resume=resume)


def _documents(corpus: DocSource) -> list[Document]:
    if isinstance(corpus, InvertedIndex):
        return list(corpus.iter_documents())
    if hasattr(corpus, "items"):
        return [v if isinstance(v, Document) else Document(str(k), v) for k, v in corpus.items()]  # type: ignore[union-attr]
    return list(corpus)  # type: ignore[arg-type]


def _bm25_index(
    index: InvertedIndex | str | os.PathLike[str] | None, docs: list[Document], path: Path
) -> InvertedIndex:
    if isinstance(index, InvertedIndex):
        return index
    if index is not None:
        return open_index(index)
    if (path / "manifest.json").exists():
        return open_index(path)
    return build_inverted_index(docs, path, show_progress=False)


def bm25_training_set(
    queries: Queries,
    qrels: Qrels,
    corpus: DocSource,
    output_dir: Path,
    *,
    negatives: bool,
    depth: int,
    bm25_index: Any = None,
) -> TrainingSet:
    """Examples from ``qrels`` over ``corpus``, with each query's top ``depth`` BM25 non-positives as its pool when
    ``negatives`` (over ``bm25_index``, the corpus itself when it is an index, or one built in
    ``output_dir/bm25-index``): what the SPLADE and ColBERT trainers start from."""
    docs = _documents(corpus)
    data = TrainingSet.from_qrels(queries, qrels, doc_texts(docs))
    if negatives:
        given = bm25_index if bm25_index is not None else (corpus if hasattr(corpus, "bm25") else None)
        index = _bm25_index(given, docs, output_dir / "bm25-index")
        data = data.with_negatives(bm25_negatives(data.query_texts(), data.positives, index, depth))
    return data
