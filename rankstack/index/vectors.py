"""The vector index: one matrix of document vectors opened with mmap, plus an optional faiss ANN index.

Layout of an index directory::

    manifest.json            type "dense", format_version, the model that made the vectors, ANN settings,
                             counts, checksums
    vectors.npy              float32 or float16 [N, dim], row i is document i
    docid_offsets.npy, docid_bytes.npy   external docids, utf-8
    deleted-<gen>.npy        bool[N] tombstones (only when documents were deleted)
    ann-<gen>.faiss          faiss HNSW or IVF-PQ index over the rows (absent for "flat")

Search is by inner product (cosine for normalised models). ``search(..., exact=True)`` multiplies the
queries with every stored vector (BLAS, in blocks, reading the mmap), keeps each query's best k in a
buffer (``select.py``) and is the correctness reference;
``flat`` indexes always search that way. HNSW and IVF-PQ candidates are re-scored exactly from the stored
vectors, so their scores equal exact scores and only recall can differ (``benchmarks/bench_dense.py``).

``add`` rewrites the index aside and renames it into place (the ANN index gets the new rows added, not
rebuilt); ``delete`` writes a new tombstone file and replaces the manifest atomically. faiss files are
read with faiss's own reader (no pickle).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.errors import IndexFormatError, MissingExtraError, RankstackError
from rankstack.index.arrays import NpyAppender, load_docids, save_docids
from rankstack.index.manifest import (
    MANIFEST,
    ManifestIndex,
    atomic_directory,
    created_by,
    file_record,
    now,
    read_manifest,
    verify_files,
    write_json_atomic,
)
from rankstack.index.select import TopK
from rankstack.index.stages import stage_factory
from rankstack.types import Ranking

log = logging.getLogger(__name__)

INDEX_TYPE = "dense"
FORMAT_VERSION = 1
AnnKind = Literal["flat", "hnsw", "ivfpq"]
ANN_KINDS: tuple[str, ...] = ("flat", "hnsw", "ivfpq")
_REBUILD = "Rebuild it with `rankstack index --dense MODEL` (or rankstack.dense.build_dense_index)."
_CHUNK_ROWS = 1 << 16
_SEARCH_QUERIES, _SEARCH_SCORES = 1 << 10, 1 << 22  # exact search: queries per pass, scores per block


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingExtraError("faiss", "faiss") from None
    return faiss


@dataclass(frozen=True)
class AnnConfig:
    """Approximate search settings. HNSW: ``m`` links per node, ``ef_construction``, ``ef_search``.
    IVF-PQ: ``nlist`` cells (default ~4 sqrt(N)), ``pq_m`` sub-quantisers (must divide dim), ``nbits``,
    ``nprobe`` cells visited. ``refine``: candidates fetched per result and re-scored exactly."""

    kind: AnnKind = "flat"
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    pq_m: int | None = None
    nbits: int = 8
    nprobe: int = 16
    refine: int = 4

    def __post_init__(self) -> None:
        if self.kind not in ANN_KINDS:
            raise ValueError(f"unknown ANN kind {self.kind!r}; choose one of {ANN_KINDS}")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ------------------------------------------------------------------------------------------ writing
def _train_ann(vectors: np.ndarray, config: AnnConfig, seed: int = 0) -> Any:
    faiss = _faiss()
    n, dim = vectors.shape
    if config.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
        return index
    nlist = config.nlist or max(1, min(int(4 * np.sqrt(max(n, 1))), n // 39 or 1))
    pq_m = config.pq_m or next(m for m in (dim // 8, dim // 4, dim // 2, dim) if m and dim % m == 0)
    if dim % pq_m:
        raise ValueError(f"pq_m={pq_m} must divide the vector dimension {dim}")
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, config.nbits, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = vectors if n <= 100_000 else vectors[np.sort(rng.choice(n, 100_000, replace=False))]
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if len(sample) < max(nlist, 1 << config.nbits):
        raise ValueError(
            f"IVF-PQ needs at least {max(nlist, 1 << config.nbits)} vectors to train (nlist={nlist}, "
            f"nbits={config.nbits}); this index has {len(sample)}. Use kind='flat' or 'hnsw' for small collections."
        )
    index.cp.seed = seed
    index.train(sample)
    return index


def _add_rows(ann: Any, vectors: np.ndarray, start: int) -> None:
    for lo in range(start, len(vectors), _CHUNK_ROWS):
        ann.add(np.ascontiguousarray(vectors[lo : lo + _CHUNK_ROWS], dtype=np.float32))


def write_vector_index(
    path: str | Path,
    blocks: Iterable[tuple[Sequence[str], np.ndarray]],
    model: dict[str, Any],
    ann: AnnConfig | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
) -> VectorIndex:
    """Write an index from ``(docids, vectors)`` blocks (streamed: one block in memory at a time).

    ``model`` is what the manifest records about the encoder (``BiEncoder.identity()``): its name,
    revision, weight fingerprint, dimension, pooling and prefixes. A repeated docid keeps its last vector.
    """
    ann = ann or AnnConfig()
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', not {dtype!r}")
    dim = int(model["dim"])
    with atomic_directory(path, overwrite=overwrite) as tmp:
        writer = NpyAppender(tmp / "vectors.npy", dim, np.dtype(dtype))
        docids: list[str] = []
        for ids, vecs in blocks:
            if len(ids) != len(vecs):
                raise ValueError(f"{len(ids)} docids for {len(vecs)} vectors")
            writer.append(vecs)
            docids.extend(str(d) for d in ids)
        writer.close()
        save_docids(tmp, docids)
        positions: dict[str, int] = {}
        for i, d in enumerate(docids):
            positions[d] = i
        deleted = None
        if len(positions) < len(docids):
            mask = np.ones(len(docids), dtype=bool)
            mask[list(positions.values())] = False
            warnings.warn(f"{int(mask.sum())} repeated docids: the last vector of each was kept", stacklevel=2)
            deleted = "deleted-0.npy"
            np.save(tmp / deleted, mask)
        ann_file = None
        if ann.kind != "flat" and docids:
            vectors = np.load(tmp / "vectors.npy", mmap_mode="r")
            index = _train_ann(vectors, ann)
            _add_rows(index, vectors, 0)
            ann_file = "ann-0.faiss"
            _faiss().write_index(index, str(tmp / ann_file))
        manifest = {
            "type": INDEX_TYPE,
            "format_version": FORMAT_VERSION,
            "created": now(),
            "created_by": created_by(),
            "model": model,
            "dtype": dtype,
            "dim": dim,
            "ann": ann.to_dict(),
            "ann_file": ann_file,
            "generation": 0,
            "deleted": deleted,
        }
        _write_manifest(tmp, manifest)
    return VectorIndex(path)


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    files = ["vectors.npy", "docid_offsets.npy", "docid_bytes.npy"]
    files += [f for f in (manifest.get("deleted"), manifest.get("ann_file")) if f]
    manifest["files"] = {f: file_record(directory / f) for f in files}
    num_rows = int(np.load(directory / "docid_offsets.npy", mmap_mode="r").shape[0] - 1)
    num_deleted = int(np.load(directory / manifest["deleted"]).sum()) if manifest.get("deleted") else 0
    manifest["num_rows"], manifest["num_deleted"], manifest["num_docs"] = num_rows, num_deleted, num_rows - num_deleted
    write_json_atomic(directory / MANIFEST, manifest)


# ------------------------------------------------------------------------------------------ reading
class VectorIndex(ManifestIndex):
    """An opened vector index: ``search`` by inner product, ``add``/``delete`` by docid, and the factory
    ``index.dense(model)`` for the retrieval stage."""

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        self.manifest = read_manifest(self.path, INDEX_TYPE, (FORMAT_VERSION,))
        if verify:
            verify_files(self.path, self.manifest["files"], _REBUILD)
        self.vectors = np.load(self.path / "vectors.npy", mmap_mode="r")
        if self.vectors.ndim != 2 or self.vectors.shape[1] != self.manifest["dim"]:
            raise IndexFormatError(
                f"{self.path}: vectors.npy has shape {self.vectors.shape}, manifest says dim {self.manifest['dim']}. {_REBUILD}"
            )
        deleted = self.manifest.get("deleted")
        self.deleted = np.load(self.path / deleted) if deleted else np.zeros(len(self.vectors), dtype=bool)
        self.ann_config = AnnConfig(**self.manifest["ann"])

    def _write_manifest(self, directory: Path, manifest: dict[str, Any]) -> None:
        _write_manifest(directory, manifest)  # the module's writer: this format's files and counts

    @cached_property
    def docids(self) -> np.ndarray:
        return load_docids(self.path)

    @cached_property
    def _positions(self) -> dict[str, int]:
        live = ~self.deleted
        return {d: i for i, d in enumerate(self.docids.tolist()) if live[i]}

    def vector(self, docid: str) -> np.ndarray:
        pos = self._positions.get(str(docid))
        if pos is None:
            raise KeyError(f"docid {docid!r} is not in index {self.path}")
        return np.asarray(self.vectors[pos], dtype=np.float32)

    @cached_property
    def ann(self) -> Any:
        if not self.manifest.get("ann_file"):
            return None
        return _faiss().read_index(str(self.path / self.manifest["ann_file"]))

    # ---- search
    def search(
        self, queries: np.ndarray, k: int, exact: bool = False, ef_search: int | None = None, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows per query: ``(positions int64 [nq, k], scores float32 [nq, k])``, best first,
        ties by position; ``-1`` / ``-inf`` pad queries with fewer than ``k`` live documents."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise ValueError(
                f"query vectors have dimension {q.shape[1]} but index {self.path} holds dimension {self.dim} "
                f"(built with {self.model.get('model')!r}); encode queries with the same model."
            )
        k = max(0, int(k))
        if exact or self.ann is None:
            return self._exact(q, k)
        return self._approximate(q, k, ef_search, nprobe)

    def _exact(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if len(q) > _SEARCH_QUERIES:
            parts = [self._exact(q[i : i + _SEARCH_QUERIES], k) for i in range(0, len(q), _SEARCH_QUERIES)]
            return np.vstack([p for p, _ in parts]), np.vstack([s for _, s in parts])
        best = TopK(len(q), min(k, len(self.vectors)))
        rows = _block_rows(len(q))
        for lo in range(0, len(self.vectors), rows):
            block = np.asarray(self.vectors[lo : lo + rows], dtype=np.float32)
            scores = q @ block.T
            dead = self.deleted[lo : lo + len(block)]
            if dead.any():
                scores[:, dead] = -np.inf
            best.push(scores, lo)
        return _pad(*best.result(), k)

    def _approximate(
        self, q: np.ndarray, k: int, ef_search: int | None, nprobe: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        cfg = self.ann_config
        fetch = max(k, k * max(cfg.refine, 1)) + int(self.deleted.sum())
        fetch = min(fetch, len(self.vectors))
        if cfg.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(ef_search or cfg.ef_search, fetch))
        else:
            params = faiss.SearchParametersIVF(nprobe=nprobe or cfg.nprobe)
        _, cand = self.ann.search(q, fetch, params=params)
        # re-score candidates exactly from the stored vectors: scores equal exact search's
        safe = np.where(cand < 0, 0, cand)
        vecs = np.asarray(self.vectors[safe.ravel()], dtype=np.float32).reshape(*cand.shape, self.dim)
        scores = np.einsum("qd,qcd->qc", q, vecs).astype(np.float32)
        scores[(cand < 0) | self.deleted[safe]] = -np.inf
        return _pad(*_top_k(cand, scores, k), k)

    # ---- updates
    def add(self, docids: Sequence[str], vectors: np.ndarray, model: dict[str, Any] | None = None) -> VectorIndex:
        """Add documents (a docid already present replaces its vector). Written aside, then renamed."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {vectors.shape} do not fit index {self.path} of dimension {self.dim}")
        if model is not None:
            check_model(self.model, model, self.path, strict=True)
        docids = [str(d) for d in docids]
        replaced = [self._positions[d] for d in docids if d in self._positions]
        with atomic_directory(self.path, overwrite=True) as tmp:
            writer = NpyAppender(tmp / "vectors.npy", self.dim, self.vectors.dtype)
            for lo in range(0, len(self.vectors), _CHUNK_ROWS):
                writer.append(self.vectors[lo : lo + _CHUNK_ROWS])
            writer.append(vectors)
            writer.close()
            save_docids(tmp, [*self.docids.tolist(), *docids])
            mask = np.concatenate([self.deleted, np.zeros(len(docids), dtype=bool)])
            mask[replaced] = True
            last: dict[str, int] = {}
            for i, d in enumerate(docids):
                last[d] = i
            dup = np.ones(len(docids), dtype=bool)
            dup[list(last.values())] = False
            mask[len(self.vectors) :] = dup
            manifest = {k: v for k, v in self.manifest.items() if k != "files"}
            generation = int(manifest.get("generation", 0)) + 1
            manifest["generation"], manifest["modified"] = generation, now()
            manifest["deleted"] = None
            if mask.any():
                manifest["deleted"] = f"deleted-{generation}.npy"
                np.save(tmp / manifest["deleted"], mask)
            if self.ann is not None:
                ann = self.ann
                _add_rows(ann, np.load(tmp / "vectors.npy", mmap_mode="r"), len(self.vectors))
                manifest["ann_file"] = f"ann-{generation}.faiss"
                _faiss().write_index(ann, str(tmp / manifest["ann_file"]))
            _write_manifest(tmp, manifest)
        return VectorIndex(self.path)

    def iter_vectors(self, chunk: int = _CHUNK_ROWS) -> Iterator[tuple[list[str], np.ndarray]]:
        """Live (docids, vectors) blocks, e.g. to rebuild with other ANN settings."""
        ids = self.docids
        for lo in range(0, len(self.vectors), chunk):
            live = ~self.deleted[lo : lo + chunk]
            yield ids[lo : lo + chunk][live].tolist(), np.asarray(self.vectors[lo : lo + chunk])[live]

    def rebuild(self, ann: AnnConfig | None = None, dtype: str | None = None) -> VectorIndex:
        """Compact away deleted rows and (re)build the ANN index, atomically replacing this one."""
        blocks = list(self.iter_vectors()) if len(self.vectors) <= _CHUNK_ROWS else self.iter_vectors()
        return write_vector_index(
            self.path, blocks, self.model, ann or self.ann_config, dtype or self.manifest["dtype"], overwrite=True
        )

    def dense(self, model: Any = None, k: int = 1000, **kwargs: Any) -> Any:
        """A ``DenseRetriever`` over this index (a ``MultimodalRetriever`` when a dual encoder built it);
        ``model`` defaults to the one recorded in the manifest."""
        return stage_factory("multimodal" if self.is_multimodal else "dense")(self, model, k=k, **kwargs)

    @property
    def is_multimodal(self) -> bool:
        """Built by a text-image dual encoder (images or texts in a joint space)."""
        return self.model.get("kind") == "dual"

    @property
    def modality(self) -> str:
        """What the rows are: ``"image"`` or ``"text"``."""
        return str(self.model.get("modality", "text"))


def hits_ranking(index: VectorIndex, qids: np.ndarray, pos: np.ndarray, scores: np.ndarray, queries: Any) -> Ranking:
    """A Ranking from ``search``'s ``(positions, scores)`` rows for ``qids`` (row i = qids[i]; -1 = no hit)."""
    found = pos >= 0
    rank = np.broadcast_to(np.arange(1, pos.shape[1] + 1), pos.shape)[found]
    qid = np.repeat(np.asarray(qids, dtype=object), found.sum(axis=1))
    return Ranking(qid, index.docids[pos[found]], scores[found], rank, queries=queries, presorted=True)


def _top_k(pos: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k highest scores, ties broken by the lower position (stable and deterministic)."""
    if k == 0:
        return pos[:, :0], scores[:, :0]
    if scores.shape[1] > k:
        # argpartition may split a tie at the k-th score arbitrarily: keep every column tied with it
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, part, 1).min(axis=1)
        keep = scores >= kth[:, None]
        width = int(keep.sum(axis=1).max())
        idx = np.argsort(~keep, axis=1, kind="stable")[:, :width]  # kept columns first, in column order
        valid = np.take_along_axis(keep, idx, 1)
        pos = np.where(valid, np.take_along_axis(pos, idx, 1), np.iinfo(np.int64).max)
        scores = np.where(valid, np.take_along_axis(scores, idx, 1), -np.inf)
    order = np.lexsort((pos, -scores), axis=-1)[:, :k]
    return np.take_along_axis(pos, order, 1), np.take_along_axis(scores, order, 1)


def _block_rows(num_queries: int) -> int:
    """Stored rows scored per block: ~4M scores (16 MiB), large enough for BLAS, small enough to stay near
    the cache for the selection pass (measured best among 2k-64k rows for 1-1000 queries)."""
    return min(max(_SEARCH_SCORES // max(num_queries, 1), 1 << 12), 1 << 16)


def _pad(pos: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    bad = np.isneginf(scores) | np.isnan(scores) | (pos < 0) | (pos == np.iinfo(np.int64).max)
    pos = np.where(bad, -1, pos)
    scores = np.where(bad, -np.inf, scores).astype(np.float32)
    if pos.shape[1] < k:
        extra = k - pos.shape[1]
        pos = np.hstack([pos, np.full((len(pos), extra), -1, dtype=np.int64)])
        scores = np.hstack([scores, np.full((len(scores), extra), -np.inf, dtype=np.float32)])
    return pos, scores


def check_model(recorded: dict[str, Any], actual: dict[str, Any], path: Path, strict: bool) -> None:
    """Refuse (``strict``) or warn when an index is used with another model than the one that built it."""
    if int(recorded.get("dim", -1)) != int(actual.get("dim", -2)):
        raise IndexFormatError(
            f"index {path} holds {recorded.get('dim')}-dimensional vectors from {recorded.get('model')!r}, but the "
            f"model {actual.get('model')!r} makes {actual.get('dim')}-dimensional ones. Use the index's model or rebuild."
        )
    fields = [
        f for f in ("fingerprint", "query_fingerprint", "pooling", "normalize") if recorded.get(f) != actual.get(f)
    ]
    if not fields:
        return
    message = (
        f"index {path} was built with {recorded.get('model')!r} (fingerprint {recorded.get('fingerprint')}, pooling "
        f"{recorded.get('pooling')}), but the model given is {actual.get('model')!r} (fingerprint "
        f"{actual.get('fingerprint')}, pooling {actual.get('pooling')}); {', '.join(fields)} differ. Query vectors "
        "would not be comparable with the stored ones: rebuild the index with this model, or pass "
        "allow_other_model=True if you know they are compatible."
    )
    if strict:
        raise RankstackError(message)
    warnings.warn(message, stacklevel=3)


