"""Bi-encoder training: losses, training examples, hard-negative mining, denoising, ICT, the training loop."""

from rankstack.train.losses import InBatchContrastiveLoss, MarginMSELoss

__all__ = ["InBatchContrastiveLoss", "MarginMSELoss"]
