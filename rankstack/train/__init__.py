"""Training every trainable stage: bi-encoders and re-rankers share one loop, losses, examples and mining."""

from rankstack.train.api import train_biencoder
from rankstack.train.checkpoint import CheckpointError
from rankstack.train.colbert import ColBERTConfig, ColBERTTrainer, train_colbert
from rankstack.train.deepct import DeepCTTrainer, train_deepct
from rankstack.train.distill import DistillationTrainer, distill_retriever
from rankstack.train.doc2query import Doc2QueryConfig, Doc2QueryTrainer, train_doc2query
from rankstack.train.examples import Example, TrainingSet, bm25_negatives, doc_texts
from rankstack.train.ict import ict_pairs, split_sentences
from rankstack.train.losses import InBatchContrastiveLoss, MarginMSELoss
from rankstack.train.negatives import AnceRefresh, denoise, dense_negatives, exact_top_k
from rankstack.train.phrases import PhraseTrainer, train_phrases
from rankstack.train.prop import PropConfig, PropTrainer, pretrain_prop
from rankstack.train.rerank import RerankConfig, RerankerTrainer, train_reranker
from rankstack.train.scoring import BiEncoderScorer, PairModel, Scorer, score_pools
from rankstack.train.splade import SpladeConfig, SpladeTrainer, train_splade
from rankstack.train.trainer import TrainConfig, Trainer, TrainingLoop, TrainingStateError
from rankstack.train.tune import BirchTuning, tune_birch
from rankstack.train.warmstart import seq2seq_from_encoder
from rankstack.train.weak import SelectiveRerankerTrainer, pseudo_queries, train_weakly

__all__ = [
    "AnceRefresh",
    "BiEncoderScorer",
    "BirchTuning",
    "CheckpointError",
    "ColBERTConfig",
    "ColBERTTrainer",
    "DeepCTTrainer",
    "DistillationTrainer",
    "Doc2QueryConfig",
    "Doc2QueryTrainer",
    "Example",
    "InBatchContrastiveLoss",
    "MarginMSELoss",
    "PairModel",
    "PhraseTrainer",
    "PropConfig",
    "PropTrainer",
    "RerankConfig",
    "RerankerTrainer",
    "Scorer",
    "SelectiveRerankerTrainer",
    "SpladeConfig",
    "SpladeTrainer",
    "TrainConfig",
    "Trainer",
    "TrainingLoop",
    "TrainingSet",
    "TrainingStateError",
    "bm25_negatives",
    "denoise",
    "dense_negatives",
    "distill_retriever",
    "doc_texts",
    "exact_top_k",
    "ict_pairs",
    "pretrain_prop",
    "pseudo_queries",
    "score_pools",
    "seq2seq_from_encoder",
    "split_sentences",
    "train_biencoder",
    "train_colbert",
    "train_deepct",
    "train_doc2query",
    "train_phrases",
    "train_reranker",
    "train_splade",
    "train_weakly",
    "tune_birch",
]
