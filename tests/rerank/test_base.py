"""The re-ranking stage: a ranking in, the same documents re-scored and re-sorted out; where texts come from,
missing documents, the score cache and the errors a user can run into.

Scores are checked against ``reference_scores`` (one pair at a time through transformers), never against
the class under test.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import RankstackError
from rankstack.index import build_inverted_index
from rankstack.rerank import CrossEncoder, MissingDocumentsError, Reranker
from rankstack.types import Corpus, Queries, Ranking
from tests.helpers import Fixed
from tests.rerank.conftest import toy_docs, toy_queries, toy_ranking
from tests.rerank.test_cross import TOL, assert_spread, make_wide_cross_encoder, reference_scores

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = {d.docid: d.contents() for d in toy_docs()}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny one-logit cross-encoder whose scores spread (see test_cross.make_wide_cross_encoder)."""
    return make_wide_cross_encoder(tmp_path_factory.mktemp("base-ce") / "model")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_inverted_index(toy_docs(), tmp_path_factory.mktemp("toy-index") / "idx", show_progress=False)


def expected_scores(model: Path, ranking: Ranking, texts: dict[str, str] = TEXTS) -> dict[tuple[str, str], float]:
    """{(qid, docid): reference score} for every row of ``ranking``."""
    qtext = ranking.queries.to_dict()
    rows = list(zip(ranking.qid.tolist(), ranking.docid.tolist(), strict=True))
    scores = reference_scores(model, [(qtext[q], texts[d]) for q, d in rows])
    return dict(zip(rows, scores.tolist(), strict=True))


def assert_reranked(out: Ranking, expected: dict[tuple[str, str], float]) -> None:
    """``out`` holds exactly the expected rows, with their reference scores, sorted by them within a query."""
    rows = list(zip(out.qid.tolist(), out.docid.tolist(), strict=True))
    assert sorted(rows) == sorted(expected)
    np.testing.assert_allclose(out.score, [expected[r] for r in rows], rtol=0, atol=TOL)
    for qid, block in out.groups():
        want = sorted((d for q, d in expected if q == qid), key=lambda d: -expected[(qid, d)])
        assert out.docid[block].tolist() == want, qid
        assert out.rank[block].tolist() == list(range(1, len(want) + 1))


class Counting:
    """Wraps a re-ranker's ``score_pairs`` to record how many pairs each call scored."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, reranker: CrossEncoder):
        self.calls: list[list[tuple[str, str]]] = []
        inner = reranker.score_pairs

        def score_pairs(queries, docs):
            self.calls.append(list(zip(queries, docs, strict=True)))
            return inner(queries, docs)

        monkeypatch.setattr(reranker, "score_pairs", score_pairs)

    @property
    def pairs(self) -> int:
        return sum(len(c) for c in self.calls)


# ------------------------------------------------------------------------------------------- the stage
def test_ranking_in_same_documents_out_sorted_by_the_model(model: Path) -> None:
    ranking = toy_ranking(depth=4).for_qids(["q0", "q3", "q7"])
    expected = expected_scores(model, ranking)
    assert_spread(np.array(list(expected.values())))
    out = CrossEncoder(model, docs=TEXTS)(ranking)
    assert_reranked(out, expected)
    assert out.qids() == ["q0", "q3", "q7"]  # queries keep their order
    assert out.queries is ranking.queries
    # the model changed the order somewhere, so the test is not passing on the first stage's order
    assert out.docid.tolist() != ranking.docid.tolist()


def test_cutoff_then_cross_encoder_pipeline(model: Path, index) -> None:
    """``first % 3 >> ce`` with texts from an index's document store (a fixed first stage: BM25's numba
    kernels would take most of this file's time to compile)."""
    rows = [(q, f"d{(i * 5 + j) % 12}", 10.0 - j) for i, q in enumerate(["q1", "q4", "q9"]) for j in range(5)]
    first = Fixed("first", rows)
    queries = toy_queries().subset(["q1", "q4", "q9"])
    ce = CrossEncoder(model, docs=index)
    pipeline = first % 3 >> ce
    out = pipeline(queries)
    candidates = first(queries).cutoff(3).with_queries(queries)
    assert len(candidates) == 9 and candidates.docid.tolist()[:3] == ["d0", "d1", "d2"]
    assert_reranked(out, expected_scores(model, candidates))
    assert out.queries == queries
    assert repr(pipeline) == f"(first % 3) >> {ce!r}"
    # compiling pushes the cut-off into the first stage; the re-ranked result is the same
    compiled = pipeline.compile()
    assert repr(compiled).startswith("first[k=3] >> CrossEncoder(")
    assert compiled(queries) == out


def test_texts_from_index_corpus_list_or_mapping_give_identical_scores(model: Path, index) -> None:
    ranking = toy_ranking(depth=3).for_qids(["q2", "q5"])
    docs = toy_docs()
    sources = {
        "index": index,
        "corpus": Corpus.from_documents(docs),
        "list of documents": docs,
        "docid -> text": {d.docid: d.contents() for d in docs},
        "docid -> Document": {d.docid: d for d in docs},
    }
    outs = {name: CrossEncoder(model, docs=src, cache=False)(ranking) for name, src in sources.items()}
    first = outs.pop("index")
    assert_reranked(first, expected_scores(model, ranking))
    for name, out in outs.items():
        assert out.docid.tolist() == first.docid.tolist(), name
        np.testing.assert_array_equal(out.score, first.score, err_msg=name)


def test_index_text_is_title_and_body(model: Path, index) -> None:
    """What the re-ranker reads from an index is what the first stage indexed: title and body."""
    ranking = Ranking(["q0"], ["d0"], [1.0], queries=toy_queries())
    text = f"{toy_docs()[0].title} {toy_docs()[0].text}"
    want = reference_scores(model, [(toy_queries().text[0], text)])[0]
    assert CrossEncoder(model, docs=index)(ranking).score[0] == pytest.approx(want, abs=TOL)


def test_rescore_sees_rows_grouped_by_query_in_first_stage_order() -> None:
    """The subclass contract: one score per row, rows grouped by qid and in first-stage rank order."""
    seen: list[tuple[list[str], list[str], list[str]]] = []

    class Length(Reranker):
        def rescore(self, ranking, queries, texts):
            seen.append((ranking.docid.tolist(), list(queries), list(texts)))
            return np.array([len(t) for t in texts], dtype=float)

    ranking = Ranking(
        ["a", "b", "a", "b", "a"],
        ["x", "y", "zz", "x", "y"],
        [1, 5, 3, 4, 2],
        queries=Queries(["a", "b"], ["qa", "qb"]),
    )
    texts = {"x": "1", "y": "333", "zz": "22"}
    out = Length(texts)(ranking)
    assert seen == [(["zz", "y", "x", "y", "x"], ["qa", "qa", "qa", "qb", "qb"], ["22", "333", "1", "333", "1"])]
    assert out.to_dict() == {"a": {"y": 3.0, "zz": 2.0, "x": 1.0}, "b": {"y": 3.0, "x": 1.0}}
    assert out.docid.tolist() == ["y", "zz", "x", "y", "x"]

    class Short(Reranker):
        def rescore(self, ranking, queries, texts):
            return np.zeros(len(texts) - 1)

    with pytest.raises(AssertionError, match="returned 4 scores for 5 rows"):
        Short(texts)(ranking)


# ------------------------------------------------------------------------------------------- the cache
def test_second_call_does_not_call_the_model(model: Path, monkeypatch) -> None:
    ce = CrossEncoder(model, docs=TEXTS)
    counter = Counting(monkeypatch, ce)
    ranking = toy_ranking(depth=3).for_qids(["q0", "q1"])
    first = ce(ranking)
    assert counter.pairs == 6
    second = ce(ranking)
    assert len(counter.calls) == 1
    assert second == first and np.array_equal(second.score, first.score)
    # a deeper cut-off of the same first stage scores only the new pairs
    deeper = ce(toy_ranking(depth=5).for_qids(["q0", "q1"]))
    assert counter.calls[1] == [
        (toy_queries().text[0], TEXTS["d3"]),
        (toy_queries().text[0], TEXTS["d4"]),
        (toy_queries().text[1], TEXTS["d4"]),
        (toy_queries().text[1], TEXTS["d5"]),
    ]
    assert_reranked(deeper, expected_scores(model, toy_ranking(depth=5).for_qids(["q0", "q1"])))
    ce.clear_cache()
    ce(ranking)
    assert counter.pairs == 6 + 4 + 6


def test_repeated_pairs_in_one_call_are_scored_once(model: Path, monkeypatch) -> None:
    ce = CrossEncoder(model, docs=TEXTS)
    counter = Counting(monkeypatch, ce)
    same = "where does the owl live"
    queries = Queries(["a", "b", "c"], [same, same, "where does the fox live"])
    ranking = Ranking(["a", "a", "b", "b", "c", "c"], ["d6", "d7", "d6", "d7", "d6", "d7"], [2, 1] * 3, queries=queries)
    out = ce(ranking)
    assert len(counter.calls) == 1 and counter.pairs == 4  # (owl, d6), (owl, d7), (fox, d6), (fox, d7)
    scores = out.to_dict()
    assert scores["a"] == scores["b"] and scores["a"] != scores["c"]
    assert_reranked(out, expected_scores(model, ranking))


def test_cache_false_scores_every_time(model: Path, monkeypatch) -> None:
    ce = CrossEncoder(model, docs=TEXTS, cache=False)
    counter = Counting(monkeypatch, ce)
    ranking = toy_ranking(depth=2).for_qids(["q0"])
    assert ce(ranking) == ce(ranking)
    assert [len(c) for c in counter.calls] == [2, 2]


def test_cache_key_names_backend_and_lengths(model: Path, tmp_path: Path) -> None:
    onnx_dir = CrossEncoder(model).export_onnx(tmp_path / "onnx")
    keys = [
        CrossEncoder(model).cache_key,
        CrossEncoder(model, max_length=64, query_max_length=16).cache_key,
        CrossEncoder(model, query_max_length=16).cache_key,
        CrossEncoder(onnx_dir, backend="onnx").cache_key,
        CrossEncoder(onnx_dir, backend="onnx", quantized=False).cache_key,
    ]
    assert len(set(keys)) == len(keys)
    assert CrossEncoder(model).cache_key == CrossEncoder(model).cache_key


def test_changing_max_length_does_not_reuse_cached_scores(model: Path, monkeypatch) -> None:
    long_doc = " ".join(["The owl hunts mice in the dark forest at night."] * 6)
    texts = {"long": long_doc, "short": "An owl."}
    queries = Queries(["q"], ["where does the owl live"])
    ranking = Ranking(["q", "q"], ["long", "short"], [2.0, 1.0], queries=queries)
    ce = CrossEncoder(model, docs=texts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fits in 128 tokens
        ce(ranking)
    ce.max_length, ce.query_max_length = 24, 8
    counter = Counting(monkeypatch, ce)
    with pytest.warns(UserWarning, match="max_length=24"):
        cut = ce(ranking)
    assert counter.pairs == 2
    fresh = CrossEncoder(model, docs=texts, max_length=24, query_max_length=8, cache=False)
    with pytest.warns(UserWarning, match="max_length=24"):
        assert np.array_equal(cut.score, fresh(ranking).score)


# ------------------------------------------------------------------------------------------- bad input
def test_queries_instead_of_a_ranking(model: Path) -> None:
    with pytest.raises(TypeError, match="re-ranks a ranking") as err:
        CrossEncoder(model, docs=TEXTS)(toy_queries())
    assert "bm25" in str(err.value) and "% 100 >>" in str(err.value)


def test_docids_missing_from_the_store_are_named(model: Path, index) -> None:
    queries = toy_queries()
    docids = ["d0", "zz0", "zz1", "d1", "zz2", "zz3", "zz4", "zz5", "zz6"]
    ranking = Ranking(["q0"] * len(docids), docids, np.arange(len(docids), 0, -1), queries=queries)
    ce = CrossEncoder(model, docs=index)
    with pytest.raises(MissingDocumentsError) as err:
        ce(ranking)
    message = str(err.value)
    assert isinstance(err.value, KeyError) and isinstance(err.value, RankstackError)
    assert message.startswith("7 docids")  # not quoted like a KeyError
    assert all(f"'zz{i}'" in message for i in range(5)) and "zz5" not in message
    assert "missing='keep'" in message and str(index.path) in message


def test_missing_keep_puts_missing_documents_below_in_first_stage_order(model: Path) -> None:
    queries = Queries(["q0", "q1"], ["where does the cat live", "where does the dog live"])
    # first-stage order of q0: d0, zzB, d1, zzA, d2 (zzB before zzA, against docid order)
    ranking = Ranking(
        ["q0"] * 5 + ["q1"] * 3,
        ["d0", "zzB", "d1", "zzA", "d2", "zzD", "zzC", "zzE"],
        [5, 4, 3, 2, 1, 3, 2, 1],
        queries=queries,
    )
    out = CrossEncoder(model, docs=TEXTS, missing="keep")(ranking)
    present = Ranking(["q0"] * 3, ["d0", "d1", "d2"], [3, 2, 1], queries=queries)
    expected = expected_scores(model, present)
    by_model = sorted(["d0", "d1", "d2"], key=lambda d: -expected[("q0", d)])
    assert out.for_qids(["q0"]).docid.tolist() == [*by_model, "zzB", "zzA"]
    assert out.for_qids(["q1"]).docid.tolist() == ["zzD", "zzC", "zzE"]  # nothing to score: first-stage order
    q0 = out.for_qids(["q0"])
    np.testing.assert_allclose(q0.score[:3], [expected[("q0", d)] for d in by_model], rtol=0, atol=TOL)
    assert q0.score[3] < q0.score[2] and q0.score[4] < q0.score[3]
    assert out.qids() == ["q0", "q1"] and out.queries is queries


def test_missing_must_be_error_or_keep(model: Path) -> None:
    with pytest.raises(ValueError, match="missing must be 'error' or 'keep'"):
        CrossEncoder(model, docs=TEXTS, missing="drop")


def test_empty_and_very_long_texts_are_scored(model: Path) -> None:
    """Empty texts score like any other; a query far beyond max_length is cut, not an error."""
    long_query = " ".join(["where does the hungry grey wolf of the northern forest live"] * 40)
    long_doc = " ".join(["The wolf lives in the forest and hunts deer in winter."] * 300)
    texts = {"empty": "", "d0": TEXTS["d0"], "long": long_doc}
    queries = Queries(["q", "empty", "long"], ["where does the cat live", "", long_query])
    ranking = Ranking(
        ["q", "q", "empty", "empty", "long", "long"],
        ["empty", "d0", "empty", "d0", "long", "d0"],
        [2, 1] * 3,
        queries=queries,
    )
    ce = CrossEncoder(model, docs=texts, query_max_length=16)
    with pytest.warns(UserWarning, match="max_length=128"):
        out = ce(ranking)
    assert np.isfinite(out.score).all() and len(out) == 6
    short = ranking.for_qids(["q", "empty"])
    got = {(q, d): s for q, d, s in zip(out.qid.tolist(), out.docid.tolist(), out.score.tolist(), strict=True)}
    for key, want in expected_scores(model, short, texts).items():
        assert got[key] == pytest.approx(want, abs=TOL), key
    # the long pair: query cut to 16 tokens, document to what is left of 128, built by hand
    tok = ce.tokenizer
    q_ids = tok(long_query, add_special_tokens=False)["input_ids"][:16]
    d_ids = tok(long_doc, add_special_tokens=False)["input_ids"][: 128 - 3 - 16]
    ids = torch.tensor([[tok.cls_token_id, *q_ids, tok.sep_token_id, *d_ids, tok.sep_token_id]])
    types = torch.tensor([[0] * (len(q_ids) + 2) + [1] * (len(d_ids) + 1)])
    net = transformers.AutoModelForSequenceClassification.from_pretrained(model).eval()
    with torch.no_grad():
        want = float(net(input_ids=ids, token_type_ids=types, attention_mask=torch.ones_like(ids)).logits[0, 0])
    assert got[("long", "long")] == pytest.approx(want, abs=TOL)


def test_empty_ranking_returns_empty_without_the_model(model: Path, monkeypatch) -> None:
    ce = CrossEncoder(model, docs=TEXTS)
    counter = Counting(monkeypatch, ce)
    empty = Ranking.empty(queries=toy_queries())
    out = ce(empty)
    assert isinstance(out, Ranking) and len(out) == 0 and counter.calls == []
    # and through a pipeline whose first stage finds nothing
    nothing = Fixed("nothing", [])
    assert len((nothing % 10 >> ce)(toy_queries())) == 0


def test_ranking_without_query_texts(model: Path) -> None:
    ranking = Ranking(["q0"], ["d0"], [1.0])
    with pytest.raises(ValueError, match="query texts"):
        CrossEncoder(model, docs=TEXTS)(ranking)


def test_ranking_with_some_query_texts_missing_names_them(model: Path) -> None:
    ranking = Ranking(["q0", "q1", "q2"], ["d0", "d1", "d2"], [1.0] * 3, queries=Queries(["q0"], ["cat"]))
    with pytest.raises(ValueError, match="no query text for 2 of its qids") as err:
        CrossEncoder(model, docs=TEXTS)(ranking)
    assert "'q1'" in str(err.value) and "'q2'" in str(err.value)


def test_reranker_without_documents(model: Path) -> None:
    with pytest.raises(ValueError, match="docs=index"):
        CrossEncoder(model)(toy_ranking(depth=1))
    with pytest.raises(TypeError, match="cannot read document text from int"):
        CrossEncoder(model, docs=42)


def test_index_without_document_store_says_so(model: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bare = build_inverted_index(toy_docs(), tmp_path / "bare", store_docs=False, show_progress=False)
    with pytest.raises(RankstackError, match="store_docs=False"):
        CrossEncoder(model, docs=bare)(toy_ranking(depth=1))
