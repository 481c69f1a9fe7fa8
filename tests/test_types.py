import numpy as np
import pytest

from rankstack import InputFormatError, Qrels, Queries, Ranking


def test_ranking_sorts_by_qid_first_seen_then_score_then_docid():
    r = Ranking(["2", "1", "2", "1", "2"], ["a", "b", "c", "d", "b"], [1.0, 3.0, 2.0, 3.0, 2.0])
    assert r.qid.tolist() == ["2", "2", "2", "1", "1"]
    assert r.docid.tolist() == ["b", "c", "a", "b", "d"]  # tie 2.0: b before c
    assert r.rank.tolist() == [1, 2, 3, 1, 2]


def test_cutoff_groups_and_pandas_roundtrip():
    r = Ranking(["q"] * 5 + ["p"] * 2, list("abcdefg"), [5, 4, 3, 2, 1, 9, 8])
    top = r.cutoff(2)
    assert top.docid.tolist() == ["a", "b", "f", "g"]
    assert dict((q, (s.start, s.stop)) for q, s in r.groups()) == {"q": (0, 5), "p": (5, 7)}
    df = r.to_pandas()
    assert list(df.columns) == ["qid", "docid", "score", "rank"]
    assert Ranking.from_pandas(df) == r
    assert r.to_arrow().num_rows == 7


def test_trec_run_roundtrip_and_errors(tmp_path):
    r = Ranking(["1", "1", "2"], ["d1", "d2", "d3"], [2.5, 1.5, 0.5])
    p = tmp_path / "run.txt"
    r.write_trec(p, tag="t")
    assert p.read_text().splitlines()[0] == "1 Q0 d1 1 2.500000 t"
    assert Ranking.read_trec(p) == r
    p.write_text("1 Q0 d1 1 2.5 t\n1 Q0 d2 2\n")
    with pytest.raises(InputFormatError, match=r"run.txt:2: .*6 fields"):
        Ranking.read_trec(p)
    p.write_text("1 Q0 d1 1 high t\n")
    with pytest.raises(InputFormatError, match=r"run.txt:1: score 'high'"):
        Ranking.read_trec(p)


def test_qrels_read_trec_and_beir(tmp_path):
    trec = tmp_path / "q.txt"
    trec.write_text("1 0 d1 2\n1 0 d2 0\n2 0 d3 1\n")
    q = Qrels.read(trec)
    assert q.to_dict() == {"1": {"d1": 2, "d2": 0}, "2": {"d3": 1}}
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\n1\td1\t2\n")
    assert Qrels.read(beir).to_dict() == {"1": {"d1": 2}}
    beir.write_text("query-id\tcorpus-id\tscore\n1\td1\n")
    with pytest.raises(InputFormatError, match=r"test.tsv:2: a qrels line"):
        Qrels.read(beir)
    beir.write_text("1 d1 yes\n")
    with pytest.raises(InputFormatError, match=r"test.tsv:1: relevance 'yes'"):
        Qrels.read(beir)


def test_qrels_subset_keeps_the_judgments_of_the_given_queries_in_order():
    q = Qrels(["2", "1", "2", "3"], ["d1", "d2", "d3", "d4"], [1, 0, 2, 1])
    sub = q.subset(["2", "3", "unknown"])
    assert list(zip(sub.qid.tolist(), sub.docid.tolist(), sub.relevance.tolist(), strict=True)) == [
        ("2", "d1", 1), ("2", "d3", 2), ("3", "d4", 1)]  # fmt: skip
    assert len(q.subset([])) == 0 and len(q.subset(iter(["1"]))) == 1


def test_queries_coerce_and_subset():
    q = Queries.coerce({"a": "x y", "b": "z"})
    assert list(q) == [("a", "x y"), ("b", "z")]
    assert Queries.coerce("hello").to_dict() == {"1": "hello"}
    assert Queries.coerce(["u", "v"]).qid.tolist() == ["1", "2"]
    assert Queries.coerce(q.to_pandas()) == q
    assert q.subset(["b"]).to_dict() == {"b": "z"}


def test_ids_stay_strings():
    r = Ranking([1, 1], [7, 8], [1.0, 2.0])
    assert r.qid.dtype == object and r.docid.tolist() == ["8", "7"]
    assert np.issubdtype(r.rank.dtype, np.integer)
