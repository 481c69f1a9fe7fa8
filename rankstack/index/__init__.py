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

__all__ = [
    "CollectionStats",
    "InvertedIndex",
    "Segment",
    "build_inverted_index",
    "decode_norm",
    "encode_norm",
    "open_index",
]
