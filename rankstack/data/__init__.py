"""Reading corpora, queries and qrels, and opening named test collections (see ``load_collection``)."""

from rankstack.data.collections import (
    BEIR_LAYOUT,
    MSMARCO_PASSAGE_LAYOUT,
    REGISTRY,
    Collection,
    CollectionInfo,
    CollectionNotFoundError,
    Layout,
    cache_dir,
    data_dirs,
    load_collection,
)
from rankstack.data.download import SOURCE_RECORD, ChecksumError, DownloadError, download_and_extract, fetch
from rankstack.data.readers import (
    CorpusFormat,
    FileCorpus,
    QueriesFormat,
    check_duplicates,
    detect_format,
    iter_with_lines,
    read_corpus,
    read_qrels,
    read_queries,
)
from rankstack.data.trec import iter_trec_documents, iter_trec_topics

__all__ = [
    "BEIR_LAYOUT",
    "MSMARCO_PASSAGE_LAYOUT",
    "REGISTRY",
    "SOURCE_RECORD",
    "ChecksumError",
    "Collection",
    "CollectionInfo",
    "CollectionNotFoundError",
    "CorpusFormat",
    "DownloadError",
    "FileCorpus",
    "Layout",
    "QueriesFormat",
    "cache_dir",
    "check_duplicates",
    "data_dirs",
    "detect_format",
    "download_and_extract",
    "fetch",
    "iter_trec_documents",
    "iter_trec_topics",
    "iter_with_lines",
    "load_collection",
    "read_corpus",
    "read_qrels",
    "read_queries",
]
