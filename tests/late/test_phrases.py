"""Phrase retrieval: span search equals brute force, SQuAD answer metrics, cloze data, training, the index."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.late.phrases import (
    PhraseEncoder,
    PhraseIndexSearcher,
    build_phrase_index,
    cloze_pairs,
    contains_answer,
    exact_match,
    f1,
    span_scores,
)
from rankstack.train import TrainConfig, train_phrases
from rankstack.types import Document, Queries
from tests.rerank.conftest import make_tiny_bert_encoder

torch = pytest.importorskip("torch")

DOCS = [
    Document("a", "The final was won by Argentina in Doha. Lionel Messi scored twice in the final."),
    Document("b", "Max Verstappen won the championship in 2023. He drives for Red Bull Racing."),
    Document("c", "The Airbus A350 is a long-range airliner built in Toulouse."),
]


def test_span_scores_equal_brute_force_within_each_passage():
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=9), rng.normal(size=9)
    owner = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    ends, scores = span_scores(start, end, owner, 3)
    for i in range(9):
        options = [(start[i] + end[j], j) for j in range(i, min(i + 3, 9)) if owner[j] == owner[i]]
        best, j = max(options, key=lambda x: (x[0], -x[1]))
        assert scores[i] == pytest.approx(best) and ends[i] == j


def test_squad_answer_metrics():
    assert exact_match("The Lionel Messi!", "lionel messi") == 1.0
    assert f1("Lionel Andrés Messi", "Lionel Messi") == pytest.approx(0.8)
    assert f1("Ronaldo", "Messi") == 0.0
    assert contains_answer("Messi scored twice.", "messi") and not contains_answer("Messiah", "Messi")


def test_cloze_pairs_blank_a_span_found_in_the_passage():
    triples = cloze_pairs(DOCS, per_document=2, seed=1)
    assert triples
    texts = {d.docid: d.text for d in DOCS}
    for question, docid, answer in triples:
        assert answer in texts[docid] and "what" in question and answer not in question.replace("what", "", 1)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return make_tiny_bert_encoder(tmp_path_factory.mktemp("phrases") / "bert")


def test_training_finds_the_answer_spans_and_the_index_returns_them(bert_dir, tmp_path):
    encoder = PhraseEncoder(bert_dir, dim=16, device="cpu", max_phrase_length=4)
    triples = [("who scored twice in the final", "a", "Lionel Messi"), ("who won the championship in 2023", "b",
               "Max Verstappen"), ("where is the airliner built", "c", "Toulouse"), ("who won the final", "a",
               "Argentina")]  # fmt: skip
    texts = {d.docid: d.contents() for d in DOCS}
    config = TrainConfig(epochs=60, batch_size=4, learning_rate=3e-3, show_progress=False, log_every=0)
    final = train_phrases(encoder, triples, texts, tmp_path / "run", config=config, head_learning_rate=None)
    index = build_phrase_index(DOCS, encoder, tmp_path / "idx")
    searcher = PhraseIndexSearcher(index, encoder, texts)
    queries = Queries(["q1", "q2", "q3", "q4"], [t[0] for t in triples])
    top = {p.qid: p for p in searcher.search(queries, k=3) if p.rank == 1}
    hits = [exact_match(top[q].text, t[2]) for q, t in zip(queries.qid.tolist(), triples, strict=True)]
    assert np.mean(hits) >= 0.75  # the training questions' own answers, found among every phrase
    for p in top.values():
        assert texts[p.docid][p.start : p.end] == p.text
    for doc in DOCS:  # the tokenizer's spans are the ones stored with the vectors
        np.testing.assert_array_equal(encoder.token_spans(doc.contents()), encoder.encode_passages([doc.contents()])[0][1])
    again = PhraseEncoder(final, device="cpu")
    np.testing.assert_allclose(again.encode_questions(["who won"]), encoder.encode_questions(["who won"]), atol=1e-5)
    other = PhraseEncoder(bert_dir, dim=16, device="cpu", seed=3)
    with pytest.raises(ValueError, match="another phrase encoder"):
        PhraseIndexSearcher(index, other, texts)


def test_training_refuses_triples_whose_answer_is_absent(bert_dir, tmp_path):
    with pytest.raises(ValueError, match="no \\(question"):
        train_phrases(PhraseEncoder(bert_dir, dim=8, device="cpu"), [("q", "a", "Ronaldo")],
                      {"a": DOCS[0].text}, tmp_path / "x")  # fmt: skip
