"""Serving: a pipeline from a TOML spec (``spec.py``) behind a FastAPI app with a search page (``app.py``).

``rankstack serve SPEC`` runs it with uvicorn; FastAPI, uvicorn and prometheus-client come with the ``[serve]`` extra
and are imported only by ``app.py``.
"""

from rankstack.serve.spec import Limits, ServedPipeline, SpecError, load_spec

__all__ = ["Limits", "ServedPipeline", "SpecError", "create_app", "load_spec"]


def __getattr__(name: str):
    if name == "create_app":
        from rankstack.serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
