"""A tokenizer and the input embedding matrix that belongs to it: what the MatchZoo family of models reads.

No GloVe download is needed: the vectors come from a model that ships inside a package or sits in a directory.

- a **Hugging Face encoder** (directory or Hub id; ``minilm`` is the packaged all-MiniLM-L6-v2, WordPiece,
  30,522 x 384): its input (word) embedding matrix, the vectors before position embeddings and layers;
- a **Model2Vec static model** (``config.json``, ``model.safetensors`` holding ``embeddings`` and, when
  vocabulary-quantised, ``mapping`` and ``weights``, ``tokenizer.json``; ``static-model`` is the packaged
  ``tokenlearn-static-model``): token ``i``'s vector is ``embeddings[mapping[i]] * weights[i]``, exactly what
  ``model2vec.StaticModel`` computes, read here with safetensors and tokenizers (no model2vec import needed).

Tokens are the tokenizer's own (no [CLS]/[SEP]); tokens made only of punctuation are dropped by default, since
an interaction model would otherwise spend kernels on every document's full stops.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.models import lazy, model_dir
from rankstack.models.model_dir import ModelDirectoryError


def _is_punctuation(token: str) -> bool:
    core = token.lstrip("▁Ġ#")
    return bool(core) and all(unicodedata.category(c).startswith(("P", "S")) for c in core)


class Vocabulary:
    """``tokenizer`` (a ``tokenizers.Tokenizer``) and ``matrix`` (float32 ``[vocab, dim]``) from ``source``.

    ``check=False`` skips the size check, for a checkpoint whose matrix sits in its weights (``check_size``
    runs when they are read)."""

    def __init__(self, tokenizer: Any, matrix: np.ndarray, source: str, check: bool = True):
        self.tokenizer, self.matrix, self.source = tokenizer, matrix, source
        self.size = int(tokenizer.get_vocab_size(with_added_tokens=True))
        if check:
            self.check_size(len(matrix))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.punctuation = np.zeros(self.size, dtype=bool)
        for token, i in tokenizer.get_vocab(with_added_tokens=True).items():
            if i < self.size and _is_punctuation(token):
                self.punctuation[i] = True

    def check_size(self, rows: int) -> None:
        """Refuse an embedding matrix with fewer rows than the tokenizer has tokens (another model's tokenizer)."""
        if self.size > rows:
            raise ModelDirectoryError(
                f"the tokenizer of {self.source} has {self.size:,} tokens but the embedding matrix only {rows:,} rows: "
                "the tokenizer belongs to another model; save the model and its tokenizer together"
            )

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def ids(self, texts: Sequence[str], limit: int, skip_punctuation: bool = True) -> tuple[list[list[int]], int]:
        """Token ids of each text, at most ``limit`` of them, and how many texts were cut."""
        out, cut = [], 0
        for enc in self.tokenizer.encode_batch(list(texts), add_special_tokens=False):
            ids = [i for i in enc.ids if not self.punctuation[i]] if skip_punctuation else list(enc.ids)
            cut += len(ids) > limit
            out.append(ids[:limit])
        return out, cut

    @classmethod
    def load(cls, model: str | os.PathLike[str]) -> Vocabulary:
        """The vocabulary of ``model``: a packaged name, a Model2Vec directory, or a Hugging Face encoder."""
        path, _ = model_dir.resolve(model)
        weights = path / "model.safetensors"
        if weights.exists() and _is_static(weights):
            return cls(_file_tokenizer(path), static_matrix(weights), str(model))
        model_dir.check_directory(path)
        transformers = lazy.transformers()
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        if not getattr(tokenizer, "is_fast", False):
            raise ModelDirectoryError(f"{path} has only a slow tokenizer; interaction models need a tokenizer.json")
        encoder, _ = lazy.from_pretrained_quietly(transformers.AutoModel, path, **model_dir.encoder_kwargs(path))
        matrix = encoder.get_input_embeddings().weight.detach().float().numpy().copy()
        return cls(tokenizer.backend_tokenizer, matrix, str(model))


def _is_static(weights: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(weights), framework="numpy") as f:
        return "embeddings" in set(f.keys())


def _file_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    if not (path / "tokenizer.json").exists():
        raise ModelDirectoryError(f"{path} has no tokenizer.json; a static embedding model needs its tokenizer")
    return Tokenizer.from_file(str(path / "tokenizer.json"))


def static_matrix(weights: Path) -> np.ndarray:
    """A Model2Vec model's per-token vectors (module docstring), float32."""
    from safetensors.numpy import load_file

    parts = load_file(str(weights))
    table = parts["embeddings"].astype(np.float32)
    mapping = parts.get("mapping")
    matrix = table[mapping] if mapping is not None else table
    if "weights" in parts:
        matrix = matrix * parts["weights"].astype(np.float32)[:, None]
    return np.ascontiguousarray(matrix, dtype=np.float32)
