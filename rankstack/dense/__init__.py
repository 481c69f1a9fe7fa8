"""Dense retrieval: bi-encoders over transformers, vector indexes, the DenseRetriever stage."""
