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
_TOKENS = ("TokenIndex", "build_token_index")


def __getattr__(name: str):
    """The vector and token indexes load on first use: their compiled kernels would slow every BM25-only
    process's start."""
    if name in _VECTORS:
        from rankstack.index import vectors

        return getattr(vectors, name)
    if name in _TOKENS:
        from rankstack.index import tokens

        return getattr(tokens, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnnConfig",
    "CollectionStats",
    "InvertedIndex",
    "Segment",
    "TokenIndex",
    "VectorIndex",
    "build_impact_index",
    "build_inverted_index",
    "build_term_index",
    "build_token_index",
    "decode_norm",
    "encode_norm",
    "open_index",
    "write_vector_index",
]
