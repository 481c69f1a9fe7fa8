"""``rankstack serve SPEC --ray-serve``: the same FastAPI app as a Ray Serve deployment.

Each replica builds the app from the spec when it starts (a builder, so opened indexes and models are never
pickled); Ray Serve's proxy routes HTTP to the replicas, which may sit on other nodes of the cluster (each needs
the spec's paths). Needs ``ray[serve]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def deployment(spec: str | Path, api_key: str | None = None, replicas: int = 1) -> Any:
    """A bound Ray Serve application serving ``spec`` with ``replicas`` replicas."""
    try:
        from ray import serve
    except ImportError:
        raise ImportError("--ray-serve needs Ray Serve: pip install 'ray[serve]'") from None
    spec = str(Path(spec).resolve())

    def build() -> Any:
        from rankstack.serve.app import create_app
        from rankstack.serve.spec import load_spec

        return create_app(load_spec(spec), api_key)

    cls = serve.ingress(build)(type("RankstackServe", (), {}))
    return serve.deployment(cls, name="rankstack", num_replicas=replicas).bind()


def run(spec: str | Path, host: str, port: int, api_key: str | None = None, replicas: int = 1, blocking: bool = True) -> Any:
    """Start Ray Serve's HTTP proxy on ``host:port`` (Ray initialised here if it is not) and deploy ``spec``.
    With ``blocking=False`` it returns once ``/healthz`` answers (the proxy can start listening after the
    deployment is ready), so a caller's first request is not refused."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": host, "port": port})
    handle = serve.run(deployment(spec, api_key, replicas), name="rankstack", route_prefix="/", blocking=blocking)
    if not blocking:
        _wait_until_serving("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)
    return handle


def _wait_until_serving(host: str, port: int, timeout: float = 120.0) -> None:
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray Serve deployed rankstack but http://{host}:{port}/healthz did not answer within "
                               f"{timeout:.0f} s; see Ray's logs (/tmp/ray/session_latest/logs)")  # fmt: skip
        time.sleep(0.25)
