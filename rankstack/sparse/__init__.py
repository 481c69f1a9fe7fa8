"""Sparse retrieval: BM25 and impact scoring with dynamic pruning, pseudo-relevance feedback."""

from rankstack.sparse.bm25 import BM25, lucene_idf
from rankstack.sparse.impact import Impact, SparseEncoder, pretokenized
from rankstack.sparse.rm3 import RM3

__all__ = ["BM25", "RM3", "Impact", "SparseEncoder", "lucene_idf", "pretokenized"]
