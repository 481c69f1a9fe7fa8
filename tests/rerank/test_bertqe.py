"""BERT-QE: the three phases checked by hand and against a plain re-implementation, one scorer call per phase."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rankstack.pipeline import Lambda
from rankstack.rerank.base import MissingDocumentsError
from rankstack.rerank.bertqe import BertQE
from rankstack.rerank.cross import CrossEncoder
from rankstack.rerank.passages import PassageReranker
from rankstack.types import Corpus, Queries, Ranking
from tests.rerank.conftest import toy_docs, toy_queries, toy_ranking
from tests.rerank.test_passages import WordOverlap, _words

HAND_DOCS = {"d1": "red fox runs fast", "d2": "the fox sleeps here", "d3": "a red barn stands"}


def _hand_ranking() -> Ranking:
    return Ranking(["1"] * 3, ["d1", "d2", "d3"], [3.0, 2.0, 1.0], queries=Queries(["1"], ["red fox"]))


def test_formula_by_hand():
    # phase 1: s(q,d) = 2, 1, 1; kd = 2 takes d1 and d2 (tie with d3 broken by first-stage order)
    # phase 2: chunks of 2 words, stride 1: "red fox" 2, "fox runs" 1, "runs fast" 0, "the fox" 1, "fox sleeps" 1,
    #          "sleeps here" 0; kc = 2 keeps "red fox" and "fox runs" (first of the ties), weights softmax(2, 1)
    # phase 3: s(c,d) for "red fox": 2, 1, 1; for "fox runs": 2, 1, 0
    scorer = WordOverlap()
    qe = BertQE(scorer, HAND_DOCS, kd=2, kc=2, chunk_size=2, chunk_stride=1)
    out = qe(_hand_ranking())
    w1 = math.e / (math.e + 1)
    expected = {
        "d1": 0.6 * 2 + 0.4 * (w1 * 2 + (1 - w1) * 2),
        "d2": 0.6 * 1 + 0.4 * (w1 * 1 + (1 - w1) * 1),
        "d3": 0.6 * 1 + 0.4 * (w1 * 1 + (1 - w1) * 0),
    }
    got = dict(zip(out.docid.tolist(), out.score.tolist()))
    assert got == pytest.approx(expected, rel=1e-12)
    # one call per phase; phase 3 pairs (chunk, d) go through the scorer's cache, and the chunk "red fox"
    # is the query itself, so its three pairs were scored in phase 1 already
    assert [len(docs) for _, docs in scorer.calls] == [3, 6, 3]
    assert scorer.calls[1][1] == ["red fox", "fox runs", "runs fast", "the fox", "fox sleeps", "sleeps here"]
    assert scorer.calls[2][0] == ["fox runs"] * 3


def test_cheaper_scorers_for_phases_two_and_three():
    scorer, chunks, cheap = WordOverlap(), WordOverlap(name="chunks"), WordOverlap(name="cheap", factor=0.5)
    qe = BertQE(
        scorer, HAND_DOCS, chunk_scorer=chunks, expansion_scorer=cheap, kd=2, kc=2, chunk_size=2, chunk_stride=1
    )
    out = qe(_hand_ranking())
    got = dict(zip(out.docid.tolist(), out.score.tolist(), strict=True))
    w1 = math.e / (math.e + 1)
    assert got["d3"] == pytest.approx(0.6 * 1 + 0.4 * 0.5 * w1)
    assert got["d1"] == pytest.approx(0.6 * 2 + 0.4 * 0.5 * 2)
    assert [len(d) for _, d in scorer.calls] == [3]
    assert [len(d) for _, d in chunks.calls] == [6]
    assert [len(d) for _, d in cheap.calls] == [6]  # its own cache: nothing scored before


def _reference(ranking: Ranking, texts: dict[str, str], kd: int, kc: int, size: int, stride: int, alpha: float):
    """BERT-QE over the WordOverlap model, written as plain loops."""

    def f(a: str, b: str) -> float:
        return float(len(_words(a) & _words(b)))

    def chunks_of(text: str) -> list[str]:
        words = text.split()
        out, start = [], 0
        while True:
            out.append(" ".join(words[start : start + size]))
            if start + size >= len(words):
                return out
            start += stride

    query = ranking.queries.to_dict()
    result = {}
    for qid, rows in ranking.groups():
        q = query[qid]
        cands = ranking.docid[rows].tolist()
        s1 = {d: f(q, texts[d]) for d in cands}
        top = sorted(cands, key=lambda d: -s1[d])[:kd]  # stable: ties keep first-stage order
        chunks = list(dict.fromkeys(c for d in top for c in chunks_of(texts[d]) if c))
        chosen = sorted(chunks, key=lambda c: -f(q, c))[:kc]
        z = [math.exp(f(q, c)) for c in chosen]
        weights = [x / sum(z) for x in z]
        for d in cands:
            expansion = sum(w * f(c, texts[d]) for w, c in zip(weights, chosen, strict=True))
            result[(qid, d)] = (1 - alpha) * s1[d] + alpha * expansion
    return result


@pytest.mark.parametrize("source", ["mapping", "corpus"])
def test_a_pipeline_stage_matches_plain_loops(source):
    texts = {d.docid: d.contents() for d in toy_docs()}
    docs = texts if source == "mapping" else Corpus.from_documents(toy_docs())
    scorer = WordOverlap()
    pipeline = Lambda(lambda q: toy_ranking(5), "first") % 4 >> BertQE(scorer, docs, kd=2, kc=3)
    out = pipeline(toy_queries())
    ref = _reference(toy_ranking(4), texts, kd=2, kc=3, size=10, stride=5, alpha=0.4)
    got = dict(zip(zip(out.qid.tolist(), out.docid.tolist()), out.score.tolist()))
    assert got == pytest.approx(ref, rel=1e-12)
    assert len(scorer.calls) == 3 and len(scorer.calls[2][1]) == len(out) * 3


def test_phase_one_reuses_the_rerankers_cache():
    texts = {d.docid: d.contents() for d in toy_docs()}
    scorer = WordOverlap(texts)
    pipeline = Lambda(lambda q: toy_ranking(3), "first") >> scorer >> BertQE(scorer, texts)
    pipeline(toy_queries())
    assert len(scorer.calls) == 3  # the re-ranking, then phases 2 and 3: phase 1 came from the cache


def test_no_chunks_keeps_the_phase_one_order():
    docs = {"e1": "", "e2": "", "x": "red"}
    ranking = Ranking(["1"] * 3, ["e1", "e2", "x"], [3.0, 2.0, 1.0], queries=Queries(["1"], ["red"]))
    out = BertQE(WordOverlap(), docs, kd=2)(ranking)
    got = dict(zip(out.docid.tolist(), out.score.tolist()))
    # top-2 by phase 1 is x then e1; x gives the chunk "red", so the expansion still works
    assert got["x"] == pytest.approx(0.6 * 1 + 0.4 * 1)
    only_empty = Ranking(["1"] * 2, ["e1", "e2"], [2.0, 1.0], queries=Queries(["1"], ["red"]))
    scorer = WordOverlap()
    out = BertQE(scorer, docs)(only_empty)
    np.testing.assert_array_equal(out.score, [0.0, 0.0])
    assert len(scorer.calls) == 1  # phase 1 only: no chunks, nothing to expand with


def test_missing_documents():
    texts = {d.docid: d.contents() for d in toy_docs()}
    del texts["d4"]
    with pytest.raises(MissingDocumentsError, match="d4"):
        BertQE(WordOverlap(), texts)(toy_ranking(3))
    out = BertQE(WordOverlap(), texts, missing="keep")(toy_ranking(3))
    assert len(out) == len(toy_ranking(3))
    for _, rows in out.groups():
        if "d4" in out.docid[rows].tolist():
            assert out.docid[rows][-1] == "d4"


def test_bad_arguments():
    with pytest.raises(ValueError, match="kd"):
        BertQE(WordOverlap(), kd=0)
    with pytest.raises(ValueError, match="chunk_stride"):
        BertQE(WordOverlap(), chunk_size=5, chunk_stride=6)
    with pytest.raises(ValueError, match="alpha"):
        BertQE(WordOverlap(), alpha=1.5)
    with pytest.raises(TypeError, match="expansion_scorer"):
        BertQE(WordOverlap(), expansion_scorer=object())


class RecordingCrossEncoder(CrossEncoder):
    def score_pairs(self, queries, docs):
        self.seen = [*getattr(self, "seen", []), list(docs)]
        return super().score_pairs(queries, docs)


def test_with_a_tiny_cross_encoder_and_maxp_in_phase_three(tiny_ce):
    ce = RecordingCrossEncoder(tiny_ce)
    maxp = PassageReranker(ce, window=8, stride=4)
    ranking = toy_ranking(3).for_qids(["q0", "q1"])
    corpus = Corpus.from_documents(toy_docs())
    qe = BertQE(ce, corpus, expansion_scorer=maxp, kd=2, kc=2)
    out = (Lambda(lambda q: ranking, "first") % 3 >> qe)(toy_queries().subset(["q0", "q1"]))
    assert len(out) == 6 and np.isfinite(out.score).all()
    # phase 3 went through MaxP: passages of 8 words, each after its document's title (read from the corpus)
    phase3 = ce.seen[-1]
    assert len(phase3) > 6 * 2 and all(p.split()[1] == "story" and len(p.split()) <= 10 for p in phase3)
    # with alpha = 0 only phase 1 is left: the cross-encoder's own ranking
    plain = CrossEncoder(tiny_ce, corpus)(ranking)
    alone = BertQE(ce, corpus, expansion_scorer=maxp, kd=2, kc=2, alpha=0.0)(ranking)
    assert alone.docid.tolist() == plain.docid.tolist()
    np.testing.assert_allclose(alone.score, plain.score, atol=1e-6)


class ToyIndex:
    """What a re-ranker reads of an index: ``index.docs[docid]`` gives a Document (KeyError if absent).

    A real inverted index would do, but BM25's kernels take half a minute to compile on a cold cache."""

    def __init__(self, docs):
        self.docs = {d.docid: d for d in docs}


def test_a_stage_after_a_retriever_over_an_index():
    index = ToyIndex(toy_docs())
    first = Lambda(lambda q: toy_ranking(6), "bm25")
    scorer = WordOverlap()
    out = (first % 5 >> BertQE(scorer, docs=index, kd=2, kc=3))(toy_queries())
    ref = _reference(
        toy_ranking(5), {d.docid: d.contents() for d in toy_docs()}, kd=2, kc=3, size=10, stride=5, alpha=0.4
    )
    got = dict(zip(zip(out.qid.tolist(), out.docid.tolist()), out.score.tolist()))
    assert got == pytest.approx(ref, rel=1e-12)
    # a passage scorer in phase 3 gets the titles from the index
    maxp = PassageReranker(WordOverlap(name="maxp"), window=6, stride=3)
    (first % 2 >> BertQE(scorer, docs=index, expansion_scorer=maxp, kd=1, kc=1))(toy_queries())
    assert all(p.split()[1] == "story" for p in maxp.scorer.calls[-1][1])
