"""Inverse cloze task pairs: deterministic per seed, the sentence removed from its context ~90% of the time."""

from __future__ import annotations

import pytest

from rankstack.train.ict import ict_pairs, split_sentences
from rankstack.types import Document


def _corpus(n: int) -> list[Document]:
    return [
        Document(
            f"d{i}",
            f"Topic {i} is introduced here today. Some facts about topic {i} follow now. "
            f"A third sentence closes topic {i} for good. Short one.",
            title=f"Title {i}",
        )
        for i in range(n)
    ]


def test_split_sentences():
    assert split_sentences("One is here. Two? Three! e.g. four.  ") == ["One is here.", "Two?", "Three! e.g. four."]
    assert split_sentences("") == []


def test_same_seed_same_pairs_other_seed_other_pairs():
    a, b = ict_pairs(_corpus(50), seed=3), ict_pairs(_corpus(50), seed=3)
    assert a.examples == b.examples and a.texts == b.texts
    c = ict_pairs(_corpus(50), seed=4)
    assert [e.query for e in c.examples] != [e.query for e in a.examples]


def test_pairs_are_a_sentence_and_its_document_without_it_mostly():
    data = ict_pairs(_corpus(1000), seed=0, keep_probability=0.1)
    assert len(data) == 1000
    kept = 0
    for e in data.examples:
        assert e.qid == f"ict:{e.positive}" and data.positives[e.qid] == {e.positive}
        assert len(e.query.split()) >= 4  # "Short one." is never a query
        context = data.texts[e.positive]
        assert context.startswith(f"Title {e.positive[1:]} ")
        kept += e.query in context
    assert 60 <= kept <= 140  # ~10% of 1000 (binomial sd ~9.5)
    never = ict_pairs(_corpus(100), seed=0, keep_probability=0.0)
    assert not any(e.query in never.texts[e.positive] for e in never.examples)
    always = ict_pairs(_corpus(100), seed=0, keep_probability=1.0)
    assert all(
        always.texts[e.positive] == f"Title {e.positive[1:]} " + _corpus(100)[0].text.replace("0", e.positive[1:])
        for e in always.examples
    )


def test_short_documents_are_skipped_and_max_docs_samples():
    docs = [*_corpus(10), Document("short", "Only one sentence here.")]
    data = ict_pairs(docs, seed=1, max_docs=5)
    assert len(data) == 5 and len({e.positive for e in data.examples}) == 5
    assert "short" not in ict_pairs(docs, seed=1).texts
    plain = ict_pairs({"x": "First sentence is here. Second sentence is here. Third sentence is here."}, seed=0)
    assert plain.examples[0].positive == "x"
    with pytest.raises(ValueError, match="multi-sentence"):
        ict_pairs([Document("a", "One. Two.")], seed=0)
    with pytest.raises(ValueError, match="keep_probability"):
        ict_pairs(docs, keep_probability=1.5)
