"""Dense retrieval: bi-encoders over transformers, vector indexes, the DenseRetriever stage.

Importing this package needs no torch; encoders import it when they are built (extra ``[neural]``).
"""

from rankstack.dense.encoder import BiEncoder, TextEncoder
from rankstack.dense.retriever import DenseRetriever, build_dense_index
from rankstack.index.stages import register_stage
from rankstack.models.onnx import export_onnx

register_stage("dense", DenseRetriever)

__all__ = ["BiEncoder", "DenseRetriever", "TextEncoder", "build_dense_index", "export_onnx"]
