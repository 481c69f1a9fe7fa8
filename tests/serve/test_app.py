from __future__ import annotations

import re

import pytest

from rankstack.serve import create_app, load_spec
from rankstack.types import Queries
from tests.serve.conftest import write_spec

testclient = pytest.importorskip("fastapi.testclient")

SPEC = """
title = "Toy"

[retrievers.bm25]
index = "toy"
k = 12

[[rerankers]]
model = "mono"
depth = 10
name = "mono"

[limits]
max_query_chars = 40
max_k = 12
max_batch = 3
"""


@pytest.fixture(scope="module")
def pipeline(served):
    return load_spec(write_spec(served, SPEC, "app.toml"))


@pytest.fixture(scope="module")
def client(pipeline):
    return testclient.TestClient(create_app(pipeline))


def test_search_returns_the_pipelines_ranking_with_marked_snippets_and_step_times(client, pipeline):
    r = client.get("/search", params={"q": "where does the fox live", "k": 3})
    assert r.status_code == 200
    data = r.json()
    want = pipeline.stage(Queries(["q"], ["where does the fox live"])).cutoff(3)
    assert [h["docid"] for h in data["hits"]] == want.docid.tolist()
    assert [h["rank"] for h in data["hits"]] == [1, 2, 3] and data["more"]
    fox = next(h for h in client.get("/search", params={"q": "fox", "k": 12}).json()["hits"] if h["docid"] == "d7")
    assert "<mark>fox</mark>" in fox["snippet_html"] and fox["title"] == "fox story"
    assert set(data["timings_ms"]) == {"bm25", "mono"}


def test_pages_continue_where_the_last_one_stopped(client):
    whole = client.get("/search", params={"q": "the river lives", "k": 10}).json()["hits"]
    first = client.get("/search", params={"q": "the river lives", "k": 4}).json()["hits"]
    second = client.get("/search", params={"q": "the river lives", "k": 4, "offset": 4}).json()["hits"]
    assert [h["docid"] for h in first + second] == [h["docid"] for h in whole[:8]]
    assert [h["rank"] for h in second] == [5, 6, 7, 8]
    last = client.get("/search", params={"q": "the river lives", "k": 2, "offset": 8}).json()
    assert [h["rank"] for h in last["hits"]] == [9, 10] and not last["more"]  # the re-ranker keeps 10


def test_snippets_escape_html(served):
    from rankstack.index import build_inverted_index
    from rankstack.types import Document

    build_inverted_index([Document("x", "<script>alert(1)</script> tea & toast")], served / "html", show_progress=False)
    client = testclient.TestClient(create_app(load_spec(served / "html")))
    snippet = client.get("/search", params={"q": "tea"}).json()["hits"][0]["snippet_html"]
    assert "<script>" not in snippet and "&lt;script&gt;" in snippet and "<mark>tea</mark> &amp; toast" in snippet


def test_batch_search_answers_each_query(client, pipeline):
    body = {"queries": [{"qid": "a", "text": "cat"}, "wolf in the forest"], "k": 2}
    r = client.post("/search", json=body)
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["qid"] for x in results] == ["a", "2"]
    want = pipeline.stage(Queries(["a", "2"], ["cat", "wolf in the forest"])).cutoff(2)
    assert [h["docid"] for h in results[0]["hits"]] == want.for_qids(["a"]).docid.tolist()


@pytest.mark.parametrize(
    ("method", "kwargs", "status", "message"),
    [
        ("get", {"params": {"q": ""}}, 400, "q is empty"),
        ("get", {"params": {"q": "x" * 41}}, 413, "41 characters; this server takes at most 40 (limits.max_query_chars)"),
        ("get", {"params": {"q": "cat", "k": 13}}, 400, "at most 12 documents per query (limits.max_k)"),
        ("get", {"params": {"q": "cat", "k": 5, "offset": 10}}, 400, "offset \\+ k = 15"),
        ("get", {"params": {"q": "cat", "k": 0}}, 400, "k must be a positive integer"),
        ("get", {"params": {"q": "cat", "k": "ten"}}, 400, "k: Input should be a valid integer"),
        ("post", {"content": b"\xff\xfe{}"}, 400, "not UTF-8"),
        ("post", {"content": b"{not json"}, 400, "not JSON"),
        ("post", {"json": {"queries": ["a", "b", "c", "d"]}}, 413, "4 queries in one request; this server takes at most 3"),
        ("post", {"json": {"queries": [{"qid": "1", "text": ""}]}}, 400, "queries\\[0\\].text is empty"),
        ("post", {"json": {"queries": ["a", {"qid": "1", "text": "b"}]}}, 400, "query ids repeat"),
        ("post", {"json": {"texts": ["a"]}}, 400, 'send {"queries"'),
    ],
)
def test_requests_beyond_the_limits_get_4xx_naming_them(client, method, kwargs, status, message):
    r = getattr(client, method)("/search", **kwargs)
    assert r.status_code == status
    error = r.json()["error"]
    assert message in error or re.search(message, error), error


def test_documents_health_metrics_and_the_page(client, pipeline):
    assert client.get("/docs/d2").json()["title"] == "horse story"
    missing = client.get("/docs/nope")
    assert missing.status_code == 404 and "no document 'nope'" in missing.json()["error"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["limits"]["max_k"] == 12 and not health["auth_required"]
    assert health["pipeline"] == repr(pipeline.stage)
    client.get("/search", params={"q": "owl"})
    metrics = client.get("/metrics").text
    assert 'rankstack_requests_total{endpoint="/search",status="200"}' in metrics
    assert 'rankstack_stage_seconds_count{stage="mono"}' in metrics
    page = client.get("/")
    assert page.status_code == 200 and '<input id="q"' in page.text
    assert client.get("/api").status_code == 200 and "/search" in client.get("/openapi.json").json()["paths"]


def test_an_api_key_guards_search_and_documents_but_not_health(pipeline):
    client = testclient.TestClient(create_app(pipeline, api_key="s3cret"))
    assert client.get("/search", params={"q": "cat"}).status_code == 401
    assert client.get("/search", params={"q": "cat"}, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/search", params={"q": "cat"}, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/docs/d1").status_code == 401
    assert client.get("/healthz").json()["auth_required"] is True
