"""Passage splitting and FirstP / MaxP / SumP / cumulative-gain aggregation, checked by hand and on a tiny model."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from rankstack.pipeline import Lambda
from rankstack.rerank.base import MissingDocumentsError, PointwiseReranker
from rankstack.rerank.cross import CrossEncoder
from rankstack.rerank.passages import (
    PassageReranker,
    TitledText,
    cumulative_gain,
    split_sentences,
    split_tokens,
    split_words,
    window_spans,
)
from rankstack.types import Corpus, Document, Queries, Ranking
from tests.rerank.conftest import toy_docs, toy_queries, toy_ranking

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


class WordOverlap(PointwiseReranker):
    """A model one can compute by hand: the score is how many distinct query words the text contains.

    Every ``score_pairs`` call is recorded as (queries, texts), so tests can count calls and see passages.
    """

    def __init__(self, docs=None, *, name: str = "overlap", factor: float = 1.0, **kw):
        super().__init__(docs, **kw)
        self.name, self.factor = name, factor
        self.calls: list[tuple[list[str], list[str]]] = []

    @property
    def cache_key(self):
        return ("overlap", self.name, self.factor)

    def score_pairs(self, queries, docs):
        self.calls.append((list(queries), list(docs)))
        return np.array([self.factor * len(_words(q) & _words(d)) for q, d in zip(queries, docs, strict=True)])


def one_row(docid: str = "d", query: str = "q r") -> Ranking:
    return Ranking(["1"], [docid], [1.0], queries=Queries(["1"], [query]))


# ------------------------------------------------------------------------------------------------ splitting
def test_window_spans_at_the_edges():
    assert window_spans(0, 150, 75) == [(0, 0)]  # empty: one empty window
    assert window_spans(100, 150, 75) == [(0, 100)]  # shorter than the window
    assert window_spans(150, 150, 75) == [(0, 150)]  # exactly one window
    assert window_spans(300, 150, 75) == [(0, 150), (75, 225), (150, 300)]  # exact multiple: no stub window
    assert window_spans(301, 150, 75) == [(0, 150), (75, 225), (150, 300), (225, 301)]
    assert window_spans(300, 150, 150) == [(0, 150), (150, 300)]  # stride == window: no overlap
    assert window_spans(7, 3, 1) == [(0, 3), (1, 4), (2, 5), (3, 6), (4, 7)]
    with pytest.raises(ValueError, match="stride"):
        window_spans(10, 3, 4)
    with pytest.raises(ValueError, match="window"):
        window_spans(10, 0, 1)


def test_split_words():
    assert split_words("a  b\nc d e f g h i j", 4, 2) == ["a b c d", "c d e f", "e f g h", "g h i j"]
    assert split_words("", 4, 2) == [""]
    assert split_words("   ", 4, 2) == [""]
    assert split_words("a b c", 4, 2) == ["a b c"]
    text = " ".join(f"w{i}" for i in range(300))
    passages = split_words(text)  # Dai & Callan's 150 / 75
    assert [p.split()[0] for p in passages] == ["w0", "w75", "w150"] and all(len(p.split()) == 150 for p in passages)


def test_token_windows_are_substrings_with_at_most_window_tokens(minilm):
    tok = transformers.AutoTokenizer.from_pretrained(minilm)
    plain = "the cat sat on the mat and the dog ran to the park with a ball"  # one token per word
    assert split_tokens(plain, tok, 4, 2) == split_words(plain, 4, 2)
    text = "Tokenization splits unbelievably long words into several pieces, punctuation too!"
    passages = split_tokens(text, tok, 5, 3)
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    assert len(passages) == len(window_spans(n, 5, 3)) > 1
    assert passages[0].startswith("Tokenization") and text.endswith(passages[-1])
    for p in passages:
        assert p in text and len(tok(p, add_special_tokens=False)["input_ids"]) <= 5 + 2  # re-tokenising a cut word
    assert split_tokens("", tok, 5, 3) == [""]

    class Slow:  # a tokenizer without character offsets (transformers' Python-only tokenizers)
        is_fast = False

    with pytest.raises(ValueError, match="fast tokenizer"):
        split_tokens(text, Slow(), 5, 3)


def test_split_sentences_handles_abbreviations_initials_and_acronyms():
    text = (
        "Dr. Smith met Prof. J. R. Doe in the U.S. Army. Was it at 3 p.m. on Monday? Yes! "
        'Smith et al. Reported it, e.g. in Fig. 2 of the paper. "Quoted sentence." (Bracketed one.) Last one'
    )
    assert split_sentences(text) == [
        "Dr. Smith met Prof. J. R. Doe in the U.S. Army.",
        "Was it at 3 p.m. on Monday?",
        "Yes!",
        "Smith et al. Reported it, e.g. in Fig. 2 of the paper.",
        '"Quoted sentence."',
        "(Bracketed one.)",
        "Last one",
    ]
    assert split_sentences("Heading without stop\n\nBody starts here. In 2019. 2020 came...") == [
        "Heading without stop",
        "Body starts here.",
        "In 2019.",
        "2020 came...",
    ]
    assert split_sentences("") == [] and split_sentences("  \n ") == []
    assert split_sentences("no capital after. so one sentence") == ["no capital after. so one sentence"]
    assert split_sentences("x" * 100 + ". Next one.") == [
        "x" * 100 + ".",
        "Next one.",
    ]  # long words are no abbreviations


def test_ict_still_imports_the_splitter():
    from rankstack.train import split_sentences as from_train
    from rankstack.train.ict import split_sentences as from_ict

    assert from_train is split_sentences and from_ict is split_sentences


# ------------------------------------------------------------------------------------------------ aggregation
# query "q r"; window 4, stride 2 gives passages "q x x x" (1), "x x r q" (2), "r q x x" (2), "x x x x" (0)
HAND = "q x x x r q x x x x"
HAND_SCORES = [1.0, 2.0, 2.0, 0.0]


def _hand(aggregate: str, **kw) -> tuple[float, WordOverlap]:
    scorer = WordOverlap()
    rr = PassageReranker(scorer, {"d": HAND}, aggregate=aggregate, window=4, stride=2, **kw)
    return float(rr(one_row()).score[0]), scorer


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_first_max_sum_by_hand():
    first, scorer = _hand("first")
    assert first == 1.0 and scorer.calls[0][1] == ["q x x x"]  # FirstP never reads the rest
    maxp, scorer = _hand("max")
    assert maxp == 2.0 and scorer.calls[0][1] == ["q x x x", "x x r q", "r q x x", "x x x x"]
    assert _hand("sum")[0] == 5.0


def test_cumulative_gain_by_hand():
    p1, p2, p3, p4 = (_sigmoid(s) for s in HAND_SCORES)
    g = 0.9
    expected = p1 + g * (1 - p1) * p2 + g**2 * (1 - p1) * (1 - p2) * p3 + g**3 * (1 - p1) * (1 - p2) * (1 - p3) * p4
    assert _hand("pcgm")[0] == pytest.approx(expected, rel=1e-12)
    noisy_or = 1 - (1 - p1) * (1 - p2) * (1 - p3) * (1 - p4)
    assert _hand("pcgm", patience=1.0)[0] == pytest.approx(noisy_or, rel=1e-12)
    # reading order matters below patience 1: the same gains read best-first accumulate more
    assert cumulative_gain([2, 2, 1, 0]) > cumulative_gain([0, 1, 2, 2])
    assert cumulative_gain([2, 2, 1, 0], patience=1.0) == pytest.approx(cumulative_gain([0, 1, 2, 2], patience=1.0))
    # log-probability scores (two-class heads): gain exp(s)
    assert cumulative_gain([math.log(0.5), math.log(0.5)], patience=1.0, gain="exp") == pytest.approx(0.75)
    two_class = WordOverlap()
    two_class.scores_are_log_probs = True  # as a two-class CrossEncoder or monoT5 says
    assert PassageReranker(two_class, aggregate="pcgm")._gain() == "exp"
    assert PassageReranker(WordOverlap(), aggregate="pcgm")._gain() == "sigmoid"


def test_max_passages_keeps_the_first_ones():
    maxp, scorer = _hand("max", max_passages=1)
    assert maxp == 1.0 and scorer.calls[0][1] == ["q x x x"]
    sump, scorer = _hand("sum", max_passages=3)
    assert sump == 5.0 and len(scorer.calls[0][1]) == 3
    assert _hand("sum", max_passages=2)[0] == 3.0


def test_empty_document_is_one_empty_passage():
    scorer = WordOverlap()
    rr = PassageReranker(scorer, {"d": ""}, window=4, stride=2)
    assert rr(one_row()).score[0] == 0.0 and scorer.calls[0][1] == [""]
    scorer = WordOverlap()
    PassageReranker(scorer, {"d": ""}, split="sentence")(one_row())
    assert scorer.calls[0][1] == [""]


# ------------------------------------------------------------------------------------------------ the stage
def _mapping() -> dict[str, str]:
    return {d.docid: d.contents() for d in toy_docs()}


def _expected_passages(text: str, window: int, stride: int) -> list[str]:
    words = text.split()
    out, start = [], 0
    while True:
        out.append(" ".join(words[start : start + window]))
        if start + window >= len(words):
            return out
        start += stride


def test_one_scorer_call_per_stage_call_and_a_cache():
    scorer = WordOverlap()
    rr = PassageReranker(scorer, _mapping(), aggregate="sum", window=5, stride=3, title="inline")
    ranking = toy_ranking(4)
    out = rr(ranking)
    assert len(scorer.calls) == 1
    texts = _mapping()
    query = toy_queries().to_dict()
    expected_pairs = {(query[q], p) for q, d in zip(ranking.qid.tolist(), ranking.docid.tolist(), strict=True)
                      for p in _expected_passages(texts[d], 5, 3)}  # fmt: skip
    assert sorted(zip(*scorer.calls[0], strict=True)) == sorted(expected_pairs)  # a repeated passage: once
    for q, d, s in zip(out.qid.tolist(), out.docid.tolist(), out.score.tolist(), strict=True):
        ref = sum(len(_words(query[q]) & _words(p)) for p in _expected_passages(texts[d], 5, 3))
        assert s == ref
    assert rr(ranking) == out and len(scorer.calls) == 1  # cached: no second call


def test_aggregations_over_one_scorer_share_passage_scores():
    """MaxP after SumP over the same scorer and window asks the model for no passage twice; a scorer with
    ``cache=False`` is asked again, and gives the same scores."""
    scorer = WordOverlap()
    ranking = toy_ranking(4)
    sums = PassageReranker(scorer, _mapping(), aggregate="sum", window=5, stride=3, title="inline")(ranking)
    maxes = PassageReranker(scorer, _mapping(), aggregate="max", window=5, stride=3, title="inline")(ranking)
    assert len(scorer.calls) == 1
    PassageReranker(scorer, _mapping(), aggregate="max", window=4, stride=2, title="inline")(ranking)
    assert len(scorer.calls) == 2  # another window: other passages
    fresh = WordOverlap(cache=False)
    again = PassageReranker(fresh, _mapping(), aggregate="max", window=5, stride=3, title="inline")(ranking)
    assert len(fresh.calls) == 1 and again == maxes and sums != maxes
    scorer.clear_cache()
    PassageReranker(scorer, _mapping(), aggregate="first", window=5, stride=3, title="inline")(ranking)
    assert len(scorer.calls) == 3


def test_cache_key_holds_the_scorer_and_every_setting():
    s = WordOverlap()
    keys = {
        PassageReranker(s).cache_key,
        PassageReranker(s, aggregate="sum").cache_key,
        PassageReranker(s, aggregate="first").cache_key,
        PassageReranker(s, aggregate="pcgm").cache_key,
        PassageReranker(s, aggregate="pcgm", patience=0.5).cache_key,
        PassageReranker(s, window=100).cache_key,
        PassageReranker(s, stride=50).cache_key,
        PassageReranker(s, max_passages=4).cache_key,
        PassageReranker(s, title="inline").cache_key,
        PassageReranker(s, split="sentence").cache_key,
        PassageReranker(WordOverlap(name="other")).cache_key,
    }
    assert len(keys) == 11
    assert PassageReranker(s).cache_key == PassageReranker(WordOverlap()).cache_key


@pytest.mark.parametrize("source", ["mapping", "corpus", "documents"])
def test_a_pipeline_stage_over_every_document_source(source):
    docs = {
        "mapping": _mapping(),
        "corpus": Corpus.from_documents(toy_docs()),
        "documents": {d.docid: d for d in toy_docs()},
    }[source]
    first = Lambda(lambda queries: toy_ranking(5), "first")
    scorer = WordOverlap()
    pipeline = first % 3 >> PassageReranker(scorer, docs, window=6, stride=3)
    out = pipeline(toy_queries())
    assert len(out) == 3 * len(toy_queries()) and len(scorer.calls) == 1
    assert out.queries == toy_queries()
    passages = scorer.calls[0][1]
    if source == "mapping":  # no titles known: the title stays inline, in the first passage only
        assert sum(p.endswith("story") or "story The" in p for p in passages) == 3 * len(toy_queries())
    else:  # the title starts every passage
        assert all(re.match(r"^\w+ story ", p) for p in passages)
    # the query's own document names the animal twice: it wins every query
    top = out.cutoff(1)
    assert top.docid.tolist() == [f"d{i}" for i in range(len(toy_queries()))]


def test_title_modes():
    doc = Document("d", "Body one here. Body two there.", title="The Title")
    for mode, expected in [
        ("prepend", ["The Title Body one here.", "The Title Body two there."]),
        ("inline", ["The Title Body one here.", "Body two there."]),
        ("own", ["The Title", "Body one here.", "Body two there."]),
    ]:
        scorer = WordOverlap()
        PassageReranker(scorer, [doc], split="sentence", title=mode)(one_row())
        assert scorer.calls[0][1] == expected, mode
    scorer = WordOverlap()
    PassageReranker(scorer, [Document("d", "", title="Only Title")], title="prepend")(one_row())
    assert scorer.calls[0][1] == ["Only Title"]
    assert TitledText("Title body", "Title").body == "body" and TitledText("Other", "Title").title is None


def test_missing_documents_are_refused_or_kept_below():
    docs = _mapping()
    del docs["d3"]
    with pytest.raises(MissingDocumentsError, match="d3"):
        PassageReranker(WordOverlap(), docs)(toy_ranking(3))
    out = PassageReranker(WordOverlap(), docs, missing="keep")(toy_ranking(3))
    assert len(out) == len(toy_ranking(3))
    for qid, rows in out.groups():
        if "d3" in out.docid[rows].tolist():
            assert out.docid[rows][-1] == "d3", qid


def test_bad_arguments_say_what_to_do():
    s = WordOverlap()
    with pytest.raises(ValueError, match="aggregate"):
        PassageReranker(s, aggregate="mean")
    with pytest.raises(ValueError, match="stride"):
        PassageReranker(s, window=10, stride=20)
    with pytest.raises(ValueError, match="max_passages"):
        PassageReranker(s, max_passages=0)
    with pytest.raises(ValueError, match="sentence"):
        PassageReranker(s, split="sentence", tokenizer="scorer")
    with pytest.raises(ValueError, match="tokenizer"):
        PassageReranker(s, tokenizer="scorer")  # the fake scorer has no tokenizer
    with pytest.raises(TypeError, match="PointwiseReranker"):
        PassageReranker(object())
    with pytest.raises(TypeError, match="re-ranks a ranking"):
        PassageReranker(s, _mapping())(toy_queries())


# ------------------------------------------------------------------------------------------------ a real model
def test_maxp_over_a_tiny_cross_encoder_matches_a_plain_loop(tiny_ce):
    ce = CrossEncoder(tiny_ce, batch_size=4)
    texts = _mapping()
    ranking = toy_ranking(2).for_qids(["q0", "q1", "q2"])
    out = PassageReranker(ce, texts, window=6, stride=3, aggregate="max")(ranking)
    query = toy_queries().to_dict()
    tok = transformers.AutoTokenizer.from_pretrained(tiny_ce)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_ce).eval()
    got = dict(zip(zip(out.qid.tolist(), out.docid.tolist()), out.score.tolist()))
    with torch.no_grad():
        for q, d in zip(ranking.qid.tolist(), ranking.docid.tolist(), strict=True):
            ref = max(
                float(model(**tok(query[q], p, return_tensors="pt")).logits[0, 0])
                for p in _expected_passages(texts[d], 6, 3)
            )
            assert got[(q, d)] == pytest.approx(ref, abs=1e-5)
    # windows counted in the scorer's own tokens
    rr = PassageReranker(ce, texts, window=8, stride=4, tokenizer="scorer")
    for passages in rr.passages([texts["d0"]]):
        assert all(len(tok(p, add_special_tokens=False)["input_ids"]) <= 8 for p in passages)
    assert "tokenizer='scorer'" in repr(rr)
