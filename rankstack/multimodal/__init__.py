"""Multimodal retrieval: text-image dual encoders (CLIP, SigLIP, open_clip, and a composite of an image tower and a
text encoder trained here LiT-style), text->image and image->text search over the vector index, zero-shot
classification, the text-proxy baseline and a vision-language cross-encoder re-ranker. Importing this package needs
no torch; models load it when built (extra ``[multimodal]``).
"""

from rankstack.index.stages import register_stage
from rankstack.multimodal.collection import ImageCollection
from rankstack.multimodal.dual import (
    CompositeDualEncoder,
    DualEncoder,
    HFDualEncoder,
    OpenCLIPDualEncoder,
    load_dual_encoder,
)
from rankstack.multimodal.images import ImageBatches, ImageError, ImageTransform, open_image
from rankstack.multimodal.proxy import TextProxy
from rankstack.multimodal.retriever import MultimodalRetriever, build_image_index, build_text_index
from rankstack.multimodal.towers import EfficientNetTower, imagenet_class_names
from rankstack.multimodal.vl import ViltScorer, VLCrossEncoder, VLReranker, load_vl_scorer
from rankstack.multimodal.zero_shot import ZeroShotClassifier

register_stage("multimodal", MultimodalRetriever)

__all__ = [
    "CompositeDualEncoder",
    "DualEncoder",
    "EfficientNetTower",
    "HFDualEncoder",
    "ImageBatches",
    "ImageCollection",
    "ImageError",
    "ImageTransform",
    "MultimodalRetriever",
    "OpenCLIPDualEncoder",
    "TextProxy",
    "VLCrossEncoder",
    "VLReranker",
    "ViltScorer",
    "ZeroShotClassifier",
    "build_image_index",
    "build_text_index",
    "imagenet_class_names",
    "load_dual_encoder",
    "load_vl_scorer",
    "open_image",
]
