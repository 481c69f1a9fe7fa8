"""Late interaction: ColBERT (token encoder, MaxSim, PLAID search, re-ranker) and the re-rankers with cached
document sides (PreTTR, DC-BERT, poly-encoder, MORES), and phrase retrieval."""

from rankstack.late.colbert import ColBERTEncoder, ColBERTSettings
from rankstack.late.decoupled import DCBert, Mores, PolyEncoder, PreTTR, load_decoupled
from rankstack.late.interaction import maxsim, maxsim_packed, pack
from rankstack.late.phrases import PhraseEncoder, PhraseIndexSearcher, build_phrase_index
from rankstack.late.plaid import PlaidSettings
from rankstack.late.rerank import ColBERTReranker
from rankstack.late.retriever import ColBERT, build_colbert_index

__all__ = [
    "ColBERT",
    "ColBERTEncoder",
    "ColBERTReranker",
    "ColBERTSettings",
    "DCBert",
    "Mores",
    "PhraseEncoder",
    "PhraseIndexSearcher",
    "PlaidSettings",
    "PolyEncoder",
    "PreTTR",
    "build_colbert_index",
    "build_phrase_index",
    "load_decoupled",
    "maxsim",
    "maxsim_packed",
    "pack",
]
