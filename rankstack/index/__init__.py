"""On-disk index formats: manifest, inverted index with segments, document store."""

from rankstack.index.inverted import (
    CollectionStats,
    InvertedIndex,
    Segment,
    build_inverted_index,
    decode_norm,
    encode_norm,
    open_index,
)
from rankstack.index.vectors import AnnConfig, VectorIndex, write_vector_index

__all__ = [
    "AnnConfig",
    "CollectionStats",
    "InvertedIndex",
    "Segment",
    "VectorIndex",
    "build_inverted_index",
    "decode_norm",
    "encode_norm",
    "open_index",
    "write_vector_index",
]
