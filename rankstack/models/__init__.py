"""Model directories and ONNX export shared by every neural stage (dense, re-ranking, late interaction).

Stage packages sit side by side and never import each other, so what they share about loading a
Hugging Face model directory, importing torch lazily and exporting to ONNX lives here, one layer below.
"""
