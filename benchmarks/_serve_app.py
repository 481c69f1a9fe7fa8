"""One server for ``bench_serve.py``, in its own process: ``--kind constant | bm25s | rankstack``.

``constant`` is a bare FastAPI endpoint that returns a fixed answer (the floor of the framework and the client);
``bm25s`` answers ``GET /search?q=&k=`` with bm25s (tokenize + retrieve, numba backend, one thread) behind the same
FastAPI app shape; ``rankstack`` is ``rankstack.serve.create_app`` over a spec or index.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def constant_app():
    import fastapi

    app = fastapi.FastAPI()
    answer = {"query": "", "hits": [{"rank": i + 1, "docid": f"d{i}", "score": 1.0 / (i + 1)} for i in range(10)]}

    @app.get("/search")
    def search(q: str = "", k: int = 10):
        return answer

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def bm25s_app(index_dir: Path):
    import bm25s
    import fastapi
    import numba
    from bench_bm25 import _bm25s_stemmer, bm25s_load

    numba.set_num_threads(1)
    retriever, docids = bm25s_load(index_dir, "numba")
    stemmer = _bm25s_stemmer()
    app = fastapi.FastAPI()

    def retrieve(q: str, k: int):
        tokens = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
        return retriever.retrieve(tokens, corpus=docids, k=min(k, len(docids)), n_threads=1, show_progress=False)

    retrieve("warm up the numba kernels", 10)

    @app.get("/search")
    def search(q: str = "", k: int = 10):
        docs, scores = retrieve(q, k)
        hits = [{"rank": i + 1, "docid": str(d), "score": float(s)} for i, (d, s) in enumerate(zip(docs[0], scores[0]))]
        return {"query": q, "hits": hits}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["constant", "bm25s", "rankstack"], required=True)
    ap.add_argument("--path", type=Path, help="bm25s index folder, or a rankstack spec / index")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    import uvicorn

    if args.kind == "constant":
        app = constant_app()
    elif args.kind == "bm25s":
        app = bm25s_app(args.path)
    else:
        from rankstack.serve import create_app, load_spec

        pipeline = load_spec(args.path)
        from rankstack.types import Queries

        for _ in range(20):  # past the first calls numpy answers: the compiled kernels are loaded now
            pipeline.run(Queries(["w"], ["warm up the compiled kernels"]), 10)
        app = create_app(pipeline)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
