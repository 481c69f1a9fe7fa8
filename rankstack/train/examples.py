"""Training data for bi-encoders: (query, positive) examples, document texts, and BM25-mined hard negatives.

A ``TrainingSet`` keeps everything the trainer needs apart: one ``Example`` per judged (query, positive)
pair, the text of every document by id, every query's judged positives (so no judged positive is ever used
as a negative, in mining or in the batch), and a pool of hard-negative docids per query. Pools are kept per
query, not per example, so an ANCE refresh or a denoising pass replaces them in one place and a checkpoint
can save them as JSON.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rankstack.index import InvertedIndex
from rankstack.pipeline import Stage
from rankstack.types import Corpus, Document, Qrels, Queries, Ranking

log = logging.getLogger(__name__)

DocSource = Corpus | Iterable[Document] | Mapping[str, "str | Document"] | InvertedIndex


@dataclass(frozen=True)
class Example:
    """One training pair: a query and the docid of one of its positives."""

    qid: str
    query: str
    positive: str


@dataclass
class TrainingSet:
    """Examples plus what they refer to.

    ``texts`` maps docid -> text for every positive and negative; ``positives`` maps qid -> all its judged
    positives; ``negatives`` maps qid -> a ranked pool of hard-negative docids (empty or missing: in-batch
    negatives only); ``teacher`` maps qid -> docid -> a teacher's score, for MarginMSE distillation.
    """

    examples: list[Example]
    texts: Mapping[str, str]
    positives: dict[str, frozenset[str]]
    negatives: dict[str, list[str]] = field(default_factory=dict)
    teacher: dict[str, dict[str, float]] | None = None

    @classmethod
    def from_qrels(
        cls, queries: Queries | Mapping[str, str], qrels: Qrels, texts: Mapping[str, str], min_relevance: int = 1
    ) -> TrainingSet:
        """One example per judgment with ``relevance >= min_relevance`` whose query and document exist.

        Judgments naming a query without text or a document missing from ``texts`` are skipped with a warning
        (a qrels file and a corpus from different versions of a collection), never silently trained on.
        """
        qtext = queries.to_dict() if isinstance(queries, Queries) else dict(queries)
        examples: list[Example] = []
        positives: dict[str, set[str]] = {}
        seen: set[tuple[str, str]] = set()
        no_query, no_doc = set(), 0
        for qid, docid, rel in zip(qrels.qid.tolist(), qrels.docid.tolist(), qrels.relevance.tolist(), strict=True):
            if rel < min_relevance:
                continue
            positives.setdefault(qid, set()).add(docid)
            if qid not in qtext:
                no_query.add(qid)
            elif docid not in texts:
                no_doc += 1
            elif (qid, docid) not in seen:  # a judgment repeated in the qrels counts once
                seen.add((qid, docid))
                examples.append(Example(qid, qtext[qid], docid))
        if no_query or no_doc:
            warnings.warn(
                f"skipped judgments: {len(no_query)} queries have no text, {no_doc} positives are not in the corpus",
                stacklevel=2,
            )
        if not examples:
            raise ValueError("no training examples: no judgment with a known query and document is positive")
        return cls(examples, texts, {q: frozenset(d) for q, d in positives.items()})

    def sample(self, max_examples: int | None = None, max_per_query: int | None = None, seed: int = 42) -> TrainingSet:
        """A copy keeping a seeded sample of the examples: at most ``max_per_query`` per query, then at most
        ``max_examples`` in all (every judgment still counts as a positive, so none is drawn as a negative).

        Why per query: judgments are not spread evenly. NFCorpus' 130 broadest training queries ("cancer",
        "meat") hold 45% of its 110k judgments, so a uniform sample of judgments trains mostly on topic words
        whose positives are loosely related papers, and the model learns the topic, not relevance.
        """
        rng = np.random.default_rng([seed, 2])
        keep = list(range(len(self.examples)))
        if max_per_query is not None:
            by_query: dict[str, list[int]] = {}
            for i, e in enumerate(self.examples):
                by_query.setdefault(e.qid, []).append(i)
            keep = sorted(
                i for rows in by_query.values()
                for i in (rows if len(rows) <= max_per_query else rng.choice(rows, max_per_query, replace=False))
            )  # fmt: skip
        if max_examples is not None and max_examples < len(keep):
            keep = sorted(rng.choice(keep, size=max_examples, replace=False).tolist())
        return dataclasses.replace(self, examples=[self.examples[int(i)] for i in keep])

    def retrieved_by(self, run: Ranking, depth: int) -> TrainingSet:
        """A copy keeping the examples whose positive ``run`` ranks within its query's top ``depth``.

        A re-ranker only ever sees the first stage's candidates. Where most judged positives lie outside them
        (NFCorpus: BM25's top 100 holds a quarter), training on those against BM25's negatives teaches the
        model that sharing the query's words marks a negative, and it re-ranks worse than BM25 even on its own
        training queries.
        """
        docids = run.docid.tolist()
        top = {qid: set(docids[rows][:depth]) for qid, rows in run.groups()}
        kept = [e for e in self.examples if e.positive in top.get(e.qid, ())]
        if not kept:
            raise ValueError(f"no judged positive is in the first stage's top {depth}: raise the depth")
        log.info("positives in the first stage's top %d: %d of %d examples", depth, len(kept), len(self.examples))
        return dataclasses.replace(self, examples=kept)

    def with_negatives(self, negatives: Mapping[str, Sequence[str]]) -> TrainingSet:
        """A copy whose hard-negative pools are ``negatives`` (judged positives removed, unknown docids too)."""
        pools = {
            qid: [d for d in pool if d not in self.positives.get(qid, ()) and d in self.texts]
            for qid, pool in negatives.items()
        }
        return dataclasses.replace(self, negatives=pools)

    def query_texts(self) -> dict[str, str]:
        """qid -> query text for the queries that have examples."""
        return {e.qid: e.query for e in self.examples}

    def __len__(self) -> int:
        return len(self.examples)

    def __repr__(self) -> str:
        pools = sum(1 for p in self.negatives.values() if p)
        return f"TrainingSet({len(self.examples)} examples, {len(self.texts)} texts, {pools} negative pools)"


def doc_texts(source: DocSource) -> dict[str, str]:
    """docid -> the text an encoder sees (``Document.contents()``: title and body), from a corpus, an
    iterable of documents, a mapping, or an index's document store."""
    if isinstance(source, InvertedIndex):
        source = source.iter_documents()
    if isinstance(source, Mapping):
        return {str(k): v if isinstance(v, str) else v.contents() for k, v in source.items()}
    return {doc.docid: doc.contents() for doc in source}


def bm25_negatives(
    queries: Queries | Mapping[str, str],
    positives: Mapping[str, Iterable[str]],
    retriever: Stage | InvertedIndex,
    depth: int = 30,
) -> dict[str, list[str]]:
    """The top ``depth`` BM25 documents of each query that are not judged positive, best first.

    Hard negatives from a lexical retriever teach a dense model what term overlap alone gets wrong (DPR:
    Karpukhin et al., 2020, found one BM25 negative per question worth several points of top-20 accuracy).
    ``retriever`` is any stage (BM25 over an index, a BM25 pipeline) or an inverted index, searched with
    ``index.bm25(k=...)`` deep enough that ``depth`` negatives remain after removing the positives.
    """
    queries = Queries.coerce(queries)
    if isinstance(retriever, InvertedIndex):
        most = max((len(set(p)) for p in positives.values()), default=0)
        retriever = retriever.bm25(k=depth + most)
    run = retriever(queries)
    pools: dict[str, list[str]] = {qid: [] for qid in queries.qid.tolist()}
    docids = run.docid.tolist()
    for qid, rows in run.groups():
        judged = set(positives.get(qid, ()))
        pools[qid] = [d for d in docids[rows] if d not in judged][:depth]
    log.info("BM25 negatives: %d queries, %.1f negatives per query", len(pools), _mean_len(pools))
    return pools


def _mean_len(pools: Mapping[str, Sequence[str]]) -> float:
    return sum(len(p) for p in pools.values()) / max(len(pools), 1)
