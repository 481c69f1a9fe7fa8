"""Corpus readers: jsonl(.gz), tsv, Parquet; format detection; streaming; duplicates; errors with line numbers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rankstack.data import FileCorpus, check_duplicates, detect_format, iter_with_lines, read_corpus
from rankstack.errors import InputFormatError
from rankstack.types import Corpus, Document


def _jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# --------------------------------------------------------------------------------------------- jsonl
@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
def test_jsonl_beir_fields_and_extras(tmp_path: Path, name: str, write: Callable[[Path, str], Path]) -> None:
    path = write(
        tmp_path / name,
        _jsonl(
            {"_id": "d1", "title": "T1", "text": "one", "metadata": {"url": "u"}},
            {"_id": 2, "title": "", "text": "two"},
        ),
    )
    docs = list(read_corpus(path))
    assert docs == [
        Document("d1", "one", "T1", {"metadata": {"url": "u"}}),
        Document("2", "two", None, {}),
    ]


def test_jsonl_accepts_docid_id_and_contents(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    path = write(tmp_path / "c.jsonl", _jsonl({"docid": "a", "contents": "x y"}, {"id": "b", "contents": "z"}))
    assert [(d.docid, d.text) for d in read_corpus(path)] == [("a", "x y"), ("b", "z")]


def test_jsonl_skips_blank_lines_and_handles_crlf(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "x"}\r\n\r\n{"_id": "b", "text": "y"}\r\n')
    assert [d.docid for d in read_corpus(path)] == ["a", "b"]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('["a", "b"]', "expected a JSON object"),
        ('{"title": "t", "text": "x"}', "no id field"),
        ('{"_id": "", "text": "x"}', "is empty"),
        ('{"_id": [1], "text": "x"}', "string or integer"),
        ('{"_id": "z", "text": 5}', "must be a string"),
    ],
)
def test_jsonl_errors_name_file_and_line(
    tmp_path: Path, bad_line: str, message: str, write: Callable[[Path, str], Path]
) -> None:
    path = write(tmp_path / "c.jsonl", '{"_id": "a", "text": "x"}\n\n' + bad_line + "\n")
    with pytest.raises(InputFormatError, match=message) as info:
        list(read_corpus(path))
    assert info.value.line == 3
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}:3: ")


def test_invalid_utf8_reported_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": "\xff"}\n')
    with pytest.raises(InputFormatError, match="UTF-8") as info:
        list(read_corpus(path))
    assert info.value.line == 2


def test_truncated_gzip_is_an_input_error(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    full = write(tmp_path / "full.jsonl.gz", _jsonl(*({"_id": str(i), "text": "word " * 50} for i in range(200))))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputFormatError, match="truncated or corrupt"):
        list(read_corpus(cut))


# --------------------------------------------------------------------------------------------- tsv
def test_tsv_two_and_three_columns(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    two = write(tmp_path / "collection.tsv", "0\tThe presence of communication\n1\t\n")
    three = write(tmp_path / "c3.tsv", "a\tTitle A\tbody a\nb\t\tbody b\n")
    assert list(read_corpus(two)) == [Document("0", "The presence of communication"), Document("1", "")]
    assert list(read_corpus(three)) == [Document("a", "body a", "Title A"), Document("b", "body b", None)]


def test_tsv_header_names_columns_in_any_order(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    # DPR's psgs_w100.tsv order: id, text, title
    path = write(tmp_path / "psgs.tsv", "id\ttext\ttitle\n1\tAaron is a prophet\tAaron\n")
    assert list(read_corpus(path)) == [Document("1", "Aaron is a prophet", "Aaron")]


def test_tsv_gz(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    path = write(tmp_path / "c.tsv.gz", "x\thello\n")
    assert [d.text for d in read_corpus(path)] == ["hello"]


def test_tsv_wrong_field_count_names_line(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    path = write(tmp_path / "c.tsv", "a\tone\nb\ttwo\nc\tthree\textra\n")
    with pytest.raises(InputFormatError, match="expected 2 tab-separated fields") as info:
        list(read_corpus(path))
    assert info.value.line == 3


def test_tsv_bad_first_line_and_empty_docid(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    with pytest.raises(InputFormatError, match="needs 2 fields") as info:
        list(read_corpus(write(tmp_path / "a.tsv", "a\tb\tc\td\n")))
    assert info.value.line == 1
    with pytest.raises(InputFormatError, match="empty docid") as info:
        list(read_corpus(write(tmp_path / "b.tsv", "a\tx\n\t y\n")))
    assert info.value.line == 2


# --------------------------------------------------------------------------------------------- parquet
def test_parquet_in_batches_with_extra_columns(tmp_path: Path) -> None:
    n = 20_000  # more than one read batch
    table = pa.table(
        {
            "_id": [f"d{i}" for i in range(n)],
            "title": [None if i % 2 else f"t{i}" for i in range(n)],
            "text": [f"text {i}" for i in range(n)],
            "url": [f"u{i}" for i in range(n)],
        }
    )
    path = tmp_path / "corpus.parquet"
    pq.write_table(table, path, row_group_size=5000)
    docs = list(read_corpus(path))
    assert len(docs) == n
    assert docs[0] == Document("d0", "text 0", "t0", {"url": "u0"})
    assert docs[-1] == Document(f"d{n - 1}", f"text {n - 1}", None, {"url": f"u{n - 1}"})


def test_parquet_docid_column_and_errors(tmp_path: Path) -> None:
    ok = tmp_path / "a.parquet"
    pq.write_table(pa.table({"docid": ["x"], "contents": ["y"]}), ok)
    assert list(read_corpus(ok)) == [Document("x", "y")]

    no_id = tmp_path / "b.parquet"
    pq.write_table(pa.table({"name": ["x"], "text": ["y"]}), no_id)
    with pytest.raises(InputFormatError, match="no id column"):
        list(read_corpus(no_id))

    null_id = tmp_path / "c.parquet"
    pq.write_table(pa.table({"_id": ["a", None], "text": ["y", "z"]}), null_id)
    with pytest.raises(InputFormatError, match="row 2") as info:
        list(read_corpus(null_id))
    assert info.value.line == 2


# --------------------------------------------------------------------------------------------- detection
def test_format_from_suffix_sniffing_and_override(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    assert detect_format(write(tmp_path / "a.jsonl.gz", "{}\n")) == "jsonl"
    assert detect_format(write(tmp_path / "collection.tsv", "1\tx\n")) == "tsv"
    assert detect_format(write(tmp_path / "fb396001", "<DOC>\n<DOCNO>x</DOCNO>\n</DOC>\n")) == "trec"
    assert (
        detect_format(write(tmp_path / "topics.301-350", "\n<top>\n<num> Number: 301\n</top>\n"), "queries") == "trec"
    )
    assert detect_format(write(tmp_path / "docs.txt", '{"_id": "a"}\n')) == "jsonl"
    with pytest.raises(InputFormatError, match="pass format="):
        detect_format(write(tmp_path / "mystery.dat", "hello world\n"))
    # an explicit format wins over the name
    odd = write(tmp_path / "corpus.data", '{"_id": "a", "text": "x"}\n')
    assert [d.docid for d in read_corpus(odd, format="jsonl")] == ["a"]


def test_missing_file_is_reported_at_open(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_corpus(tmp_path / "nope.jsonl")


def test_directory_and_list_of_files_mixed_formats(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    write(tmp_path / "docs" / "a.jsonl", _jsonl({"_id": "1", "text": "x"}))
    write(tmp_path / "docs" / "b.tsv", "2\ty\n")
    write(tmp_path / "docs" / ".hidden.jsonl", "garbage")
    assert [d.docid for d in read_corpus(tmp_path / "docs")] == ["1", "2"]
    assert [d.docid for d in read_corpus([tmp_path / "docs" / "b.tsv", tmp_path / "docs" / "a.jsonl"])] == ["2", "1"]


# --------------------------------------------------------------------------------------------- streaming
def test_corpus_streams_and_is_reiterable(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    lines = _jsonl(*({"_id": f"d{i}", "text": f"t{i}"} for i in range(1000)))
    path = write(tmp_path / "c.jsonl", lines + "{broken\n")
    corpus = read_corpus(path)
    assert isinstance(corpus, Corpus)
    # holds no documents: only paths, formats, counters
    assert not any(isinstance(v, list | dict) for v in vars(corpus).values())
    # documents arrive before the broken last line is ever read
    it = iter(corpus)
    assert next(it).docid == "d0"
    assert next(it).docid == "d1"

    good = write(tmp_path / "good.jsonl", lines)
    corpus = read_corpus(good)
    first, second = list(corpus), list(corpus)
    assert first == second and len(first) == 1000
    assert len(corpus) == 1000
    assert repr(corpus) == "FileCorpus(good, 1 file(s), 1000 documents)"


def test_empty_documents_are_yielded_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, write: Callable[[Path, str], Path]
) -> None:
    path = write(
        tmp_path / "c.jsonl",
        _jsonl(
            {"_id": "a", "text": "x"},
            {"_id": "b", "text": ""},
            {"_id": "c", "title": "only title", "text": None},
            {"_id": "d", "text": "   "},
        ),
    )
    corpus = read_corpus(path, name="tiny")
    assert corpus.empty_documents is None  # unknown until a full pass
    with caplog.at_level("WARNING", logger="rankstack.data.readers"):
        docs = list(corpus)
    assert [d.docid for d in docs] == ["a", "b", "c", "d"]
    assert docs[1].text == "" and docs[2].text == ""
    assert corpus.empty_documents == 2
    assert "2 of 4 documents are empty (e.g. b, d)" in caplog.text


# --------------------------------------------------------------------------------------------- duplicates
def test_check_duplicates_names_every_location(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    a = write(tmp_path / "a.jsonl", _jsonl({"_id": "x", "text": "1"}, {"_id": "y", "text": "2"}))
    b = write(tmp_path / "b.tsv", "z\t3\nx\t4\n\ny\t5\n")
    assert check_duplicates(read_corpus([a, b])) == {
        "x": [f"{a}:1", f"{b}:2"],
        "y": [f"{a}:2", f"{b}:4"],
    }
    assert check_duplicates(read_corpus(a)) == {}
    mem = Corpus.from_documents([Document("p", ""), Document("q", ""), Document("p", "")])
    assert check_duplicates(mem) == {"p": ["#1", "#3"]}


def test_iter_with_lines_for_files_and_memory(tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    path = write(tmp_path / "c.jsonl", "\n" + _jsonl({"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}))
    assert [(d.docid, p, n) for d, p, n in iter_with_lines(read_corpus(path))] == [
        ("a", str(path), 2),
        ("b", str(path), 3),
    ]
    mem = Corpus.from_documents([Document("a", "x")])
    assert [(d.docid, p, n) for d, p, n in iter_with_lines(mem)] == [("a", None, 1)]
    assert isinstance(read_corpus(path), FileCorpus)
