"""A server stopped with SIGTERM (what process managers send) finishes the request in flight first."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.serve.conftest import write_spec

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")


def test_sigterm_lets_the_request_in_flight_finish(served, minilm_cross_encoder):
    spec = write_spec(
        served,
        f'[retrievers.bm25]\nindex = "toy"\n[[rerankers]]\nmodel = "{minilm_cross_encoder}"\ndepth = 3\ncache = false\n'
        "[limits]\nmax_batch = 200\n",
        "slow.toml",
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "rankstack.cli", "serve", str(spec), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        answer: dict = {}
        body = {"queries": [f"where does the {a} live near the river" for a in ["cat", "dog", "owl", "fox"] * 40], "k": 3}

        def ask():
            answer["response"] = httpx.post(url + "/search", json=body, timeout=120)

        asking = threading.Thread(target=ask)
        asking.start()
        time.sleep(1.0)  # the batch (480 MiniLM pairs) is being scored
        server.send_signal(signal.SIGTERM)
        asking.join(timeout=120)
        response = answer["response"]
        assert response.status_code == 200 and len(response.json()["results"]) == 160
        # then it stops by itself (uvicorn re-raises the signal once its graceful shutdown is done)
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()


@pytest.fixture(scope="module")
def minilm_cross_encoder(tmp_path_factory):
    """all-MiniLM-L6-v2 with a fresh one-logit head: slow enough on CPU to keep a request in flight."""
    transformers = pytest.importorskip("transformers")
    from tests.rerank.conftest import minilm_path

    path = tmp_path_factory.mktemp("ce") / "minilm-ce"
    transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=1).save_pretrained(path)
    transformers.AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(path)
    return path
