"""Query readers (BEIR jsonl, tsv) and qrels delegation: contents, warnings, errors with line numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rankstack.data import read_qrels, read_queries
from rankstack.errors import InputFormatError

Write = Callable[[Path, str], Path]


def test_beir_queries_jsonl(tmp_path: Path, write: Write) -> None:
    path = write(
        tmp_path / "queries.jsonl",
        '{"_id": "1", "text": "what is bm25", "metadata": {}}\n{"_id": 2, "text": "dense"}\n',
    )
    assert read_queries(path).to_dict() == {"1": "what is bm25", "2": "dense"}


def test_queries_jsonl_alternative_keys(tmp_path: Path, write: Write) -> None:
    path = write(tmp_path / "q.jsonl", '{"qid": "a", "query": "x"}\n')
    assert read_queries(path).to_dict() == {"a": "x"}


def test_tsv_queries_with_and_without_header(tmp_path: Path, write: Write) -> None:
    plain = write(tmp_path / "queries.dev.tsv", "1048585\twhat is paula deen's brother\n2\tx\n")
    header = write(tmp_path / "q.tsv", "qid\tquery\n7\ty\n")
    assert read_queries(plain).to_dict() == {"1048585": "what is paula deen's brother", "2": "x"}
    assert read_queries(header).to_dict() == {"7": "y"}


def test_topics_txt_in_tsv_form_is_sniffed(tmp_path: Path, write: Write) -> None:
    # Anserini's topics.dl19-passage.txt is tsv despite its suffix
    path = write(tmp_path / "topics.dl19-passage.txt", "19335\tanthropological definition of environment\n")
    assert read_queries(path).to_dict() == {"19335": "anthropological definition of environment"}


def test_queries_keep_file_order(tmp_path: Path, write: Write) -> None:
    path = write(tmp_path / "q.tsv", "b\t1\na\t2\nc\t3\n")
    assert list(read_queries(path).qid) == ["b", "a", "c"]


def test_empty_queries_warn_with_qids(tmp_path: Path, write: Write) -> None:
    path = write(
        tmp_path / "queries.jsonl",
        '{"_id": "1", "text": "ok"}\n{"_id": "2", "text": " "}\n{"_id": "3", "text": null}\n',
    )
    with pytest.warns(UserWarning, match=r"2 empty queries \(qids 2, 3\)"):
        queries = read_queries(path)
    assert queries.to_dict() == {"1": "ok", "2": "", "3": ""}


@pytest.mark.parametrize(
    ("name", "text", "line", "message"),
    [
        ("q.jsonl", '{"_id": "1", "text": "a"}\n{"_id": "2"}\n', 2, "no text field"),
        ("q.jsonl", '{"_id": "1", "text": "a"}\n{"text": "b"}\n', 2, "no id field"),
        ("q.jsonl", '{"_id": "1", "text": "a"}\n{oops\n', 2, "invalid JSON"),
        (
            "q.jsonl",
            '{"_id": "1", "text": "a"}\n\n{"_id": "1", "text": "b"}\n',
            3,
            "duplicate qid '1' \\(first on line 1\\)",
        ),
        ("q.tsv", "1\ta\n2\tb\tc\n", 2, "needs 2 fields"),
        ("q.tsv", "1\ta\n\tb\n", 2, "empty qid"),
    ],
)
def test_query_errors_name_line(tmp_path: Path, write: Write, name: str, text: str, line: int, message: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(InputFormatError, match=message) as info:
        read_queries(path)
    assert info.value.line == line and info.value.path == str(path)


def test_qrels_trec_and_beir(tmp_path: Path, write: Write) -> None:
    trec = write(tmp_path / "qrels.txt", "301 0 FBIS3-1 1\n301 0 FBIS3-2 0\n")
    beir = write(tmp_path / "test.tsv", "query-id\tcorpus-id\tscore\n1\td1\t2\n")
    assert read_qrels(trec).to_dict() == {"301": {"FBIS3-1": 1, "FBIS3-2": 0}}
    assert read_qrels(beir).to_dict() == {"1": {"d1": 2}}
    with pytest.raises(InputFormatError) as info:
        read_qrels(write(tmp_path / "bad.txt", "1 0 d 1\n1 d\n"))
    assert info.value.line == 2
    with pytest.raises(FileNotFoundError):
        read_qrels(tmp_path / "missing.tsv")
