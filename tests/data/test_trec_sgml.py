"""TREC SGML documents and topics: tiny fixtures for every rule, plus the real Vaswani/NPL files."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from rankstack.data import iter_trec_documents, iter_trec_topics, read_corpus, read_queries
from rankstack.errors import InputFormatError
from rankstack.types import Document

Write = Callable[[Path, str], Path]

NEWSWIRE = """\
<DOC>
<DOCNO> FT911-1 </DOCNO>
<PROFILE>_AN-BEOA7AAIFT</PROFILE>
<DATE>910514
</DATE>
<HEADLINE>
FT  14 MAY 91 / Bank &amp; markets
</HEADLINE>
<TEXT>
<P>Shares rose   sharply.</P>
<P>Bonds fell.</P>
</TEXT>
</DOC>
<DOC>
<DOCNO>LA010189-0001</DOCNO>
<TEXT>first part</TEXT>
<GRAPHIC>ignored as text</GRAPHIC>
<TEXT>second part</TEXT>
</DOC>
<DOC><DOCNO>ONE-LINE</DOCNO><TEXT>all on one line</TEXT></DOC>
"""


@pytest.mark.parametrize("name", ["fb396001", "docs.trec.gz"])
def test_documents_title_text_fields(tmp_path: Path, write: Write, name: str) -> None:
    path = write(tmp_path / name, NEWSWIRE)
    docs = list(read_corpus(path))
    assert docs[0] == Document(
        "FT911-1",
        "Shares rose sharply. Bonds fell.",
        "FT 14 MAY 91 / Bank & markets",
        {"profile": "_AN-BEOA7AAIFT", "date": "910514"},
    )
    assert docs[1].text == "first part second part" and docs[1].title is None
    assert docs[1].fields == {"graphic": "ignored as text"}
    assert docs[2] == Document("ONE-LINE", "all on one line")
    assert [line for line, _ in iter_trec_documents(path)] == [1, 14, 20]


def test_documents_without_text_tag_and_with_id_attribute(tmp_path: Path, write: Write) -> None:
    path = write(
        tmp_path / "d.trec",
        '<DOC>\n<DOCNO>7</DOCNO>\nplain  body\nlines\n</DOC>\n<DOC id="APW1" type="story">\n<TEXT>x</TEXT>\n</DOC>\n',
    )
    assert list(read_corpus(path)) == [Document("7", "plain body lines"), Document("APW1", "x")]


def test_unclosed_text_runs_to_end_of_document(tmp_path: Path, write: Write) -> None:
    path = write(tmp_path / "d.trec", "<DOC>\n<DOCNO>1</DOCNO>\n<TEXT>\nno close\n</DOC>\n")
    assert [d.text for d in read_corpus(path)] == ["no close"]


def test_multiple_trec_files(tmp_path: Path, write: Write) -> None:
    a = write(tmp_path / "disk" / "a.gz", "<DOC><DOCNO>a1</DOCNO>x</DOC>\n")
    b = write(tmp_path / "disk" / "b", "<DOC><DOCNO>b1</DOCNO>y</DOC>\n")
    assert [d.docid for d in read_corpus([a, b], format="trec")] == ["a1", "b1"]
    assert [d.docid for d in read_corpus(tmp_path / "disk")] == ["a1", "b1"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("<DOC>\n<DOCNO>1</DOCNO>\n</DOC>\n<DOC>\n<TEXT>x</TEXT>\n</DOC>\n", 4, "no <DOCNO>"),
        ("<DOC>\n<DOCNO>1</DOCNO>\n<DOC>\n</DOC>\n", 3, "opened before the <DOC> of line 1"),
        ("<DOC>\n<DOCNO>1</DOCNO>\n</DOC>\n\n<DOC>\n<DOCNO>2</DOCNO>\nx\n", 5, "never closed"),
        ("<DOC>\n<DOCNO>1</DOCNO>\n</DOC>\nstray text\n", 4, "outside a <DOC>"),
        ("<DOC>\n<DOCNO>1</DOCNO><DOCNO>2</DOCNO>\n</DOC>\n", 1, "2 <DOCNO>"),
    ],
)
def test_document_errors_name_line(tmp_path: Path, write: Write, text: str, line: int, message: str) -> None:
    path = write(tmp_path / "bad.trec", text)
    with pytest.raises(InputFormatError, match=message) as info:
        list(read_corpus(path))
    assert info.value.line == line and info.value.path == str(path)


# --------------------------------------------------------------------------------------------- topics
# As in the real TREC ad hoc topic files: no closing tags for num/title/desc/narr, labels inside fields,
# trailing blanks (written \x20 here so editors keep them).
TOPICS = """\
<top>
<num> Number: 301
<title> International Organized Crime

<desc> Description:
Identify organizations that participate in international criminal
activity.

<narr> Narrative:
A relevant document must as a minimum identify the organization.

</top>


<top>
<num> Number: 302\x20
<title> Topic:  Poliomyelitis and Post-Polio\x20

<desc> Description:\x20
Is the disease of Poliomyelitis (polio) under control?

</top>
"""


def test_topics_fields_and_labels(tmp_path: Path, write: Write) -> None:
    path = write(tmp_path / "topics.301-350", TOPICS)
    topics = list(iter_trec_topics(path))
    assert [line for line, _ in topics] == [1, 15]
    assert topics[0][1] == {
        "num": "301",
        "title": "International Organized Crime",
        "desc": "Identify organizations that participate in international criminal activity.",
        "narr": "A relevant document must as a minimum identify the organization.",
    }
    assert read_queries(path).to_dict() == {
        "301": "International Organized Crime",
        "302": "Poliomyelitis and Post-Polio",
    }
    assert read_queries(path, field="desc").to_dict()["302"] == "Is the disease of Poliomyelitis (polio) under control?"
    both = read_queries(path, field=("title", "desc")).to_dict()
    assert both["301"].startswith("International Organized Crime Identify organizations")


def test_topics_with_closed_tags_on_one_line(tmp_path: Path, write: Write) -> None:
    path = write(
        tmp_path / "q.trec",
        "<top>\n<num>1</num><title>\nMEASUREMENT OF X\n</title>\n</top>\n<top><num>2</num><title>Y</title></top>\n",
    )
    assert read_queries(path).to_dict() == {"1": "MEASUREMENT OF X", "2": "Y"}


def test_topic_missing_field_gives_empty_query_with_warning(tmp_path: Path, write: Write) -> None:
    path = write(tmp_path / "q.trec", TOPICS)
    with pytest.warns(UserWarning, match=r"1 empty queries \(qids 302\)"):
        queries = read_queries(path, field="narr")
    assert queries.to_dict()["302"] == ""
    with pytest.raises(ValueError, match="no topic has field"):
        read_queries(path, field="nonexistent")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("<top>\n<num> Number: 1\n<title> a\n</top>\n<top>\n<title> no number\n</top>\n", 5, "no <num>"),
        ("<top>\n<num> Number: 1\n<title> a\n", 1, "never closed"),
        ("<top>\n<num> 1\n<top>\n", 3, "opened before"),
        ("junk\n<top>\n<num> 1\n</top>\n", 1, "outside a <top>"),
        (
            "<top><num>1</num><title>a</title></top>\n\n<top><num>1</num><title>b</title></top>\n",
            3,
            "duplicate qid '1'",
        ),
    ],
)
def test_topic_errors_name_line(tmp_path: Path, write: Write, text: str, line: int, message: str) -> None:
    path = write(tmp_path / "topics.txt", text)
    with pytest.raises(InputFormatError, match=message) as info:
        read_queries(path, format="trec")
    assert info.value.line == line


# --------------------------------------------------------------------------------------------- real files
@pytest.mark.collection
def test_real_npl_trec_files_match_beir_conversion(tmp_path: Path, shared_dir: Path) -> None:
    """The Vaswani/NPL distribution in TREC format parses to exactly the converted BEIR corpus and queries."""
    archive = shared_dir / "npl" / "raw" / "vaswani_npl_as_found.tar.gz"
    if not archive.is_file():
        pytest.skip("npl raw archive not present")
    with tarfile.open(archive) as tf:
        tf.extractall(tmp_path, filter="data")
    docs = read_corpus(tmp_path / "doc-text.trec")
    queries = read_queries(tmp_path / "query-text.trec")
    assert len(docs) == 11429
    assert len(queries) == 93

    converted = read_corpus(shared_dir / "npl" / "corpus.jsonl.gz")
    assert [(d.docid, d.text) for d in docs] == [(d.docid, d.text) for d in converted]
    with open(shared_dir / "npl" / "queries.jsonl", encoding="utf-8") as fh:
        expected = {r["_id"]: r["text"] for r in map(json.loads, fh)}
    assert queries.to_dict() == expected
