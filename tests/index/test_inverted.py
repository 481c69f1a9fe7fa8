import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rankstack
from rankstack import Document, IndexFormatError, Queries, RankstackError
from rankstack.index import build_inverted_index
from rankstack.index.inverted import FEW_TEXTS
from tests.helpers import random_docs, random_queries


def build(docs, path, **kw):
    kw.setdefault("show_progress", False)
    return build_inverted_index(docs, path, **kw)


def test_manifest_counts_and_doc_store(tmp_path):
    docs = [
        Document("a", "Hello world", "Greeting"),
        Document("b", ""),
        Document("c", "worlds apart", fields={"url": "u"}),
    ]
    idx = build(docs, tmp_path / "idx")
    m = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert m["type"] == "inverted" and m["format_version"] == 1
    assert m["counts"]["documents"] == 3 and m["counts"]["empty_documents"] == 1
    assert m["analyzer"]["stemmer"] == "porter"
    assert idx.stats.num_docs == 2  # Lucene's docCount ignores empty documents
    assert idx.docs["a"] == docs[0] and idx.docs["c"].fields == {"url": "u"}
    assert "b" in idx.docs and len(idx.docs) == 3
    assert [d.docid for d in idx.docs] == ["a", "b", "c"]
    with pytest.raises(KeyError, match="'zzz' is not in index"):
        idx.docs["zzz"]
    assert rankstack.open(tmp_path / "idx").df("world") == 2
    assert repr(idx.bm25()) == f"rankstack.open({str(tmp_path / 'idx')!r}).bm25(k1=0.9, b=0.4, k=1000)"


def test_open_refuses_wrong_version_corruption_and_non_indexes(tmp_path):
    path = tmp_path / "idx"
    build(random_docs(20), path)
    m = json.loads((path / "manifest.json").read_text())
    m["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFormatError, match=r"format version 99.*Rebuild"):
        rankstack.open(path)
    m["format_version"] = 1
    (path / "manifest.json").write_text(json.dumps(m))
    arr = path / "seg-000001" / "post_docs.npy"
    data = bytearray(arr.read_bytes())
    data[-1] ^= 0xFF
    arr.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=r"post_docs.npy failed its checksum.*Rebuild"):
        rankstack.open(path)
    with pytest.raises(IndexFormatError, match=r"has no manifest\.json"):
        rankstack.open(tmp_path)
    with pytest.raises(IndexFormatError, match="does not exist"):
        rankstack.open(tmp_path / "nope")


def test_duplicate_docids_policies(tmp_path):
    docs = [Document("a", "one"), Document("b", "two"), Document("a", "three")]
    with pytest.raises(RankstackError, match=r"duplicate docid 'a'.*on_duplicate"):
        build(docs, tmp_path / "e")
    assert not (tmp_path / "e").exists()
    with pytest.warns(UserWarning, match="1 documents had a docid seen before"):
        first = build(docs, tmp_path / "f", on_duplicate="keep-first")
    assert first.docs["a"].text == "one" and first.num_docs == 2
    last = build(docs, tmp_path / "l", on_duplicate="keep-last")
    assert last.docs["a"].text == "three" and last.num_docs == 2


def test_failed_build_leaves_previous_index_and_no_temporary(tmp_path):
    path = tmp_path / "idx"
    build(random_docs(30), path)
    before = sorted(p.name for p in tmp_path.iterdir())

    def broken():
        yield from random_docs(10, prefix="x")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        build(broken(), path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert rankstack.open(path).num_docs == 30
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build(random_docs(5), path)


def test_killed_build_keeps_previous_index(tmp_path):
    path = tmp_path / "idx"
    build(random_docs(30), path)
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from rankstack import Document
        from rankstack.index import build_inverted_index
        def slow():
            for i in range(10**9):
                if i == 50:
                    print("started", flush=True)
                yield Document(str(i), "words " * 20)
        build_inverted_index(slow(), {str(path)!r}, overwrite=True, show_progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    visible = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert visible == ["idx"]
    assert rankstack.open(path).num_docs == 30
    build(random_docs(5), path, overwrite=True)  # the next build cleans the dead build's temporary
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_a_build_killed_between_its_two_renames_gets_the_old_index_back(tmp_path):
    """The swap moves the old index aside, then the new one in; a kill between the two leaves no index,
    only ``.idx.old-*``: the next build restores it before anything else, so nothing committed is lost."""
    path = tmp_path / "idx"
    build(random_docs(30), path)
    path.rename(tmp_path / ".idx.old-0badc0de")
    (tmp_path / ".idx.tmp-999999999-deadbeef").mkdir()  # the dead build's half-written new index
    with pytest.raises(FileExistsError):  # the restored index is there again, so no silent overwrite
        build(random_docs(5), path)
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]
    assert rankstack.open(path).num_docs == 30


def _search(idx, queries):
    return idx.bm25(k=20)(Queries([str(i) for i in range(len(queries))], queries))


def test_add_delete_merge_equal_a_fresh_build(tmp_path):
    a, b = random_docs(60, seed=1, prefix="a"), random_docs(40, seed=2, prefix="b")
    changed = Document("a3", "w1 w2 w2 w3 replaced")
    gone = {"a5", "a7", "b11"}
    queries = random_queries(25)
    fresh_docs = (
        [d for d in a if d.docid not in gone and d.docid != "a3"] + [d for d in b if d.docid not in gone] + [changed]
    )

    idx = build(a, tmp_path / "live")
    idx = idx.add(b)
    idx = idx.delete(sorted(gone))
    idx = idx.add([changed])  # an existing docid: replaces the old document
    assert len(idx.segments) == 3 and idx.num_docs == len(fresh_docs)
    fresh = build(fresh_docs, tmp_path / "fresh")
    assert idx.stats == fresh.stats
    assert _search(idx, queries) == _search(fresh, queries)
    assert idx.docs["a3"].text == "w1 w2 w2 w3 replaced" and "a5" not in idx.docs

    merged = idx.merge()
    assert len(merged.segments) == 1 and merged.manifest["counts"]["deleted"] == 0
    assert _search(merged, queries) == _search(fresh, queries)
    with pytest.warns(UserWarning, match="not in the index"):
        merged.delete(["nope"])


@pytest.mark.parametrize("stemmer", ["porter", "english", None])
def test_query_term_ids_equal_the_analyzer_through_the_cache(tmp_path, stemmer):
    from rankstack.text import Analyzer

    analyzer = Analyzer(stemmer=stemmer)
    docs = random_docs(60, seed=3)
    idx = build_inverted_index(docs, tmp_path / "idx", analyzer, show_progress=False)
    texts = [d.text for d in docs[:20]] + ["The running runners ran", "the of and", "", "zzzunknown words"]
    for _ in range(2):  # cold cache, then warm
        for text in texts:
            ids, any_term = idx.query_term_ids(text)
            terms = analyzer(text)
            assert ids == [idx.lexicon.ids[t] for t in terms if t in idx.lexicon.ids]
            assert any_term == bool(terms)


_BATCH_TEXTS = st.lists(
    st.one_of(
        st.text(alphabet="abc dog's DOGS' the of 3.5 1,000 u.s.a x_y 0querybreak0 Ünï 漢 .,;:'", max_size=40),
        st.sampled_from(["", "the of and", "running runners ran", "zzzunknown", "dog's bone", "a" * 300]),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(texts=_BATCH_TEXTS)
def test_batch_query_terms_equal_query_by_query(tmp_path_factory, texts):
    """The one-pass ASCII batch path and the text-by-text path give the same terms and flags (padded
    past ``FEW_TEXTS``, the batch takes the compiled pass; a few texts go text by text)."""
    idx = _batch_index(tmp_path_factory)
    for batch in (texts, texts + ["dog bone"] * (FEW_TEXTS + 1)):
        rows, gids, has_term = idx.query_term_rows(batch)
        for row, text in enumerate(batch):
            ids, any_term = idx.query_term_ids(text) if text else ([], False)
            assert gids[rows == row].tolist() == ids, text
            assert has_term[row] == any_term, text
        assert (np.diff(rows) >= 0).all()


_BATCH_INDEX = {}


def _batch_index(tmp_path_factory):
    if "idx" not in _BATCH_INDEX:
        docs = [
            *random_docs(40, seed=5),
            Document("x", "dog dogs bone run u.s.a 3.5 1,000 abc x_y ünï 漢 " + "a" * 255),
        ]
        _BATCH_INDEX["idx"] = build_inverted_index(docs, tmp_path_factory.mktemp("b") / "idx", show_progress=False)
    return _BATCH_INDEX["idx"]


@pytest.mark.parametrize("show_progress", [False, True])
def test_a_corpus_of_unknown_size_is_read_once(tmp_path, show_progress):
    """The progress bar must not ask a corpus its length: a corpus of unknown size would count itself by
    reading every document (parsing the whole file twice)."""
    from rankstack.types import Corpus

    reads = []

    def documents():
        reads.append(1)
        yield from random_docs(30, seed=4)

    idx = build(Corpus(documents, name="c"), tmp_path / "idx", show_progress=show_progress)
    assert len(reads) == 1 and idx.num_docs == 30
