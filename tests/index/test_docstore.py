"""The document store reads back every record exactly, under either codec, and says what is missing."""

from __future__ import annotations

import json

import pytest

from rankstack.errors import IndexFormatError
from rankstack.index import build_inverted_index, docstore
from rankstack.index.docstore import BLOCK, DocStoreReader, DocStoreWriter
from rankstack.types import Document

RECORDS = [
    {"text": "plain ascii text", "title": "T"},
    {"text": "naïve café — β-blockers 中文 😀"},
    {"text": 'quotes " and \\ backslash\nnewline\ttab \x00 nul \x7f', "title": "Über"},
    {"text": "with fields", "fields": {"year": 2020, "tags": ["a", "ü"], "none": None}},
    {"text": ""},
    {},
]


@pytest.mark.parametrize("codec", docstore.CODECS)
def test_records_round_trip(tmp_path, codec):
    records = [dict(r, n=i) for i in range(3 * BLOCK + 1) for r in RECORDS[i % len(RECORDS) : i % len(RECORDS) + 1]]
    writer = DocStoreWriter(tmp_path, codec=codec)
    for r in records:
        writer.add(r)
    writer.close()
    reader = DocStoreReader(tmp_path, codec)
    assert [reader.get(i) for i in reversed(range(len(records)))] == records[::-1]


def test_ascii_records_take_the_escaping_encoder_with_the_same_bytes():
    """The faster encoder is only a speed choice: for ASCII records both give the same bytes (but for DEL,
    which it escapes) and the same record back."""
    rec = {"text": 'quotes " \\ \n \x01 ~', "title": "t"}
    assert docstore._encode_ascii(rec) == docstore._encode(rec)
    rec["text"] += "\x7f"
    assert json.loads(docstore._encode_ascii(rec)) == json.loads(docstore._encode(rec)) == rec
    assert json.loads(docstore._encode_ascii({"text": "é"})) == {"text": "é"}


def test_index_records_its_codec_and_reads_zlib_stores(tmp_path, monkeypatch):
    docs = [Document(f"d{i}", f"document {i} text ü", title="t") for i in range(40)]
    idx = build_inverted_index(docs, tmp_path / "z", show_progress=False)
    assert idx.manifest["segments"][0]["store_codec"] == docstore.default_codec() == "zstd"
    assert idx.docs["d39"].text == "document 39 text ü"
    # a store written without Zstandard (or before the codec was recorded) is zlib, and still reads
    monkeypatch.setattr(docstore, "_zstd", lambda: None)
    old = build_inverted_index(docs, tmp_path / "old", show_progress=False)
    assert old.manifest["segments"][0]["store_codec"] == "zlib"
    assert old.docs["d7"].title == "t"
    # a Zstandard store where Zstandard is missing: one error that says what to install
    import rankstack

    with pytest.raises(IndexFormatError, match="pip install zstandard"):
        rankstack.open(tmp_path / "z").docs["d1"]


def test_unknown_codec_is_refused(tmp_path):
    DocStoreWriter(tmp_path, codec="zlib").close()
    with pytest.raises(IndexFormatError, match="unknown document store codec 'lz77'"):
        DocStoreReader(tmp_path, "lz77")


def test_an_index_with_zlib_and_zstd_segments_reads_both_and_merges(tmp_path, monkeypatch):
    """An index written before the codec changed gets new segments in Zstandard; every document reads back."""
    import rankstack

    with monkeypatch.context() as m:
        m.setattr(docstore, "_zstd", lambda: None)
        build_inverted_index([Document("old", "written with zlib")], tmp_path / "i", show_progress=False)
    idx = rankstack.open(tmp_path / "i").add([Document("new", "written with zstd é")])
    assert [s["store_codec"] for s in idx.manifest["segments"]] == ["zlib", "zstd"]
    assert idx.docs["old"].text == "written with zlib" and idx.docs["new"].text == "written with zstd é"
    merged = idx.merge()
    assert [s["store_codec"] for s in merged.manifest["segments"]] == ["zstd"]
    assert sorted(d.docid for d in merged.iter_documents()) == ["new", "old"]
