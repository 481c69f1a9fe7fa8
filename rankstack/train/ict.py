"""Inverse Cloze Task (ICT) pairs: pseudo-queries cut out of unlabeled documents.

Lee et al. (2019, "Latent Retrieval for Weakly Supervised Open Domain Question Answering") pre-train a
retriever without any labels: a random sentence of a passage is the query and the rest of the passage is
its positive. The sentence is removed from the context most of the time, so the model must learn what a
passage is *about* rather than match words; it is left in with a small probability (0.1 in the paper) so
the model still learns that word overlap is evidence. Pre-training on the target corpus this way adapts an
encoder to its vocabulary before (or instead of) supervised fine-tuning.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from rankstack.rerank.passages import split_sentences  # one splitter for ICT, Birch and passages
from rankstack.train.examples import Example, TrainingSet
from rankstack.types import Document


def ict_pairs(
    corpus: Iterable[Document] | Mapping[str, str],
    *,
    seed: int = 0,
    keep_probability: float = 0.1,
    min_sentences: int = 3,
    min_words: int = 4,
    max_docs: int | None = None,
) -> TrainingSet:
    """One (sentence, context) pair per document with at least ``min_sentences`` sentences.

    The query is a sentence of ``min_words`` words or more drawn at random; the context is the document's
    title and its other sentences, with the query sentence kept in place with probability
    ``keep_probability``. ``max_docs`` draws that many documents at random (in corpus order) to bound the
    cost. Everything is drawn from one ``random.Random(seed)``, so the same corpus and seed give the same
    pairs. Contexts are keyed by the document's docid; the query ids are ``ict:<docid>``.
    """
    if not 0.0 <= keep_probability <= 1.0:
        raise ValueError(f"keep_probability must be in [0, 1], not {keep_probability}")
    rng = random.Random(seed)
    docs = [
        (str(k), None, v) if isinstance(v, str) else (str(k), v.title, v.text)
        for k, v in (corpus.items() if isinstance(corpus, Mapping) else ((d.docid, d) for d in corpus))
    ]
    if max_docs is not None and max_docs < len(docs):
        chosen = set(rng.sample(range(len(docs)), max_docs))
        docs = [d for i, d in enumerate(docs) if i in chosen]
    examples: list[Example] = []
    texts: dict[str, str] = {}
    for docid, title, body in docs:
        sentences = split_sentences(body)
        candidates = [i for i, s in enumerate(sentences) if len(s.split()) >= min_words]
        if len(sentences) < min_sentences or not candidates:
            continue
        pick = rng.choice(candidates)
        keep = rng.random() < keep_probability
        context = " ".join(s for i, s in enumerate(sentences) if i != pick or keep)
        texts[docid] = f"{title} {context}" if title else context
        examples.append(Example(f"ict:{docid}", sentences[pick], docid))
    if not examples:
        raise ValueError(f"no document has {min_sentences} sentences or more; ICT needs multi-sentence documents")
    return TrainingSet(examples, texts, {e.qid: frozenset([e.positive]) for e in examples})
