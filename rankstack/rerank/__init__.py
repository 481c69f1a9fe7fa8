"""Re-ranking stages: a ranking in, the same documents re-scored by a model out.

Importing this package needs no torch; a model loads it when it is built (extra ``[neural]``).
"""

from rankstack.rerank.base import MissingDocumentsError, PointwiseReranker, Reranker
from rankstack.rerank.cross import CrossEncoder
from rankstack.rerank.texts import DocumentTexts

__all__ = ["CrossEncoder", "DocumentTexts", "MissingDocumentsError", "PointwiseReranker", "Reranker"]
