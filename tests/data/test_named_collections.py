"""Collection over a BEIR folder, the search path (RANKSTACK_DATA, cache), the registry, and real collections."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from rankstack.data import (
    MSMARCO_PASSAGE_LAYOUT,
    REGISTRY,
    Collection,
    CollectionNotFoundError,
    FileCorpus,
    cache_dir,
    check_duplicates,
    data_dirs,
    load_collection,
)
from rankstack.errors import InputFormatError, UnknownCollectionError

Write = Callable[[Path, str], Path]


def make_beir(root: Path, write: Write, name: str = "tiny", gz: bool = True) -> Path:
    folder = root / name
    docs = [{"_id": f"d{i}", "title": f"t{i}", "text": f"text {i}"} for i in range(5)]
    write(folder / ("corpus.jsonl.gz" if gz else "corpus.jsonl"), "".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": q, "text": f"query {q}"} for q in ["q3", "q1", "q2", "q9"]]
    write(folder / "queries.jsonl", "".join(json.dumps(q) + "\n" for q in queries))
    write(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq3\td3\t2\nq3\td4\t1\n")
    write(folder / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nq2\td2\t1\nq7\td0\t1\n")
    return folder


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No RANKSTACK_DATA, and a cache under tmp_path, so tests never see the user's collections."""
    monkeypatch.delenv("RANKSTACK_DATA", raising=False)
    monkeypatch.setenv("RANKSTACK_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "collections"


def test_collection_over_beir_folder(tmp_path: Path, write: Write) -> None:
    c = Collection(make_beir(tmp_path, write))
    assert c.name == "tiny" and c.path == tmp_path / "tiny"
    assert isinstance(c.corpus, FileCorpus)
    assert [d.docid for d in c.corpus] == [f"d{i}" for i in range(5)]
    assert list(c.queries.qid) == ["q3", "q1", "q2", "q9"]
    assert c.splits == ["test", "train"]
    assert c.qrels("test").to_dict() == {"q1": {"d1": 1}, "q3": {"d3": 2, "d4": 1}}
    assert list(c.queries_for("test").qid) == ["q3", "q1"]  # queries-file order, judged only
    assert "Collection('tiny'" in repr(c)


def test_queries_for_warns_about_judged_qids_without_text(
    tmp_path: Path, write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    c = Collection(make_beir(tmp_path, write))
    with caplog.at_level(logging.WARNING, logger="rankstack.data.collections"):
        assert list(c.queries_for("train").qid) == ["q2"]
    assert "1 judged qids have no query text (e.g. q7)" in caplog.text


def test_unknown_split_and_broken_folder(tmp_path: Path, write: Write) -> None:
    c = Collection(make_beir(tmp_path, write))
    with pytest.raises(ValueError, match=re.escape("no qrels split 'dev'; available: ['test', 'train']")):
        c.qrels("dev")
    (tmp_path / "broken").mkdir()
    with pytest.raises(InputFormatError, match="no corpus file"):
        Collection(tmp_path / "broken")
    write(tmp_path / "noq" / "corpus.jsonl", "")
    with pytest.raises(InputFormatError, match="no queries file"):
        Collection(tmp_path / "noq")


def test_msmarco_passage_layout(tmp_path: Path, write: Write) -> None:
    folder = tmp_path / "msmarco-passage"
    write(folder / "collection.tsv", "0\tpassage zero\n1\tpassage one\n")
    write(folder / "queries.train.tsv", "5\ttrain q\n")
    write(folder / "queries.dev.tsv", "6\tdev q\n7\tdev q unjudged\n")
    write(folder / "qrels.dev.small.tsv", "6\t0\t1\t1\n")
    write(folder / "qrels.train.tsv", "5\t0\t0\t1\n")
    c = Collection(folder, layout=MSMARCO_PASSAGE_LAYOUT)
    assert c.splits == ["dev", "train"]
    assert c.queries.to_dict() == {"5": "train q", "6": "dev q", "7": "dev q unjudged"}
    assert c.queries_for("dev").to_dict() == {"6": "dev q"}
    assert len(c.corpus) == 2
    assert load_collection(folder).splits == ["dev", "train"]  # layout picked from the registered name


def test_load_by_path(tmp_path: Path, write: Write, clean_env: Path) -> None:
    folder = make_beir(tmp_path, write)
    assert load_collection(folder).name == "tiny"
    assert load_collection(str(folder)).path == folder


def test_search_path_order_then_cache(
    tmp_path: Path, write: Write, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    make_beir(second, write, name="scifact")
    make_beir(first, write, name="scifact", gz=False)
    monkeypatch.setenv("RANKSTACK_DATA", f"{tmp_path / 'missing'}:{first}:{second}")
    assert data_dirs() == [tmp_path / "missing", first, second]
    assert load_collection("scifact").path == first / "scifact"

    # not on RANKSTACK_DATA: the cache is next, and is used without any download
    make_beir(cache_dir(), write, name="nfcorpus")
    assert cache_dir() == clean_env
    assert load_collection("nfcorpus").path == clean_env / "nfcorpus"

    # an unregistered name found on the search path is fine (the user's own collection)
    make_beir(second, write, name="my-own")
    assert load_collection("my-own").name == "my-own"


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANKSTACK_HOME", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "rankstack" / "collections"


def test_unknown_and_local_only_names(clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(UnknownCollectionError) as info:
        load_collection("no-such-collection")
    assert "scifact" in info.value.known
    monkeypatch.setenv("RANKSTACK_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(CollectionNotFoundError) as err:
        load_collection("cranfield")
    message = str(err.value)
    assert "local-only" in message and "RANKSTACK_DATA" in message
    assert str(tmp_path / "elsewhere" / "cranfield") in message and str(clean_env / "cranfield") in message
    with pytest.raises(CollectionNotFoundError, match="download=False"):
        load_collection("scifact", download=False)
    assert not clean_env.exists()


def test_registry_entries() -> None:
    beir = ["scifact", "nfcorpus", "trec-covid", "fiqa", "arguana", "scidocs", "nq", "msmarco"]
    for name in beir:
        info = REGISTRY[name]
        assert info.url == f"https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
        assert info.md5 is not None and re.fullmatch(r"[0-9a-f]{32}", info.md5)
    assert REGISTRY["msmarco-passage"].url.endswith("/msmarcoranking/collectionandqueries.tar.gz")
    assert REGISTRY["msmarco-passage"].layout is MSMARCO_PASSAGE_LAYOUT
    for name in ["adi", "cacm", "cranfield", "npl", "nq-utd", "trec-dl-2019-passage-subset"]:
        assert REGISTRY[name].url is None
    for info in REGISTRY.values():
        assert info.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", info.sha256)


# --------------------------------------------------------------------------------------------- real collections
@pytest.fixture
def real_data(shared_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("RANKSTACK_DATA", str(shared_dir))
    monkeypatch.setenv("RANKSTACK_HOME", str(tmp_path / "home"))
    return shared_dir


@pytest.mark.collection
def test_scifact_counts(real_data: Path) -> None:
    c = load_collection("scifact")
    assert c.path == real_data / "scifact"
    assert len(c.corpus) == 5183
    assert c.corpus.empty_documents == 0
    assert len(c.queries) == 1109
    assert c.splits == ["test", "train"]
    assert len(c.queries_for("test")) == 300 and len(c.qrels("test")) == 339
    assert len(c.queries_for("train")) == 809 and len(c.qrels("train")) == 919


@pytest.mark.collection
def test_nfcorpus_counts(real_data: Path) -> None:
    c = load_collection("nfcorpus")
    assert len(c.corpus) == 3633
    assert len(c.queries) == 3237
    assert c.splits == ["dev", "test", "train"]
    assert (len(c.queries_for("test")), len(c.qrels("test"))) == (323, 12334)
    assert (len(c.queries_for("dev")), len(c.qrels("dev"))) == (324, 11385)
    assert (len(c.queries_for("train")), len(c.qrels("train"))) == (2590, 110575)
    first = next(iter(c.corpus))
    assert "url" in first.fields.get("metadata", {}) or first.fields  # BEIR metadata kept as a field


@pytest.mark.collection
def test_classic_collections_load_and_have_unique_docids(real_data: Path) -> None:
    expected = {"cranfield": (1400, 225, 225, 2), "cacm": (3204, 64, 52, 0), "npl": (11429, 93, 93, 0)}
    for name, (docs, queries, judged, empty) in expected.items():
        c = load_collection(name)
        assert (len(c.corpus), len(c.queries), len(c.queries_for("test"))) == (docs, queries, judged)
        assert c.corpus.empty_documents == empty  # cranfield: docs 471 and 995 are empty (SOURCE.md)
        assert check_duplicates(c.corpus) == {}
