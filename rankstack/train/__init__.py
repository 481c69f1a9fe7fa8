"""Bi-encoder training: losses, training examples, hard-negative mining, denoising, ICT, the training loop."""

from rankstack.train.api import train_biencoder
from rankstack.train.checkpoint import CheckpointError
from rankstack.train.examples import Example, TrainingSet, bm25_negatives, doc_texts
from rankstack.train.ict import ict_pairs, split_sentences
from rankstack.train.losses import InBatchContrastiveLoss, MarginMSELoss
from rankstack.train.negatives import AnceRefresh, denoise, dense_negatives, exact_top_k
from rankstack.train.scoring import BiEncoderScorer, Scorer, score_pools
from rankstack.train.trainer import TrainConfig, Trainer, TrainingStateError

__all__ = [
    "AnceRefresh",
    "BiEncoderScorer",
    "CheckpointError",
    "Example",
    "InBatchContrastiveLoss",
    "MarginMSELoss",
    "Scorer",
    "TrainConfig",
    "Trainer",
    "TrainingSet",
    "TrainingStateError",
    "bm25_negatives",
    "denoise",
    "dense_negatives",
    "doc_texts",
    "exact_top_k",
    "ict_pairs",
    "score_pools",
    "split_sentences",
    "train_biencoder",
]
