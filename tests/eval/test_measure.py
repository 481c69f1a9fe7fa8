from __future__ import annotations

import pytest

from rankstack.eval import Measure, UnknownMeasureError, parse_measure


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("AP", "AP"),
        ("AP@1000", "AP@1000"),
        ("map", "AP"),
        ("nDCG@10", "nDCG@10"),
        ("ndcg", "nDCG"),
        ("P(rel=2)@10", "P(rel=2)@10"),
        ("P@20", "P@20"),
        ("RR@10", "RR@10"),
        ("MRR@10", "RR@10"),
        ("R@100", "R@100"),
        ("recall@100", "R@100"),
        ("Judged@10", "Judged@10"),
        ("Success@10", "Success@10"),
        ("bpref", "Bpref"),
        ("Bpref(rel=2)", "Bpref(rel=2)"),
    ],
)
def test_names_parse_to_ir_measures_spelling(text: str, canonical: str) -> None:
    measure = parse_measure(text)
    assert repr(measure) == canonical
    assert parse_measure(repr(measure)) == measure


def test_ir_measures_objects_parse() -> None:
    ir_measures = pytest.importorskip("ir_measures")
    assert parse_measure(ir_measures.P(rel=2) @ 10) == Measure("P", 10, 2)


@pytest.mark.parametrize("bad", ["MAPX", "P", "Bpref@10", "nDCG(rel=2)@10", "P@0", "P(foo=1)@5", "AP(rel=0)", "P@x"])
def test_bad_names_raise_a_clear_error(bad: str) -> None:
    with pytest.raises(UnknownMeasureError):
        parse_measure(bad)


def test_unknown_name_lists_supported_measures() -> None:
    with pytest.raises(UnknownMeasureError, match=r"supported measures: .*nDCG.*Bpref"):
        parse_measure("ERR@20")
