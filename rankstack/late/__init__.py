"""Late interaction: ColBERT token encoders, MaxSim, the compressed token index's search and the stages."""

from rankstack.late.colbert import ColBERTEncoder, ColBERTSettings
from rankstack.late.interaction import maxsim, maxsim_packed, pack
from rankstack.late.plaid import PlaidSettings
from rankstack.late.rerank import ColBERTReranker
from rankstack.late.retriever import ColBERT, build_colbert_index

__all__ = [
    "ColBERT",
    "ColBERTEncoder",
    "ColBERTReranker",
    "ColBERTSettings",
    "PlaidSettings",
    "build_colbert_index",
    "maxsim",
    "maxsim_packed",
    "pack",
]
