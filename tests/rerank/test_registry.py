"""``load_reranker``: the family comes from the checkpoint (saved settings, else its config), never its name."""

from __future__ import annotations

import warnings

import pytest

from rankstack.models.model_dir import ModelDirectoryError
from rankstack.rerank import CrossEncoder, DuoCrossEncoder, MonoT5, QueryLikelihood, detect_family, load_reranker
from tests.rerank.conftest import make_tiny_cross_encoder, minilm_path
from tests.rerank.test_duo import make_tiny_duo
from tests.rerank.test_qlm import make_tiny_gpt2
from tests.rerank.test_t5 import make_tiny_t5


def test_the_family_is_read_from_the_checkpoint(tmp_path):
    ce = make_tiny_cross_encoder(tmp_path / "t5-small")  # a misleading name: the config decides
    assert detect_family(ce) == "monoBERT" and isinstance(load_reranker(ce), CrossEncoder)
    assert isinstance(load_reranker(make_tiny_t5(tmp_path / "cross-encoder")), MonoT5)
    assert isinstance(load_reranker(make_tiny_gpt2(tmp_path / "gpt")), QueryLikelihood)
    # a duoBERT checkpoint looks like a two-class cross-encoder; saved by rankstack it says what it is
    duo_dir = make_tiny_duo(tmp_path / "duo-src")
    DuoCrossEncoder(duo_dir).save(tmp_path / "duo")
    assert detect_family(tmp_path / "duo") == "duoBERT"
    assert isinstance(load_reranker(tmp_path / "duo"), DuoCrossEncoder)
    assert isinstance(load_reranker(duo_dir, family="duoBERT"), DuoCrossEncoder)


def test_a_bare_encoder_or_an_unknown_family_is_refused(tmp_path):
    with pytest.raises(ModelDirectoryError, match="no head that scores relevance"):
        load_reranker(minilm_path())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert isinstance(load_reranker(minilm_path(), family="monoBERT"), CrossEncoder)
    with pytest.raises(ValueError, match="family must be one of"):
        load_reranker(minilm_path(), family="colbert")


def test_cross_encoder_refuses_other_families_directories(tmp_path):
    with pytest.raises(ModelDirectoryError, match="sequence-to-sequence"):
        CrossEncoder(make_tiny_t5(tmp_path / "t5"))
    DuoCrossEncoder(make_tiny_duo(tmp_path / "src")).save(tmp_path / "duo")
    with pytest.raises(ModelDirectoryError, match="duoBERT"):
        CrossEncoder(tmp_path / "duo")
    with pytest.raises(ModelDirectoryError, match="no trained classification head"):
        CrossEncoder(minilm_path(), require_head=True)


def test_cross_encoder_saves_its_window_and_a_bare_two_class_head_has_two_labels(tmp_path):
    ce = CrossEncoder(make_tiny_cross_encoder(tmp_path / "m"), max_length=64)
    assert ce.query_max_length == 32
    ce.save(tmp_path / "saved")
    again = CrossEncoder(tmp_path / "saved")
    assert (again.max_length, again.query_max_length) == (64, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = CrossEncoder(minilm_path(), head="two-class")
    assert two.num_labels == 2 and two.fresh_head


def test_a_stale_onnx_export_is_refused(tmp_path):
    import torch

    path = make_tiny_cross_encoder(tmp_path / "m")
    CrossEncoder(path).export_onnx(quantize=False)
    CrossEncoder(path, backend="onnx", quantized=False)  # fresh: opens
    ce = CrossEncoder(path)
    with torch.no_grad():
        ce.model.classifier.bias.add_(1.0)
    ce.save(path)
    with pytest.raises(ModelDirectoryError, match="exported from other weights"):
        CrossEncoder(path, backend="onnx", quantized=False)
