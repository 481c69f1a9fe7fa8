"""Sharded indexes: ordinary rankstack indexes over contiguous slices of one corpus, searched scatter-gather.

A sharded index is a folder holding ``shards.json`` (format version, kind, and each shard's folder, document
count and manifest checksum) and one index per shard (``shard-000``, ...), each a complete index any rankstack
command opens. Shards hold consecutive runs of the corpus, so "document order" across shards is shard order,
then order within the shard: the tie-break a single index applies.

Search is exact: the merged top k equals one index's over the same documents (tested), because

* BM25 scores every shard with the *collection's* statistics, gathered at open: documents with a term (N),
  total length (avgdl = tokens / N) and each term's document frequency summed over shards;
* a query's terms are accumulated in the single index's term order (first occurrence in the corpus, which
  the shards' own orders, taken shard by shard, reproduce);
* dense shards score by the same exact inner product, and ties break by global position.

A shard that is missing or fails its checksum stops the search with an error naming it; ``allow_partial=True``
searches the rest and says so (a warning, and ``stage.missing``), never silently returning fewer documents.
Shards are searched in threads here, or by one Ray actor per shard when Ray is initialised (``ray_search``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import IndexFormatError, RankstackError
from rankstack.index.manifest import file_record
from rankstack.pipeline import Stage, as_queries
from rankstack.types import Queries, Ranking

SHARDS_FILE = "shards.json"
FORMAT_VERSION = 1
KINDS = ("bm25", "dense", "impact", "colbert")


class ShardError(RankstackError):
    """A shard is missing, unreadable or not the one ``shards.json`` recorded."""


def write_shards_file(path: Path, kind: str, shard_dirs: Sequence[Path], extra: dict[str, Any] | None = None) -> None:
    """Record the shards of ``path`` (after every shard index is complete)."""
    from rankstack.index.manifest import now

    shards = []
    for d in shard_dirs:
        index = _open(d)
        shards.append({"path": d.name, "docs": int(_num_docs(index)), "manifest_crc32": _crc(d)})
    data = {"type": "sharded", "format_version": FORMAT_VERSION, "kind": kind, "created": now(), "shards": shards,
            **(extra or {})}  # fmt: skip
    tmp = path / f".{SHARDS_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path / SHARDS_FILE)


def _crc(shard: Path) -> int:
    return file_record(shard / "manifest.json")["crc32"]


def _open(path: Path) -> Any:
    import rankstack

    return rankstack.open(path)


def _num_docs(index: Any) -> int:
    return int(index.num_docs) if hasattr(index, "num_docs") else len(index.docids)


class ShardedIndex:
    """The shards of a sharded index, checked against ``shards.json`` on open."""

    def __init__(self, path: str | Path, allow_partial: bool = False):
        self.path = Path(path)
        file = self.path / SHARDS_FILE
        if not file.exists():
            raise ShardError(f"{self.path} is not a sharded index: it has no {SHARDS_FILE} (build one with build_sharded)")
        try:
            self.manifest = json.loads(file.read_text(encoding="utf-8"))
            entries = self.manifest["shards"]
            self.kind = self.manifest["kind"]
        except (ValueError, KeyError, TypeError) as e:
            raise IndexFormatError(f"{file} is not a valid shards file ({e})") from None
        if self.manifest.get("format_version") != FORMAT_VERSION or self.kind not in KINDS:
            raise IndexFormatError(f"{file}: format {self.manifest.get('format_version')!r}, kind {self.kind!r}: "
                                   f"this rankstack reads format {FORMAT_VERSION}, kinds {', '.join(KINDS)}")  # fmt: skip
        self.shards: list[Any] = []
        self.missing: list[str] = []
        for entry in entries:
            shard = self.path / entry["path"]
            problem = None
            if not (shard / "manifest.json").exists():
                problem = f"{shard} is missing"
            elif _crc(shard) != entry["manifest_crc32"]:
                problem = f"{shard} is not the shard {SHARDS_FILE} recorded (its manifest's checksum differs)"
            else:
                try:
                    self.shards.append(_open(shard))
                    continue
                except (RankstackError, OSError, ValueError) as e:
                    problem = f"{shard} cannot be opened: {e}"
            if not allow_partial:
                raise ShardError(f"{problem}. Rebuild the shard, or pass allow_partial=True to search the others "
                                 "(results then lack that shard's documents)")  # fmt: skip
            self.missing.append(str(entry["path"]))
            self.shards.append(None)
        if self.missing:
            warnings.warn(f"sharded index {self.path}: searching without shards {self.missing}; results lack their "
                          "documents", stacklevel=2)  # fmt: skip

    def __len__(self) -> int:
        return len(self.shards)

    def __repr__(self) -> str:
        return f"rankstack.scale.open_sharded({str(self.path)!r})"

    def bm25(self, k1: float = 0.9, b: float = 0.4, k: int = 1000) -> ShardedBM25:
        return ShardedBM25(self, k1, b, k)

    def dense(self, encoder: Any = None, k: int = 1000) -> ShardedDense:
        return ShardedDense(self, encoder, k)

    def impact(self, encoder: Any = None, k: int = 1000, max_query_terms: int | None = None) -> ShardedImpact:
        return ShardedImpact(self, encoder, k, max_query_terms)

    def colbert(self, encoder: Any = None, k: int = 1000, **kwargs: Any) -> ShardedColBERT:
        return ShardedColBERT(self, encoder, k, **kwargs)


def open_sharded(path: str | Path, allow_partial: bool = False) -> ShardedIndex:
    return ShardedIndex(path, allow_partial)


# ------------------------------------------------------------------------------------------------ BM25
class GlobalStatistics:
    """What BM25 needs from the whole collection: N, avgdl, each term's df, and the single index's term order."""

    def __init__(self, shards: Sequence[Any]):
        from rankstack.sparse.bm25 import lucene_idf

        n = tokens = 0
        order: dict[str, int] = {}
        df = np.zeros(0, dtype=np.int64)
        for shard in shards:
            if shard is None:
                continue
            stats = shard.stats
            n += stats.num_docs
            tokens += stats.num_tokens
            lex = shard.lexicon
            terms = list(lex.ids)  # the shard's terms in its id order (a lexicon's ids are given in insertion order)
            local = np.fromiter(lex.ids.values(), dtype=np.int64, count=len(terms))
            shard_df = np.asarray(lex.df, dtype=np.int64)[local]
            if np.any(np.diff(local) < 0):
                perm = np.argsort(local, kind="stable")
                terms, shard_df = [terms[i] for i in perm.tolist()], shard_df[perm]
            gids = np.fromiter((order.setdefault(t, len(order)) for t in terms), dtype=np.int64, count=len(terms))
            df = np.concatenate([df, np.zeros(len(order) - len(df), dtype=np.int64)])
            df[gids] += shard_df
        self.num_docs, self.num_tokens = n, tokens
        self.avgdl = tokens / n if n else 0.0
        self.order = order
        self.df = df
        self.idf = lucene_idf(self.df, n) if len(df) else np.zeros(0, np.float32)


class ShardedBM25(Stage):
    """BM25 over every shard with the collection's statistics, merged into one exact top ``k``."""

    def __init__(self, index: ShardedIndex, k1: float = 0.9, b: float = 0.4, k: int = 1000):
        if index.kind != "bm25":
            raise ShardError(f"{index.path} holds {index.kind} shards, not BM25 ones")
        self.index, self.k1, self.b, self.k = index, float(k1), float(b), int(k)
        self.stats = GlobalStatistics(index.shards)
        self.missing = list(index.missing)
        live = [s for s in index.shards if s is not None]
        self.analyzer = live[0].analyzer if live else None
        self._stages = [None if s is None else s.bm25(k1=k1, b=b, k=k, num_threads=1) for s in index.shards]

    def __repr__(self) -> str:
        return f"{self.index!r}.bm25(k1={self.k1}, b={self.b}, k={self.k})"

    def with_cutoff(self, k: int) -> ShardedBM25:
        """This stage cut at ``k``, sharing its collection statistics, shard stages and Ray actors (walking every
        lexicon again or starting new actors per ``%`` would be wasted): shards still answer their own k, the
        merge keeps ``k``."""
        return self._capped(k)

    def analyse(self, queries: Queries) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Each query's terms in the collection's term order with their weights (count x global idf, as a
        single index weighs them): flat (query row, term, weight)."""
        rows: list[int] = []
        terms: list[str] = []
        weights: list[float] = []
        order, idf = self.stats.order, self.stats.idf
        for row, text in enumerate(queries.text.tolist()):
            bag: dict[str, int] = {}
            for term in self.analyzer(text) if (text and self.analyzer is not None) else []:
                if term in order:
                    bag[term] = bag.get(term, 0) + 1
            for term in sorted(bag, key=order.__getitem__):
                if self.stats.df[order[term]] == 0:  # only in deleted documents, as a single index drops it
                    continue
                rows.append(row)
                terms.append(term)
                weights.append(float(np.float32(bag[term]) * idf[order[term]]))
        return np.asarray(rows, np.int64), terms, np.asarray(weights, np.float64)

    def search_shard(self, i: int, queries: Queries, rows: np.ndarray, terms: list[str], weights: np.ndarray) -> Ranking:
        return _search_shard(self._stages[i], queries.qid.tolist(), rows, terms, weights, self.stats.avgdl, queries)

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        rows, terms, weights = self.analyse(queries)
        live = [i for i, s in enumerate(self.index.shards) if s is not None]
        actors = _ray_actors(self)
        if actors is not None:
            import ray

            results = ray.get([actors[i].search.remote(queries.qid.tolist(), rows, terms, weights) for i in live])
            results = [Ranking(q, d, s, r, queries=queries, presorted=True) for q, d, s, r in results]
        else:
            with ThreadPoolExecutor(min(len(live), 8) or 1) as pool:
                results = list(pool.map(lambda i: self.search_shard(i, queries, rows, terms, weights), live))
        return merge_shard_rankings(queries, results, live, self.k)


def _search_shard(stage: Any, qids: list[str], rows: np.ndarray, terms: list[str], weights: np.ndarray, avgdl: float,
                  queries: Queries | None = None) -> Ranking:  # fmt: skip
    """One BM25 shard's answer to analysed queries: terms mapped to the shard's ids (those it lacks dropped),
    scored with the collection's weights and avgdl."""
    ids = stage.index.lexicon.ids
    local = np.fromiter((ids.get(t, -1) for t in terms), dtype=np.int64, count=len(terms))
    here = local >= 0
    return stage.search_terms(qids, rows[here], local[here], weights[here], avgdl, queries)


def merge_shard_rankings(queries: Queries, rankings: Sequence[Ranking], shard_numbers: Sequence[int], k: int) -> Ranking:
    """The top ``k`` per query of the shards' rankings: by score, ties by shard then the shard's own order
    (document order across contiguous shards). Up to 256 shards and 2**24 queries a call."""
    if not rankings:
        return Ranking.empty(queries)
    row_of = {q: i for i, q in enumerate(queries.qid.tolist())}
    qrow = np.concatenate([_query_rows(r.qid, row_of) for r in rankings])
    score = np.concatenate([r.score for r in rankings])
    shard = np.concatenate([np.full(len(r), n, np.int64) for r, n in zip(rankings, shard_numbers, strict=True)])
    # one stable sort of packed (query, score descending, shard) keys: rows equal in all three keep their
    # shard's own (rank) order. Scores are float32 values (the shards' kernels), so 32 bits hold them exactly.
    bits = score.astype(np.float32).view(np.uint32).astype(np.uint64)
    ascending = np.where(bits >> np.uint64(31), ~bits & np.uint64(0xFFFFFFFF), bits | np.uint64(0x80000000))
    key = (qrow.astype(np.uint64) << np.uint64(40)) | ((np.uint64(0xFFFFFFFF) - ascending) << np.uint64(8)) | shard.astype(np.uint64)
    order = np.argsort(key, kind="stable")
    sorted_rows = qrow[order]
    starts = np.searchsorted(sorted_rows, np.arange(len(queries)))
    new_rank = np.arange(len(order)) - starts[sorted_rows] + 1
    keep = new_rank <= k
    chosen = order[keep]  # only the kept rows' docids are gathered (object arrays cost per element)
    bases = np.cumsum([0] + [len(r) for r in rankings])
    which = np.searchsorted(bases, chosen, side="right") - 1
    docid = np.empty(len(chosen), dtype=object)
    for i, r in enumerate(rankings):
        mine = which == i
        docid[mine] = r.docid[chosen[mine] - bases[i]]
    return Ranking(queries.qid[qrow[chosen]], docid, score[chosen], new_rank[keep], queries=queries, presorted=True)


def _query_rows(qid: np.ndarray, row_of: dict[str, int]) -> np.ndarray:
    """Each row's query number, one dictionary lookup per run of equal qids (a shard's ranking keeps each
    query's rows together), not per row."""
    if not len(qid):
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], qid[1:] != qid[:-1]]))
    lengths = np.diff(np.append(starts, len(qid)))
    return np.repeat(np.fromiter((row_of[q] for q in qid[starts].tolist()), np.int64, len(starts)), lengths)


# ------------------------------------------------------------------------------------------------ dense
class ShardedDense(Stage):
    """Exact inner-product search over every dense shard, merged into one top ``k``."""

    def __init__(self, index: ShardedIndex, encoder: Any = None, k: int = 1000):
        if index.kind != "dense":
            raise ShardError(f"{index.path} holds {index.kind} shards, not dense ones")
        live = [s for s in index.shards if s is not None]
        if encoder is None or isinstance(encoder, str):
            from rankstack.dense import BiEncoder

            encoder = BiEncoder(encoder or live[0].model["model"])
        self.index, self.encoder, self.k = index, encoder, int(k)
        self.missing = list(index.missing)

    def __repr__(self) -> str:
        return f"{self.index!r}.dense({self.encoder!r}, k={self.k})"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        from rankstack.index.vectors import hits_ranking

        vectors = self.encoder.encode_queries(queries.text.tolist())
        live = [i for i, s in enumerate(self.index.shards) if s is not None]
        results = []
        for i in live:
            shard = self.index.shards[i]
            pos, scores = shard.search(vectors, self.k, exact=True)
            results.append(hits_ranking(shard, queries.qid, pos, scores, queries))
        return merge_shard_rankings(queries, results, live, self.k)


# ------------------------------------------------------------------------------------------------ impact
class ShardedImpact(Stage):
    """Learned sparse (impact) shards: queries encoded once here, each shard searched with the same
    ``{token: weight}`` bags, merged into one top ``k``. Impacts need no collection statistics: float32 shards
    score as one index over the same vectors would (each shard encodes its own documents, and the encoder's
    rounding depends on the batch, ~1e-7; tested to 1e-5). ``max_query_terms``: as for ``Impact`` (the same
    tokens in every shard)."""

    def __init__(self, index: ShardedIndex, encoder: Any = None, k: int = 1000, max_query_terms: int | None = None):
        if index.kind != "impact":
            raise ShardError(f"{index.path} holds {index.kind} shards, not impact ones")
        from rankstack.sparse import Impact

        live = [s for s in index.shards if s is not None]
        if encoder is None or isinstance(encoder, str):
            from rankstack.sparse.splade import load_splade

            recorded = (live[0].impact.get("encoder") or {}).get("model")
            encoder = load_splade(encoder or recorded) if (encoder or recorded) else None
        self.index, self.encoder, self.k = index, encoder, int(k)
        self.missing = list(index.missing)
        self._stages = [None if s is None else Impact(s, None, k=k, num_threads=1, max_query_terms=max_query_terms)
                        for s in index.shards]  # fmt: skip

    def __repr__(self) -> str:
        return f"{self.index!r}.impact({self.encoder!r}, k={self.k})"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        from rankstack.sparse import pretokenized

        queries = as_queries(inp)
        texts = queries.text.tolist()
        bags = self.encoder.encode_queries(texts) if self.encoder is not None else [pretokenized(t) for t in texts]
        live = [i for i, s in enumerate(self.index.shards) if s is not None]
        qids = queries.qid.tolist()
        with warnings.catch_warnings():  # a query without a term in one shard may match in another
            warnings.simplefilter("ignore", UserWarning)
            results = [self._stages[i].search_weighted(qids, bags, queries) for i in live]
        return merge_shard_rankings(queries, results, live, self.k)


# ------------------------------------------------------------------------------------------------ ColBERT
class ShardedColBERT(Stage):
    """ColBERT shards, each searched by its own PLAID stage (``kwargs``: its settings; ``exhaustive=True`` scores
    every document by MaxSim), merged into one top ``k``. Each shard has its own centroids and residual codec, so
    scores equal one index's only without compression (``bits=0``) and up to the encoder's batch rounding."""

    def __init__(self, index: ShardedIndex, encoder: Any = None, k: int = 1000, **kwargs: Any):
        if index.kind != "colbert":
            raise ShardError(f"{index.path} holds {index.kind} shards, not ColBERT ones")
        self.index, self.encoder, self.k = index, encoder, int(k)
        self.missing = list(index.missing)
        self._stages = [None if s is None else s.colbert(encoder, k=k, **kwargs) for s in index.shards]

    def __repr__(self) -> str:
        return f"{self.index!r}.colbert({self.encoder!r}, k={self.k})"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = as_queries(inp)
        live = [i for i, s in enumerate(self.index.shards) if s is not None]
        return merge_shard_rankings(queries, [self._stages[i](queries) for i in live], live, self.k)


# ------------------------------------------------------------------------------------------------ Ray
def _ray_actors(stage: ShardedBM25) -> list[Any] | None:
    """One actor per shard holding it open, made on first use when Ray is initialised (else None: threads)."""
    if not stage.__dict__.get("use_ray", True):
        return None
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    actors = stage.__dict__.get("_actors")
    if actors is None:
        searcher = ray.remote(_ShardSearcher)
        actors = [None if s is None else searcher.remote(str(s.path), stage.k1, stage.b, stage.k, stage.stats.avgdl)
                  for s in stage.index.shards]  # fmt: skip
        stage.__dict__["_actors"] = actors
    return actors


class _ShardSearcher:
    """A Ray actor: one BM25 shard, opened once, scoring with the collection's avgdl and the driver's weights."""

    def __init__(self, path: str, k1: float, b: float, k: int, avgdl: float):
        self.stage = _open(Path(path)).bm25(k1=k1, b=b, k=k, num_threads=1)
        self.avgdl = avgdl

    def search(self, qids: list[str], rows: np.ndarray, terms: list[str], weights: np.ndarray):
        r = _search_shard(self.stage, qids, rows, terms, weights, self.avgdl)
        return r.qid, r.docid, r.score, r.rank
