"""The HTTP face of a pipeline: ``create_app(pipeline)`` is a FastAPI app with a search page.

Endpoints: ``GET /`` (the page), ``GET /search?q=…&k=…&offset=…``, ``POST /search`` (a batch), ``GET /docs/{docid}``,
``GET /images/{docid}`` (image indexes), ``GET /healthz``, ``GET /metrics`` (Prometheus text), OpenAPI at ``/api``.
Requests beyond the spec's limits get a 4xx that names the limit; with an API key set, every endpoint but
``/``, ``/healthz`` and ``/metrics`` wants it in the ``X-API-Key`` header. Searches run one at a time per process
(the stages keep per-process caches); more processes (``--workers``) share the indexes' memory maps.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations (``fastapi.Request``, a
lazily imported name) when they are defined.
"""


import hmac
import html
import json
import os
import re
import threading
import time
from importlib import resources
from typing import Any

from rankstack.serve.spec import ServedPipeline, load_spec
from rankstack.types import Queries, Ranking

SNIPPET_CHARS = 300
_WORD = re.compile(r"\w+")


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise ImportError("rankstack serve needs the [serve] extra: pip install 'rankstack[serve]'") from None
    return fastapi


class _Metrics:
    """Request counts, request latency and per-step time, in a registry of this app's own."""

    def __init__(self) -> None:
        import prometheus_client as prom

        self.prom = prom
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "rankstack_requests", "HTTP requests answered", ["endpoint", "status"], registry=self.registry
        )
        self.latency = prom.Histogram(
            "rankstack_request_seconds", "Time to answer a request", ["endpoint"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        self.steps = prom.Histogram(
            "rankstack_stage_seconds", "Time in each pipeline step", ["stage"], registry=self.registry,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip

    def text(self) -> bytes:
        return self.prom.generate_latest(self.registry)


class _Measure:
    """Counts and times every request (a plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs more
    per request than a BM25 search)."""

    def __init__(self, app: Any, metrics: _Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        endpoint = "/docs/{docid}" if path.startswith("/docs/") else "/images/{docid}" if path.startswith("/images/") else path
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)
            self.metrics.requests.labels(endpoint, str(status[0])).inc()


def create_app(pipeline: ServedPipeline, api_key: str | None = None) -> Any:
    """The FastAPI app serving ``pipeline``."""
    fastapi = _fastapi()
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

    app = fastapi.FastAPI(
        title=f"{pipeline.title} — rankstack",
        description="Search a rankstack pipeline: " + repr(pipeline.stage),
        docs_url="/api",
        redoc_url=None,
    )
    metrics = _Metrics()
    lock = threading.Lock()
    limits = pipeline.limits
    shown = repr(pipeline.stage)
    images = pipeline.images or {}

    class HTTPError(Exception):
        def __init__(self, status: int, message: str):
            self.status, self.message = status, message

    @app.exception_handler(HTTPError)
    async def _http_error(request, exc: HTTPError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path", "body"))
            parts.append(f"{where}: {err.get('msg')}")
        return JSONResponse({"error": "; ".join(parts) or "invalid request"}, status_code=400)

    app.add_middleware(_Measure, metrics=metrics)

    def authorise(request) -> None:
        if api_key is None:
            return
        given = request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPError(401, "missing or wrong API key: send it in the X-API-Key header")

    def check_text(text: Any, what: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise HTTPError(400, f"{what} is empty: send the query text")
        if len(text) > limits.max_query_chars:
            raise HTTPError(413, f"{what} has {len(text):,} characters; this server takes at most "
                                 f"{limits.max_query_chars:,} (limits.max_query_chars)")  # fmt: skip
        return text

    def check_k(k: Any, offset: int = 0) -> int:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise HTTPError(400, f"k must be a positive integer, not {k!r}")
        if offset < 0:
            raise HTTPError(400, f"offset must be 0 or more, not {offset}")
        if k + offset > limits.max_k:
            raise HTTPError(400, f"offset + k = {offset + k:,}; this server returns at most {limits.max_k:,} documents "
                                 "per query (limits.max_k)")  # fmt: skip
        return k

    def run(queries: Queries, depth: int) -> tuple[Ranking, dict[str, float]]:
        with lock:
            ranking, timings = pipeline.run(queries, depth)
        for name, seconds in timings.items():
            metrics.steps.labels(name).observe(seconds)
        return ranking, {name: round(seconds * 1000, 3) for name, seconds in timings.items()}

    def hits(ranking: Ranking, query: str, offset: int, k: int, snippets: bool) -> list[dict[str, Any]]:
        rows = ranking.rank > offset
        rows &= ranking.rank <= offset + k
        terms = _query_terms(pipeline, query) if snippets else set()
        out = []
        for docid, score, rank in zip(
            ranking.docid[rows].tolist(), ranking.score[rows].tolist(), ranking.rank[rows].tolist(), strict=True
        ):
            hit: dict[str, Any] = {"rank": rank, "docid": docid, "score": score}
            if snippets:
                doc = _document(pipeline, docid)
                hit["title"] = doc.title if doc is not None else None
                hit["snippet_html"] = _highlight(doc.text[:SNIPPET_CHARS] if doc is not None else "", terms, pipeline)
                hit["image"] = f"/images/{docid}" if docid in images else None
            out.append(hit)
        return out

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return HTMLResponse(resources.files("rankstack.serve").joinpath("page.html").read_text(encoding="utf-8"))

    @app.get("/healthz")
    def healthz():
        """Liveness, and what this server runs."""
        return {"status": "ok", "title": pipeline.title, "pipeline": shown, "auth_required": api_key is not None,
                "limits": {"max_query_chars": limits.max_query_chars, "max_k": limits.max_k, "max_batch": limits.max_batch}}  # fmt: skip

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics():
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/search")
    def search(request: fastapi.Request, q: str = "", k: int = 10, offset: int = 0, snippets: bool = True):
        """One query: hits ``offset + 1 .. offset + k`` with snippets (query terms marked), whether more follow,
        and the time each step took."""
        authorise(request)
        text = check_text(q, "q")
        check_k(k, offset)
        ranking, timings = run(Queries(["q"], [text]), offset + k + 1)  # one more: is there a next page?
        return {
            "query": text, "offset": offset, "k": k, "hits": hits(ranking, text, offset, k, snippets),
            "more": len(ranking) > offset + k, "timings_ms": timings,
        }  # fmt: skip

    @app.post("/search")
    async def search_batch(request: fastapi.Request):
        """Many queries: ``{"queries": [{"qid": "1", "text": "…"}, …] or ["…", …], "k": 10}``."""
        authorise(request)
        body = await request.body()
        try:
            data = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise HTTPError(400, f"the request body is not UTF-8 (byte {e.start}); send UTF-8 JSON") from None
        except json.JSONDecodeError as e:
            raise HTTPError(400, f"the request body is not JSON: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("queries"), list):
            raise HTTPError(400, 'send {"queries": [{"qid": "1", "text": "..."}, ...], "k": 10}')
        given = data["queries"]
        if not given:
            raise HTTPError(400, "queries is empty")
        if len(given) > limits.max_batch:
            raise HTTPError(413, f"{len(given):,} queries in one request; this server takes at most "
                                 f"{limits.max_batch:,} (limits.max_batch)")  # fmt: skip
        qids, texts = [], []
        for i, item in enumerate(given):
            qid, text = (str(i + 1), item) if isinstance(item, str) else (
                (str(item.get("qid", i + 1)), item.get("text")) if isinstance(item, dict) else (None, None)
            )
            if qid is None:
                raise HTTPError(400, f"queries[{i}] must be a string or {{\"qid\": ..., \"text\": ...}}")
            qids.append(qid)
            texts.append(check_text(text, f"queries[{i}].text"))
        if len(set(qids)) != len(qids):
            raise HTTPError(400, "query ids repeat: give each query its own qid")
        k = check_k(data.get("k", 10))
        ranking, timings = await _in_thread(run, Queries(qids, texts), k)
        by_qid = {qid: {"qid": qid, "hits": []} for qid in qids}
        for qid, docid, score, rank in zip(ranking.qid.tolist(), ranking.docid.tolist(), ranking.score.tolist(),
                                           ranking.rank.tolist(), strict=True):  # fmt: skip
            by_qid[qid]["hits"].append({"rank": rank, "docid": docid, "score": score})
        return {"results": list(by_qid.values()), "k": k, "timings_ms": timings}

    @app.get("/docs/{docid}")
    def document(request: fastapi.Request, docid: str):
        """A stored document."""
        authorise(request)
        doc = _document(pipeline, docid)
        if doc is None:
            raise HTTPError(404, f"no document {docid!r} in this server's document store")
        return {"docid": doc.docid, "title": doc.title, "text": doc.text, "fields": _jsonable(doc.fields)}

    @app.get("/images/{docid}", include_in_schema=False)
    def image(request: fastapi.Request, docid: str):
        authorise(request)
        path = images.get(docid)
        if path is None or not os.path.isfile(path):
            raise HTTPError(404, f"no image for {docid!r}")
        return FileResponse(path)

    return app


async def _in_thread(fn, *args):
    import anyio

    return await anyio.to_thread.run_sync(lambda: fn(*args))


def _document(pipeline: ServedPipeline, docid: str) -> Any:
    if pipeline.docs is None:
        return None
    try:
        return pipeline.docs[docid]
    except KeyError:
        return None


def _jsonable(fields: Any) -> dict[str, Any]:
    return {str(k): v if isinstance(v, str | int | float | bool | type(None) | list | dict) else str(v) for k, v in dict(fields).items()}


def _term(pipeline: ServedPipeline, word: str) -> str | None:
    a = pipeline.analyzer
    if a is None:
        return word.lower()
    return a.term(word.lower() if a.lowercase else word)


def _query_terms(pipeline: ServedPipeline, query: str) -> set[str]:
    if pipeline.analyzer is not None:
        return set(pipeline.analyzer(query))
    return {w.lower() for w in _WORD.findall(query)}


def _highlight(text: str, terms: set[str], pipeline: ServedPipeline) -> str:
    """``text`` as HTML, with words whose index term is one of the query's terms in ``<mark>``."""
    out, pos = [], 0
    for m in _WORD.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        word = m.group()
        marked = terms and _term(pipeline, word) in terms
        out.append(f"<mark>{html.escape(word)}</mark>" if marked else html.escape(word))
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def app_from_env() -> Any:
    """The app for ``uvicorn --factory`` workers: the spec and API key come from ``RANKSTACK_SERVE_SPEC`` and
    ``RANKSTACK_API_KEY`` (each worker process opens the indexes itself; their memory maps are shared)."""
    spec = os.environ.get("RANKSTACK_SERVE_SPEC")
    if not spec:
        raise RuntimeError("RANKSTACK_SERVE_SPEC is not set: start the server with `rankstack serve SPEC`")
    return create_app(load_spec(spec), os.environ.get("RANKSTACK_API_KEY") or None)
