"""Running a BERT-style encoder's layers one slice at a time: what models that split an encoder need (PreTTR,
DC-BERT, MORES join the query in upper layers; the cascade transformer exits after intermediate layers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rankstack.models import lazy


def additive_mask(mask: Any, dtype: Any) -> Any:
    """A [B, L] keep-mask as the additive [B, 1, 1, L] attention mask BERT's layers take."""
    torch = lazy.torch()
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(layers: Sequence[Any], hidden: Any, mask: Any) -> Any:
    """``hidden`` through BERT layers under a [B, L] keep-mask (a layer returns a tensor or a tuple)."""
    extended = additive_mask(mask, hidden.dtype)
    for layer in layers:
        out = layer(hidden, attention_mask=extended)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def train_top_layers(encoder: Any, layers: int) -> None:
    """Freeze a BERT-style ``encoder`` except its top ``layers`` transformer layers (0: all of it frozen)."""
    for p in encoder.parameters():
        p.requires_grad_(False)
    blocks = encoder.encoder.layer
    for block in blocks[len(blocks) - layers :] if layers else []:
        for p in block.parameters():
            p.requires_grad_(True)
