"""Reader-to-retriever distillation: a bi-encoder learns a teacher's preferences with no qrels."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.dense import BiEncoder
from rankstack.train import TrainConfig, distill_retriever
from rankstack.train.losses import kl_distillation
from rankstack.types import Ranking
from tests.dense.conftest import make_tiny_model
from tests.helpers import Fixed
from tests.rerank.conftest import toy_docs, toy_queries

torch = pytest.importorskip("torch")


class Prefers(Fixed):
    """A teacher that re-ranks any ranking by a fixed preference: the cat and dog documents first."""

    def __init__(self):
        super().__init__("prefers", [])

    def __call__(self, inp):
        scores = [3.0 if d in ("d0", "d1") else 0.0 for d in inp.docid.tolist()]
        return Ranking(inp.qid, inp.docid, scores, queries=inp.queries)


def kl_to_teacher(encoder) -> float:
    docs = toy_docs()
    d = encoder.encode_docs(docs)
    q = encoder.encode_queries(toy_queries().text.tolist())
    student = torch.tensor(q @ d.T * 20.0)
    teacher = torch.tensor([[3.0 if doc.docid in ("d0", "d1") else 0.0 for doc in docs]] * len(q))
    return float(kl_distillation(student, teacher, torch.ones_like(student, dtype=torch.bool)))


def test_distillation_moves_the_retriever_towards_the_teacher_without_qrels(tmp_path):
    encoder = BiEncoder(make_tiny_model(tmp_path / "m"))
    before = kl_to_teacher(encoder)
    config = TrainConfig(epochs=8, batch_size=4, learning_rate=2e-3, num_negatives=5, show_progress=False, log_every=0)
    final = distill_retriever(encoder, toy_queries(), toy_docs(), Prefers(), tmp_path / "run", config=config, depth=12,
                              first_stage=Fixed("all", [(q, d.docid, 1.0) for q in toy_queries().qid.tolist()
                                                        for d in toy_docs()]))  # fmt: skip
    assert kl_to_teacher(encoder) < before - 0.1
    assert (final / "config.json").exists()
    np.testing.assert_allclose(BiEncoder(final).encode_queries(["cat"]), encoder.encode_queries(["cat"]), atol=1e-5)


def test_distillation_refuses_a_first_stage_with_nothing_to_compare(tmp_path):
    encoder = BiEncoder(make_tiny_model(tmp_path / "m"))
    lonely = Fixed("one", [("q0", "d0", 1.0)])
    with pytest.raises(ValueError, match="fewer than two candidates"):
        distill_retriever(encoder, toy_queries(), toy_docs(), Prefers(), tmp_path / "run", first_stage=lonely)
