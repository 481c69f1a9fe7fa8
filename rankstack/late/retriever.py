"""ColBERT end-to-end retrieval: encode the collection's tokens into a token index, search it with PLAID."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import RankstackError
from rankstack.index.stages import register_stage
from rankstack.index.tokens import TokenIndex, build_token_index
from rankstack.late.colbert import ColBERTEncoder
from rankstack.late.plaid import PlaidSettings, search_one
from rankstack.pipeline import Stage, as_queries
from rankstack.types import Corpus, Document, Queries, Ranking

ModelLike = ColBERTEncoder | str | os.PathLike[str]


def as_colbert(model: ModelLike, **kwargs: Any) -> ColBERTEncoder:
    return model if isinstance(model, ColBERTEncoder) else ColBERTEncoder(model, **kwargs)


def build_colbert_index(
    corpus: Corpus | Iterable[Document],
    model: ModelLike,
    path: str | Path,
    *,
    bits: int = 2,
    num_centroids: int | None = None,
    chunk_size: int = 1024,
    overwrite: bool = False,
    show_progress: bool = True,
    seed: int = 0,
) -> TokenIndex:
    """Encode ``corpus`` with ``model``'s document encoder (streamed) and write a compressed token index.

    ``bits``: residual bits per dimension (1, 2, 4 or 8), or 0 for uncompressed float16 vectors. The manifest
    records the encoder, so the index refuses to be searched with another.
    """
    encoder = as_colbert(model)
    blocks = encoder.stream_docs(corpus, chunk_size=chunk_size, show_progress=show_progress)
    return build_token_index(path, blocks, encoder.identity(), bits=bits, num_centroids=num_centroids,
                             seed=seed, overwrite=overwrite)  # fmt: skip


def check_encoder(index: TokenIndex, encoder: ColBERTEncoder) -> None:
    """Refuse an encoder other than the one that built ``index`` (its vectors would not be comparable)."""
    recorded, actual = index.model, encoder.identity()
    differ = [f for f in ("fingerprint", "dim", "query_length", "attend_to_expansion") if recorded.get(f) != actual.get(f)]
    if differ:
        raise RankstackError(
            f"index {index.path} was built with {recorded.get('model')!r} (fingerprint {recorded.get('fingerprint')}), "
            f"but the encoder given is {actual.get('model')!r} (fingerprint {actual.get('fingerprint')}); "
            f"{', '.join(differ)} differ. Search it with the model that built it, or rebuild the index."
        )


class ColBERT(Stage):
    """Top ``k`` documents per query by ColBERT MaxSim over a token index, found with PLAID.

    ``model`` defaults to the one recorded in the index manifest. ``nprobe``, ``threshold`` and ``ndocs``
    override PLAID's defaults for this ``k`` (``PlaidSettings.for_k``); ``exhaustive=True`` scores every
    document exactly (slow; the reference).
    """

    def __init__(
        self,
        index: TokenIndex | str | Path,
        model: ModelLike | None = None,
        k: int = 1000,
        *,
        nprobe: int | None = None,
        threshold: float | None = None,
        ndocs: int | None = None,
        exhaustive: bool = False,
    ):
        self.index = index if isinstance(index, TokenIndex) else TokenIndex(index)
        self.encoder = as_colbert(model if model is not None else self.index.model["model"])
        check_encoder(self.index, self.encoder)
        self.k, self.exhaustive = int(k), exhaustive
        self.overrides = {"nprobe": nprobe, "threshold": threshold, "ndocs": ndocs}

    @property
    def settings(self) -> PlaidSettings:
        base = PlaidSettings.for_k(self.k)
        chosen = {f: v for f, v in self.overrides.items() if v is not None}
        return PlaidSettings(**{**base.__dict__, **chosen})

    def with_cutoff(self, k: int) -> ColBERT:
        return self._capped(k)  # type: ignore[return-value]

    def __repr__(self) -> str:
        extra = ", exhaustive=True" if self.exhaustive else ""
        return f"{self.index!r}.colbert({self.encoder!r}, k={self.k}{extra})"

    def search(self, vectors: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-k ``(positions, scores)`` per query matrix ``[nq, Lq, dim]``."""
        settings = self.settings
        return [search_one(self.index, q, self.k, settings, self.exhaustive) for q in vectors]

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        if len(queries) == 0:
            return Ranking.empty(queries)
        results = self.search(self.encoder.encode_queries(queries.text.tolist()))
        counts = np.array([len(p) for p, _ in results], dtype=np.int64)
        positions = np.concatenate([p for p, _ in results]).astype(np.int64)
        scores = np.concatenate([s for _, s in results]).astype(np.float64)
        rank = np.concatenate([np.arange(1, c + 1) for c in counts]) if counts.sum() else np.zeros(0, np.int64)
        return Ranking(
            np.repeat(np.asarray(queries.qid, dtype=object), counts),
            self.index.docids[positions],
            scores,
            rank,
            queries=queries,
            presorted=True,
        )


register_stage("colbert", ColBERT)
