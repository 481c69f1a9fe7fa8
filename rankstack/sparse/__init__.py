"""Sparse retrieval: BM25 and impact scoring with dynamic pruning, pseudo-relevance feedback."""

from rankstack.index.stages import register_stage
from rankstack.sparse.bm25 import BM25, lucene_idf
from rankstack.sparse.impact import Impact, SparseEncoder, pretokenized
from rankstack.sparse.rm3 import RM3

register_stage("bm25", BM25)

_LAZY = {
    "DeepCT": "rankstack.sparse.deepct",
    "Doc2Query": "rankstack.sparse.doc2query",
    "Splade": "rankstack.sparse.splade",
    "UniCoil": "rankstack.sparse.unicoil",
    "packaged_splade_tiny": "rankstack.sparse.splade",
    "load_splade": "rankstack.sparse.splade",
}


def __getattr__(name: str):
    """The neural encoders load torch: only when asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["BM25", "RM3", "Doc2Query", "Impact", "SparseEncoder", "Splade", "UniCoil", "load_splade", "lucene_idf", "packaged_splade_tiny", "pretokenized"]
