"""Impact retrieval: learned sparse vectors (SPLADE, uniCOIL, DeepCT …) over an impact index.

An impact index (``rankstack.index.build_impact_index``) stores each document's token weights, quantised
per segment to integers (``bits``, 8 by default); a query is a bag of weighted tokens, from an encoder or
written out. A document's score is ``sum over query tokens of query weight x impact / scale`` (the scale
turns a segment's integers back into the encoder's units, so segments quantised apart score alike), summed
in float64 and rounded once to float32 by the same compiled top-k kernels as BM25, with the same exact
top-k guarantee (ties by document order).

Without an encoder a query's text is taken as already tokenised (Anserini's ``--pretokenized``): tokens
separated by whitespace, each occurrence adding 1 to that token's weight.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rankstack.data.vectors import SparseVector
from rankstack.errors import IndexFormatError, RankstackError
from rankstack.index.inverted import InvertedIndex
from rankstack.models import lazy
from rankstack.pipeline import as_queries
from rankstack.sparse.bm25 import Algorithm, PostingsSearch, SegmentImpacts, _warn_empty
from rankstack.types import Document, Queries, Ranking


@runtime_checkable
class SparseEncoder(Protocol):
    """What ``Impact`` needs of a query encoder: ``{token: weight}`` per text, and a description to check
    against the one the index was built with (``describe()``, a JSON-able dict; its ``model`` entry, a name
    or path to load the encoder again, is not compared, the rest (weights' fingerprint, settings) is)."""

    def encode_queries(self, texts: Sequence[str]) -> list[dict[str, float]]: ...

    def describe(self) -> dict[str, Any]: ...


def encode_corpus(encoder: Any, docs: Iterable[Document], show_progress: bool = True, chunk: int = 1024) -> Iterator[SparseVector]:
    """``SparseVector``s of ``docs`` (title + text, by ``encoder.encode_documents``) streamed ``chunk`` documents
    at a time, the texts kept as contents: what ``build_impact_index`` takes from any sparse encoder."""
    with lazy.progress(None, "encoding documents", show_progress, unit="doc") as bar:
        for batch in lazy.chunked(docs, chunk):
            texts = [d.contents() for d in batch]
            for doc, text, weights in zip(batch, texts, encoder.encode_documents(texts), strict=True):
                yield SparseVector(doc.docid, weights, text)
            bar.update(len(batch))


def pretokenized(text: str) -> dict[str, float]:
    """A query written as tokens: each whitespace-separated token weighs its number of occurrences."""
    return {t: float(c) for t, c in Counter(text.split()).items()}


def _segment_impacts(index: InvertedIndex) -> list[SegmentImpacts]:
    """Each segment's stored impacts as float32, made once per index."""
    cache = index.__dict__.setdefault("_impact_postings", {})
    if "segments" not in cache:
        cache["segments"] = [SegmentImpacts(s, np.array(s.post_tfs, dtype=np.float32)) for s in index.segments]
    return cache["segments"]


def _check_quantisation(index: InvertedIndex) -> None:
    """Every segment's postings must be what the manifest's ``bits`` say (a scale > 0, the matching dtype)."""
    bits = index.impact.get("bits")  # type: ignore[union-attr]
    want = np.float32 if bits is None else (np.uint8 if isinstance(bits, int) and bits <= 8 else np.uint16)
    for seg in index.segments:
        scale = seg.entry.get("impact_scale")
        ok = (bits is None or (isinstance(bits, int) and 1 <= bits <= 16)) and isinstance(scale, int | float) and scale > 0
        if not ok or seg.post_tfs.dtype != want:
            raise IndexFormatError(
                f"{index.path}: {seg.entry['name']} holds {seg.post_tfs.dtype} impacts (scale {scale}) but the manifest "
                f"says bits={bits}; the index is inconsistent. Rebuild it with build_impact_index."
            )


def _identity(description: Mapping[str, Any]) -> dict[str, Any]:
    """An encoder description without its ``model`` name: the same weights loaded from another path match."""
    return {k: v for k, v in description.items() if k != "model"}


class Impact(PostingsSearch):
    """Retrieve the top ``k`` documents per query from an impact index by learned term weights.

    ``encoder``: a ``SparseEncoder`` for the queries (the one that encoded the documents: its ``describe()``
    must match the index's record, unless ``check_encoder=False``); ``None`` reads query texts as tokens
    (``pretokenized``). ``algorithm`` and ``num_threads`` as for ``BM25``. Given a Ranking, it retrieves
    afresh for that ranking's queries. ``search_weighted`` takes ``{token: weight}`` queries directly.

    ``max_query_terms``: search with only each query's this many heaviest tokens (query term pruning; None keeps
    every token, the exact search). A SPLADE query carries dozens of tokens, most of them light expansions whose
    postings cost as much as the heavy ones': on SciFact, SPLADE-tiny queries (~53 tokens) cut to 24 touch 42% of
    the postings and score the same nDCG@10 (0.6446 vs 0.6435), 1.3x the queries per second one query per call;
    NFCorpus' shorter queries lose nothing and gain nothing (``benchmarks/results/splade-pruning.md``).
    Ties in weight keep the earlier token; the kept tokens stay in the query's order.
    """

    def __init__(
        self,
        index: InvertedIndex,
        encoder: SparseEncoder | None = None,
        k: int = 1000,
        algorithm: Algorithm = "exhaustive",
        num_threads: int | None = None,
        check_encoder: bool = True,
        max_query_terms: int | None = None,
    ):
        if getattr(index, "impact", None) is None:
            raise RankstackError(
                f"{getattr(index, 'path', index)} is not an impact index; build one with "
                "rankstack.index.build_impact_index (or `rankstack index COLL --impact ENCODER`), or search this "
                "one with index.bm25()"
            )
        if algorithm not in ("maxscore", "exhaustive"):
            raise ValueError(f"algorithm must be 'maxscore' or 'exhaustive', not {algorithm!r}")
        if max_query_terms is not None and (isinstance(max_query_terms, bool) or int(max_query_terms) < 1):
            raise ValueError(f"max_query_terms must be at least 1 (or None: every token), not {max_query_terms!r}")
        _check_quantisation(index)
        recorded = index.impact.get("encoder")  # type: ignore[union-attr]
        if encoder is not None and check_encoder and recorded is not None:
            mine = encoder.describe()
            if _identity(mine) != _identity(recorded):
                raise RankstackError(
                    f"{index.path} was built with encoder {recorded}, not {mine}: query and document weights would "
                    "not match. Pass the encoder that built it (or check_encoder=False if they are the same model)."
                )
        self.index, self.encoder, self.k = index, encoder, int(k)
        self.algorithm, self.num_threads, self.check_encoder = algorithm, num_threads, check_encoder
        self.max_query_terms = None if max_query_terms is None else int(max_query_terms)

    def with_cutoff(self, k: int) -> Impact:
        return Impact(self.index, self.encoder, min(k, self.k), self.algorithm, self.num_threads, False,
                      self.max_query_terms)  # fmt: skip

    def __repr__(self) -> str:
        enc = f", encoder={self.encoder!r}" if self.encoder is not None else ""
        extra = "" if self.algorithm == "exhaustive" else f", algorithm={self.algorithm!r}"
        if self.max_query_terms is not None:
            extra += f", max_query_terms={self.max_query_terms}"
        return f"Impact({self.index!r}{enc}, k={self.k}{extra})"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        texts = queries.text.tolist()
        bags = self.encoder.encode_queries(texts) if self.encoder is not None else [pretokenized(t) for t in texts]
        return self.search_weighted(queries.qid.tolist(), bags, queries)

    def _vector(self, qid: str, bag: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """A query's (term ids, weights) of the tokens the index holds with weight > 0, checked."""
        try:
            w = np.fromiter(bag.values(), np.float64, len(bag))
        except (TypeError, ValueError):
            w = np.full(len(bag), np.nan)  # some value is no number: named below
        if not np.isfinite(w).all() or (w < 0).any():
            bad = next(((t, v) for t, v in bag.items() if not _valid_weight(v)), None)
            if bad is not None:
                raise ValueError(f"query {qid!r}: token {bad[0]!r} has weight {bad[1]!r}; weights must be finite numbers >= 0")
            w = np.array([float(v) for v in bag.values()], np.float64)  # numbers numpy would not take as they are
        g = np.fromiter(map(self.index.lexicon.ids.get, bag.keys(), repeat(-1)), np.int64, len(bag))
        keep = (g >= 0) & (w > 0)
        n = self.max_query_terms
        if n is not None and len(w) > n:
            # the query's n heaviest tokens (ties to the earlier one; weights of 0 sort last and stay dropped),
            # whether or not the index holds them: the same tokens in every shard of a sharded index
            heaviest = np.zeros(len(w), dtype=bool)
            heaviest[np.argsort(-w, kind="stable")[:n]] = True
            keep &= heaviest
        return g[keep], w[keep]

    def search_weighted(
        self, qids: Sequence[str], bags: Sequence[Mapping[str, float]], queries: Queries | None = None
    ) -> Ranking:
        """Search queries given as ``{token: weight}`` (weights > 0 count; tokens the index lacks match nothing)."""
        if len(qids) != len(bags):
            raise ValueError(f"{len(qids)} qids but {len(bags)} query vectors")
        lex = self.index.lexicon
        if len(qids) == 1 and len(self.index.segments) == 1:  # a server's load: no per-segment bookkeeping
            gids_a, w_a = self._vector(qids[0], bags[0])
            if not len(gids_a):
                _warn_empty([qids[0]])
            seg, imp, to_local = self.index.segments[0], _segment_impacts(self.index)[0], lex.local[0]
            local = gids_a if to_local is None else to_local[gids_a]
            scale = float(seg.entry.get("impact_scale", 1.0))
            docs, scores, _ = self._run_kernel(seg, imp, np.array([0, len(local)], np.int64), local, w_a / scale)
            return Ranking._trusted(str(qids[0]), seg.docids[docs], scores, np.arange(1, len(docs) + 1), queries)
        rows, gids, weights, empty = [], [], [], []
        for row, bag in enumerate(bags):
            g, w = self._vector(qids[row], bag)
            if len(g):
                rows.append(np.full(len(g), row, np.int64))
                gids.append(g)
                weights.append(w)
            else:
                empty.append(qids[row])
        if empty:
            _warn_empty(empty)
        rows_a, gids_a, w_a = (np.concatenate(parts) if parts else np.zeros(0, dtype)
                               for parts, dtype in ((rows, np.int64), (gids, np.int64), (weights, np.float64)))  # fmt: skip
        per_segment = []
        for seg, imp, to_local in zip(self.index.segments, _segment_impacts(self.index), lex.local, strict=True):
            local = gids_a if to_local is None else to_local[gids_a]
            here = local >= 0
            q_offsets = np.zeros(len(qids) + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows_a[here], minlength=len(qids)), out=q_offsets[1:])
            scale = float(seg.entry.get("impact_scale", 1.0))
            per_segment.append(self._run_kernel(seg, imp, q_offsets, local[here], w_a[here] / scale))
        return self._merge(list(qids), per_segment, queries)


def _valid_weight(value: Any) -> bool:
    try:
        w = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(w) and w >= 0


__all__ = ["Impact", "SparseEncoder", "encode_corpus", "pretokenized"]
