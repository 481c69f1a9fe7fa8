"""A seq2seq re-ranker warm-started from an encoder (BERT2BERT): what it keeps, how it scores, that it learns."""

from __future__ import annotations

import warnings

import pytest

from rankstack.models.model_dir import ModelDirectoryError
from rankstack.rerank import MonoT5
from rankstack.train.rerank import RerankerTrainer
from rankstack.train.warmstart import seq2seq_from_encoder
from tests.rerank.conftest import minilm_path, tiny_bert_config, toy_docs, toy_queries
from tests.rerank.test_t5 import ref_mono
from tests.train.test_rerank import CONFIG, positive_rank_loss, toy_set

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A 3-layer random BERT encoder (no head) with MiniLM's tokenizer."""
    path = tmp_path_factory.mktemp("encoder") / "model"
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    transformers.BertModel(tiny_bert_config(tokenizer.vocab_size, num_hidden_layers=3)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def seq2seq(encoder, tmp_path_factory):
    return seq2seq_from_encoder(encoder, tmp_path_factory.mktemp("s2s") / "model", decoder_layers=2)


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.AutoModelForSeq2SeqLM.from_pretrained(path)


def test_the_encoder_is_kept_and_the_decoder_starts_from_its_lower_layers(encoder, seq2seq):
    source = transformers.BertModel.from_pretrained(encoder).state_dict()
    model = _load(seq2seq)
    tokenizer = transformers.AutoTokenizer.from_pretrained(seq2seq)
    assert model.config.decoder_start_token_id == tokenizer.cls_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    enc = model.encoder.state_dict()
    for name, value in source.items():
        if name in enc:
            assert torch.equal(enc[name], value), name
    layers = model.decoder.bert.encoder.layer
    assert len(layers) == 2 and all(layer.crossattention is not None for layer in layers)
    for i in range(2):
        assert torch.equal(layers[i].attention.self.query.weight, source[f"encoder.layer.{i}.attention.self.query.weight"])
    # "true"/"false" are read through the word embeddings (tied output projection)
    out = model.decoder.get_output_embeddings().weight
    assert torch.equal(out, model.decoder.bert.embeddings.word_embeddings.weight)


def test_mono_t5_scores_it_like_a_plain_loop_and_it_learns(seq2seq, tmp_path):
    mono = MonoT5(seq2seq, device="cpu", cache=False)
    docs = [d.contents() for d in toy_docs()][:3]
    query = toy_queries().text.tolist()[0]
    got = mono.score_pairs([query] * 3, docs)
    want = [ref_mono(seq2seq, query, d) for d in docs]
    assert got == pytest.approx(want, abs=1e-5)
    before = positive_rank_loss(mono)
    RerankerTrainer(mono, toy_set(), CONFIG.replace(loss="lce", epochs=10), tmp_path / "run").train()
    assert positive_rank_loss(mono) < before - 0.5


def test_bad_settings_are_refused(encoder, tmp_path):
    with pytest.raises(ValueError, match="between 1 and 3"):
        seq2seq_from_encoder(encoder, tmp_path / "x", decoder_layers=4)
    with pytest.raises(ModelDirectoryError):
        seq2seq_from_encoder(tmp_path / "missing", tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
