"""Generations: readers keep what they opened, writers take turns, leftovers of killed writers go."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import rankstack
from rankstack import Document, Queries
from rankstack.index import build_inverted_index
from rankstack.index.commits import history_path
from tests.helpers import random_docs, random_queries


def _build(docs, path):
    return build_inverted_index(docs, path, show_progress=False)


def _search(idx, queries):
    return idx.bm25(k=20)(Queries([str(i) for i in range(len(queries))], queries))


def _segment_dirs(path):
    return sorted(p.name for p in path.iterdir() if p.name.startswith("seg-"))


def test_a_reader_keeps_its_generation_through_a_merge(tmp_path):
    path = tmp_path / "idx"
    queries = random_queries(15)
    idx = _build(random_docs(50, seed=1), path).add(random_docs(30, seed=2, prefix="b"))
    idx = idx.delete(["d3", "b4"])
    before = _search(idx, queries)
    reader = rankstack.open(path)  # opened before the merge: pins its generation
    merged = idx.merge()
    assert len(merged.segments) == 1 and merged.manifest["generation"] == reader.manifest["generation"] + 1
    # the reader's files are all still there, even those it has not touched yet (lazy: terms, docids, store)
    assert _search(reader, queries) == before
    assert reader.docs["d7"].text == merged.docs["d7"].text
    assert [d.docid for d in reader.iter_documents()] == [d.docid for d in merged.iter_documents()]
    assert _search(merged, queries) == before
    old = set(_segment_dirs(path)) - {s["name"] for s in merged.manifest["segments"]}
    assert old  # pinned: not collected yet
    reader.close()
    idx.close()
    merged = merged.delete(["d9"])  # the next writer reclaims them
    assert _segment_dirs(path) == [s["name"] for s in merged.manifest["segments"]]
    assert not history_path(path, reader.manifest["generation"]).exists()


def test_a_stale_handle_updates_the_index_as_it_is_on_disk(tmp_path):
    path = tmp_path / "idx"
    first = _build(random_docs(20, seed=1), path)
    second = rankstack.open(path)
    second.add([Document("new", "w1 w2 w3")])
    after = first.delete(["d0"])  # `first` was opened before the add: the add must not be lost
    assert "new" in after.docs and "d0" not in after.docs
    assert after.num_docs == 20


def test_leftovers_of_a_killed_writer_are_removed_and_do_not_block_the_next(tmp_path):
    path = tmp_path / "idx"
    idx = _build(random_docs(30, seed=1), path)
    gen = idx.manifest["generation"]
    nxt = idx.manifest["next_segment"]
    # what a writer killed at various points leaves: a half-written segment, a finished but uncommitted
    # segment, a tombstone and a history manifest never made current, an interrupted atomic JSON write
    (path / f".seg-{nxt:06d}.tmp").mkdir()
    (path / f".seg-{nxt:06d}.tmp" / "post_docs.npy").write_bytes(b"half")
    (path / f"seg-{nxt:06d}").mkdir()
    (path / f"seg-{nxt:06d}" / "terms.txt").write_text("x")
    np.save(path / "seg-000001" / f"deleted-{gen + 1}.npy", np.ones(30, dtype=bool))
    history_path(path, gen + 1).write_text(json.dumps({"segments": [{"name": f"seg-{nxt:06d}"}]}))
    (path / ".manifest.json.0123abcd.tmp").write_text("{")
    reopened = rankstack.open(path)  # readers ignore all of it
    assert reopened.num_docs == 30
    added = reopened.add([Document("x", "w1 w5")])
    assert added.num_docs == 31 and "x" in added.docs
    names = {p.name for p in path.iterdir()}
    assert f".seg-{nxt:06d}.tmp" not in names and ".manifest.json.0123abcd.tmp" not in names
    assert not (path / "seg-000001" / f"deleted-{gen + 1}.npy").exists()
    assert _segment_dirs(path) == [s["name"] for s in added.manifest["segments"]]
    added.verify()


def test_every_update_is_a_new_generation_with_a_history_copy(tmp_path):
    path = tmp_path / "idx"
    idx = _build(random_docs(10, seed=1), path)
    assert idx.manifest["generation"] == 0
    idx = idx.add([Document("x", "w1")])
    idx = idx.delete(["d1"])
    idx = idx.merge()
    assert idx.manifest["generation"] == 3
    current = json.loads((path / "manifest.json").read_text())
    assert json.loads(history_path(path, 3).read_text()) == current
    with pytest.warns(UserWarning, match="not in the index"):
        same = idx.delete(["nope"])
    assert same.manifest["generation"] == 3  # nothing changed: nothing committed


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_index_opens_unpinned(tmp_path):
    path = tmp_path / "idx"
    _build(random_docs(10, seed=1), path).close()
    for p in path.glob(".gen-*.lock"):
        p.unlink()
    path.chmod(0o555)
    try:
        idx = rankstack.open(path)
        assert idx.num_docs == 10 and idx._pin._fd is None
    finally:
        path.chmod(0o755)


def test_a_dropped_handle_unpins_at_once(tmp_path):
    """No reference cycles: ``idx = idx.add(...)`` releases the old generation without waiting for the
    cyclic garbage collector, so the next writer reclaims it."""
    import gc

    path = tmp_path / "idx"
    gc.disable()
    try:
        idx = _build(random_docs(40, seed=1), path)
        _search(idx, random_queries(3))
        idx.docs["d1"], idx.stats, idx.lexicon
        idx = idx.add(random_docs(10, seed=2, prefix="b"))
        idx = idx.merge()
        idx = idx.delete(["d2"])
        assert _segment_dirs(path) == [s["name"] for s in idx.manifest["segments"]]
    finally:
        gc.enable()


def test_a_handle_opened_before_a_rebuild_updates_the_rebuilt_index(tmp_path):
    """--overwrite starts again at generation 0: a handle on the old index must not commit the old
    segment list into the new directory."""
    path = tmp_path / "idx"
    old = _build(random_docs(30, seed=1), path)
    fresh = build_inverted_index(random_docs(10, seed=2, prefix="n"), path, overwrite=True, show_progress=False)
    assert fresh.manifest["index_id"] != old.manifest["index_id"]
    added = old.add([Document("x", "w1 w2")])
    added.verify()
    assert added.num_docs == 11 and "n3" in added.docs and "d3" not in added.docs
    rankstack.open(path).verify()


def test_a_closed_index_says_so(tmp_path):
    from rankstack import RankstackError

    with _build(random_docs(10, seed=1), tmp_path / "idx") as idx:
        assert idx.docs["d1"].docid == "d1"
    with pytest.raises(RankstackError, match="closed; open it again"):
        idx.bm25()
    with pytest.raises(RankstackError, match="closed; open it again"):
        idx.docs["d1"]
