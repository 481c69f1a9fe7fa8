"""rankstack: retrieval pipelines over pretrained language models. This module only re-exports."""

from rankstack.errors import (
    IndexFormatError,
    InputFormatError,
    MissingExtraError,
    RankstackError,
    UnknownCollectionError,
)
from rankstack.pipeline import Stage
from rankstack.types import Corpus, Document, Qrels, Queries, Ranking

__version__ = "0.1.0"


def open(path, verify: bool = True):
    """Open an index directory, returning the index class its manifest names.

    ``verify`` checks every file's checksum (CRC-32, fast); pass False to skip it for an index you just
    wrote. Use it in a ``with`` block (or call ``close()``) so writers can reclaim what it read."""
    from rankstack.index import open_index

    return open_index(path, verify=verify)


__all__ = [
    "Corpus",
    "Document",
    "IndexFormatError",
    "InputFormatError",
    "MissingExtraError",
    "Qrels",
    "Queries",
    "Ranking",
    "RankstackError",
    "Stage",
    "UnknownCollectionError",
    "open",
]
