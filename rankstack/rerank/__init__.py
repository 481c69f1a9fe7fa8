"""Re-ranking stages: a ranking in, the same documents re-scored by a model out.

Pointwise (``CrossEncoder`` = monoBERT, ``MonoT5``, ``QueryLikelihood``), pairwise (``DuoCrossEncoder`` =
duoBERT, ``DuoT5``), long documents (``PassageReranker``: FirstP / MaxP / SumP / PCGM; ``Birch``) and query
expansion (``BertQE``); interaction models over token embeddings (``InteractionReranker``: KNRM, Conv-KNRM,
DRMM, MatchPyramid, DUET, DSSM) CEDR's heads over a cross-encoder's per-layer similarity matrices, and the cascade transformer
(``CascadeCrossEncoder``: early exits drop candidates before the top layers). Importing this package needs no torch; a model loads it when it is built (extra
``[neural]``).
"""

from rankstack.rerank.base import MissingDocumentsError, PointwiseReranker, Reranker
from rankstack.rerank.bertqe import BertQE
from rankstack.rerank.birch import Birch
from rankstack.rerank.cascade import CascadeCrossEncoder
from rankstack.rerank.cedr import CEDR
from rankstack.rerank.cross import CrossEncoder
from rankstack.rerank.duo import DuoCrossEncoder, PairwiseReranker, aggregate_preferences
from rankstack.rerank.interaction import InteractionReranker
from rankstack.rerank.passages import PassageReranker, cumulative_gain, split_sentences, split_tokens, split_words
from rankstack.rerank.qlm import QueryLikelihood
from rankstack.rerank.registry import FAMILIES, detect_family, load_reranker
from rankstack.rerank.t5 import DuoT5, MonoT5
from rankstack.rerank.texts import DocumentTexts

__all__ = [
    "CEDR",
    "FAMILIES",
    "BertQE",
    "Birch",
    "CascadeCrossEncoder",
    "CrossEncoder",
    "DocumentTexts",
    "DuoCrossEncoder",
    "DuoT5",
    "InteractionReranker",
    "MissingDocumentsError",
    "MonoT5",
    "PairwiseReranker",
    "PassageReranker",
    "PointwiseReranker",
    "QueryLikelihood",
    "Reranker",
    "aggregate_preferences",
    "cumulative_gain",
    "detect_family",
    "load_reranker",
    "split_sentences",
    "split_tokens",
    "split_words",
]
