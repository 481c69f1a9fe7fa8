"""A sequence-to-sequence re-ranker warm-started from an encoder, for when no T5 checkpoint is at hand.

monoT5's recipe needs only *a* sequence-to-sequence model that can answer "true" or "false"; on a machine
that cannot download T5 weights the packaged encoders still give it a head start. Rothe, Narayan & Severyn
(2020), "Leveraging Pre-trained Checkpoints for Sequence Generation Tasks", warm-start both sides of an
encoder-decoder from one BERT checkpoint (BERT2BERT): the encoder is the checkpoint, the decoder its first
``decoder_layers`` layers with fresh cross-attention, and the output projection is tied to the word
embeddings, so "true" and "false" start as the checkpoint's own embeddings of those words.
``seq2seq_from_encoder`` writes that as an ordinary Hugging Face directory, which ``MonoT5``, ``DuoT5`` and
``QueryLikelihood`` load like any seq2seq checkpoint and ``train_reranker`` trains.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from rankstack.models import lazy, model_dir


def seq2seq_from_encoder(
    encoder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    decoder_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a BERT2BERT encoder-decoder made from ``encoder`` (a BERT-style directory or Hub id) to ``out``.

    The decoder keeps the encoder's first ``decoder_layers`` layers (its cost per decoded token is that of
    a ``decoder_layers``-layer encoder, and a re-ranker decodes one token); its cross-attention is drawn
    with ``seed``. Decoding starts from the tokenizer's [CLS] (or BOS) token. The directory is written
    aside and renamed into place, so a killed call leaves no half-written model. Returns ``out``.
    """
    torch = lazy.torch()
    transformers = lazy.transformers()
    src, _ = model_dir.resolve(encoder)
    model_dir.check_directory(src)
    config = transformers.AutoConfig.from_pretrained(src)
    if decoder_layers < 1 or decoder_layers > config.num_hidden_layers:
        raise ValueError(f"decoder_layers must be between 1 and {config.num_hidden_layers} (the encoder's), not {decoder_layers}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(src)
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    if start is None or tokenizer.pad_token_id is None:
        raise model_dir.ModelDirectoryError(f"{src}: the tokenizer has no [CLS]/BOS or pad token to decode with")
    torch.manual_seed(seed)
    quiet = logging.getLogger("transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the load report lists the fresh cross-attention as "missing": expected
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = transformers.EncoderDecoderModel.from_encoder_decoder_pretrained(
                str(src), str(src), decoder_num_hidden_layers=decoder_layers
            )
    except (ValueError, TypeError) as e:
        raise model_dir.ModelDirectoryError(
            f"{src} ({config.model_type}) cannot serve as a decoder with cross-attention ({e}); use a BERT-style encoder"
        ) from None
    finally:
        quiet.setLevel(level)
    special = {"decoder_start_token_id": int(start), "pad_token_id": int(tokenizer.pad_token_id)}
    if tokenizer.sep_token_id is not None:
        special["eos_token_id"] = int(tokenizer.sep_token_id)
    for settings in (model.config, model.generation_config):  # generate() (doc2query) reads the latter
        for key, value in special.items():
            setattr(settings, key, value)
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
