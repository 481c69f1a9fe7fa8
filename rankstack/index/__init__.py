"""On-disk index formats: manifest, inverted index with segments, document store."""

from rankstack.index.inverted import (
    CollectionStats,
    InvertedIndex,
    Segment,
    build_impact_index,
    build_inverted_index,
    build_term_index,
    decode_norm,
    encode_norm,
    open_index,
)

_VECTORS = ("AnnConfig", "VectorIndex", "write_vector_index")


def __getattr__(name: str):
    """The vector index loads on first use: its compiled selection kernels would slow every BM25-only
    process's start."""
    if name in _VECTORS:
        from rankstack.index import vectors

        return getattr(vectors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnnConfig",
    "CollectionStats",
    "InvertedIndex",
    "Segment",
    "VectorIndex",
    "build_impact_index",
    "build_inverted_index",
    "build_term_index",
    "decode_norm",
    "encode_norm",
    "open_index",
    "write_vector_index",
]
