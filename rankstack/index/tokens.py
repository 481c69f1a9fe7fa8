"""The token index: every document's token vectors, compressed PLAID-style, with an inverted file of centroids.

Layout of an index directory::

    manifest.json            type "colbert", format_version, the encoder that made the vectors, bits,
                             counts, checksums
    centroids.npy            float32 [C, dim], unit-length k-means centroids of (a sample of) the tokens
    codes.npy                int32 [T], each token's nearest centroid
    residuals.npy            uint8 [T, dim * bits / 8], quantised residuals (``bits`` 1, 2, 4 or 8)
    vectors.npy              float16 [T, dim], the vectors themselves when ``bits`` is 0 (no compression)
    cutoffs.npy, weights.npy the residual codec's bucket edges and values (``residual.py``)
    doc_offsets.npy          int64 [N + 1], document i owns tokens doc_offsets[i]:doc_offsets[i + 1]
    ivf.npy, ivf_offsets.npy int32 document positions per centroid (each once), int64 [C + 1]
    docid_offsets.npy, docid_bytes.npy   external docids, utf-8
    deleted-<gen>.npy        bool[N] tombstones (only when documents were deleted or replaced)

Building streams the token vectors to disk as they are encoded (one block in memory), clusters a sample
of them (``num_centroids`` defaults to PLAID's ``2**floor(log2(16 sqrt(T)))``), fits the residual codec on a
held-out sample, then compresses the stored tokens block by block. Everything is built in a temporary
sibling and renamed into place; ``add`` encodes new documents against the existing centroids and codec and
rewrites the index aside; ``delete`` writes tombstones. Search lives with the ColBERT stage
(``rankstack.late``), which reads this index through ``candidates``-style arrays and ``doc_vectors``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import IndexFormatError, RankstackError
from rankstack.index.arrays import NpyAppender, concat_ranges, load_docids, save_docids
from rankstack.index.kmeans import assign, spherical_kmeans
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
from rankstack.index.residual import BITS, ResidualCodec
from rankstack.index.stages import stage_factory

INDEX_TYPE = "colbert"
FORMAT_VERSION = 1
_REBUILD = "Rebuild it with `rankstack index COLLECTION --colbert MODEL` (or rankstack.late.build_colbert_index)."
_CHUNK_TOKENS = 1 << 17

Blocks = Iterable[tuple[Sequence[str], Sequence[np.ndarray]]]


def default_centroids(num_tokens: int) -> int:
    """PLAID's number of centroids for ``num_tokens`` stored tokens: ``2**floor(log2(16 sqrt(T)))``, at most T."""
    if num_tokens < 1:
        return 0
    return int(min(num_tokens, 2 ** int(np.floor(np.log2(16 * np.sqrt(num_tokens))))))


def build_token_index(
    path: str | Path,
    blocks: Blocks,
    model: dict[str, Any],
    *,
    bits: int = 2,
    num_centroids: int | None = None,
    kmeans_sample: int | None = None,
    kmeans_iterations: int = 10,
    centroids: np.ndarray | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> TokenIndex:
    """Write a token index from ``(docids, [token matrix per document])`` blocks (streamed).

    ``model`` is what the manifest records about the encoder (``ColBERTEncoder.identity()``); ``bits`` 1, 2,
    4 or 8 per dimension, or 0 to keep float16 vectors (exact MaxSim). ``kmeans_sample`` tokens (default
    ``32 * num_centroids``) are clustered, unless ``centroids`` (unit-length ``[C, dim]``, e.g. another index's
    ``centroids`` over the same vectors) are given. A repeated docid keeps its last vectors.
    """
    if bits != 0 and bits not in BITS:
        raise ValueError(f"bits must be 0 (no compression) or one of {BITS}, not {bits}")
    dim = int(model["dim"])
    with atomic_directory(path, overwrite=overwrite) as tmp:
        raw = NpyAppender(tmp / "raw.npy", dim, np.float16)
        docids, lengths = _stream(blocks, raw, dim)
        raw.close()
        vectors = np.load(tmp / "raw.npy", mmap_mode="r")
        if not len(vectors):
            raise ValueError("no token vectors to index: the collection is empty")
        rng = np.random.default_rng(seed)
        if centroids is not None:
            centroids = np.ascontiguousarray(centroids, dtype=np.float32)
            if centroids.ndim != 2 or centroids.shape[1] != dim:
                raise ValueError(f"centroids of shape {centroids.shape} do not fit {dim}-dimensional vectors")
            k = len(centroids)
        else:
            k = int(num_centroids or default_centroids(len(vectors)))
            k = max(1, min(k, len(vectors)))
            size = min(len(vectors), int(kmeans_sample or 32 * k))
            sample_rows = np.sort(rng.choice(len(vectors), size=size, replace=False))
            centroids = spherical_kmeans(np.asarray(vectors[sample_rows], np.float32), k, kmeans_iterations, seed)
        codec = None
        if bits:
            held = np.sort(rng.choice(len(vectors), size=min(len(vectors), 1 << 16), replace=False))
            sample = np.asarray(vectors[held], np.float32)
            codes, _ = assign(sample, centroids)
            codec = ResidualCodec.fit(sample - centroids[codes], bits)
        _write_compressed(tmp, vectors, centroids, codec)
        del vectors
        if bits:
            (tmp / "raw.npy").unlink()
        else:
            (tmp / "raw.npy").rename(tmp / "vectors.npy")
        deleted = _save_layout(tmp, docids, lengths, k)
        manifest = {
            "type": INDEX_TYPE,
            "format_version": FORMAT_VERSION,
            "created": now(),
            "created_by": created_by(),
            "model": model,
            "dim": dim,
            "bits": bits,
            "num_centroids": k,
            "generation": 0,
            "deleted": deleted,
        }
        _write_manifest(tmp, manifest)
    return TokenIndex(path)


def _stream(blocks: Blocks, writer: NpyAppender, dim: int) -> tuple[list[str], list[int]]:
    docids: list[str] = []
    lengths: list[int] = []
    for ids, mats in blocks:
        if len(ids) != len(mats):
            raise ValueError(f"{len(ids)} docids for {len(mats)} token matrices")
        for d, m in zip(ids, mats, strict=True):
            m = np.asarray(m)
            if m.ndim != 2 or m.shape[1] != dim:
                raise ValueError(f"document {d!r}: token vectors of shape {m.shape}, expected [tokens, {dim}]")
            if not np.isfinite(m).all():
                raise ValueError(f"document {d!r}: its token vectors hold NaN or infinity")
            writer.append(m)
            docids.append(str(d))
            lengths.append(len(m))
    return docids, lengths


def _encode_into(vectors: np.ndarray, centroids: np.ndarray, codec: ResidualCodec | None, codes: np.ndarray,
                 residuals: np.ndarray | None, at: int, keep: NpyAppender | None = None) -> None:  # fmt: skip
    """Write each stored token's nearest centroid into ``codes[at:]`` and its quantised residual into
    ``residuals[at:]``, block by block (``keep``, if given, also receives the vectors: an uncompressed index)."""
    for lo in range(0, len(vectors), _CHUNK_TOKENS):
        block = np.asarray(vectors[lo : lo + _CHUNK_TOKENS], np.float32)
        c, _ = assign(block, centroids)
        codes[at + lo : at + lo + len(block)] = c
        if residuals is not None and codec is not None:
            residuals[at + lo : at + lo + len(block)] = codec.encode(block - centroids[c])
        if keep is not None:
            keep.append(block)


def _write_compressed(directory: Path, vectors: np.ndarray, centroids: np.ndarray, codec: ResidualCodec | None) -> None:
    """``codes.npy`` (and ``residuals.npy``) for every stored token, block by block; centroids and codec."""
    n, dim = vectors.shape
    codes = np.lib.format.open_memmap(directory / "codes.npy", mode="w+", dtype=np.int32, shape=(n,))
    residuals = None
    if codec is not None:
        residuals = np.lib.format.open_memmap(
            directory / "residuals.npy", mode="w+", dtype=np.uint8, shape=(n, codec.bytes_per_vector(dim))
        )
    _encode_into(vectors, centroids, codec, codes, residuals, 0)
    codes.flush()
    del codes
    if residuals is not None:
        residuals.flush()
        del residuals
    np.save(directory / "centroids.npy", centroids.astype(np.float32))
    if codec is not None:
        np.save(directory / "cutoffs.npy", codec.cutoffs)
        np.save(directory / "weights.npy", codec.weights)


def _save_layout(directory: Path, docids: list[str], lengths: Sequence[int], num_centroids: int,
                 deleted: np.ndarray | None = None, generation: int = 0) -> str | None:  # fmt: skip
    """Document offsets, docids, the centroid -> documents inverted file and the tombstones (repeated
    docids keep their last occurrence); returns the tombstone file's name, if any."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    np.save(directory / "doc_offsets.npy", offsets)
    save_docids(directory, docids)
    codes = np.load(directory / "codes.npy", mmap_mode="r")
    ivf, ivf_offsets = _inverted_file(codes, offsets, num_centroids)
    np.save(directory / "ivf.npy", ivf)
    np.save(directory / "ivf_offsets.npy", ivf_offsets)
    mask = np.zeros(len(docids), dtype=bool) if deleted is None else deleted.copy()
    last: dict[str, int] = {}
    for i, d in enumerate(docids):
        if not mask[i]:
            if d in last:
                mask[last[d]] = True
            last[d] = i
    if not mask.any():
        return None
    repeated = len(docids) - len(last) - (0 if deleted is None else int(deleted.sum()))
    if repeated > 0:
        warnings.warn(f"{repeated} repeated docids: the last vectors of each were kept", stacklevel=3)
    name = f"deleted-{generation}.npy"
    np.save(directory / name, mask)
    return name


def _inverted_file(codes: np.ndarray, offsets: np.ndarray, num_centroids: int) -> tuple[np.ndarray, np.ndarray]:
    """Each centroid's documents (positions, ascending, each once) and the per-centroid offsets."""
    n = len(offsets) - 1
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    keys = np.unique(np.asarray(codes, np.int64) * max(n, 1) + owner)
    cells = keys // max(n, 1)
    ivf = (keys % max(n, 1)).astype(np.int32)
    ivf_offsets = np.zeros(num_centroids + 1, dtype=np.int64)
    np.cumsum(np.bincount(cells, minlength=num_centroids), out=ivf_offsets[1:])
    return ivf, ivf_offsets


def _data_files(manifest: dict[str, Any]) -> list[str]:
    files = ["centroids.npy", "codes.npy", "doc_offsets.npy", "ivf.npy", "ivf_offsets.npy",
             "docid_offsets.npy", "docid_bytes.npy"]  # fmt: skip
    files += ["residuals.npy", "cutoffs.npy", "weights.npy"] if manifest["bits"] else ["vectors.npy"]
    return files + ([manifest["deleted"]] if manifest.get("deleted") else [])


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    manifest["files"] = {f: file_record(directory / f) for f in _data_files(manifest)}
    offsets = np.load(directory / "doc_offsets.npy", mmap_mode="r")
    num_rows = len(offsets) - 1
    num_deleted = int(np.load(directory / manifest["deleted"]).sum()) if manifest.get("deleted") else 0
    manifest.update(num_rows=num_rows, num_deleted=num_deleted, num_docs=num_rows - num_deleted,
                    num_tokens=int(offsets[-1]))  # fmt: skip
    write_json_atomic(directory / MANIFEST, manifest)


# ------------------------------------------------------------------------------------------ reading
class TokenIndex(ManifestIndex):
    """An opened token index: memory-mapped arrays, ``doc_vectors`` decompression, ``add`` / ``delete``, and
    the factory ``index.colbert(model)`` for the retrieval stage."""

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        self.manifest = read_manifest(self.path, INDEX_TYPE, (FORMAT_VERSION,))
        if verify:
            verify_files(self.path, self.manifest["files"], _REBUILD)
        load = lambda name: np.load(self.path / name, mmap_mode="r")  # noqa: E731
        self.centroids = np.asarray(load("centroids.npy"), np.float32)
        self.codes = load("codes.npy")
        self.doc_offsets = np.asarray(load("doc_offsets.npy"))
        self.ivf, self.ivf_offsets = load("ivf.npy"), np.asarray(load("ivf_offsets.npy"))
        if self.bits:
            self.residuals = load("residuals.npy")
            self.codec: ResidualCodec | None = ResidualCodec(self.bits, np.load(self.path / "cutoffs.npy"),
                                                             np.load(self.path / "weights.npy"))  # fmt: skip
            self.vectors = None
        else:
            self.residuals, self.codec, self.vectors = None, None, load("vectors.npy")
        if self.centroids.shape[1] != self.dim or len(self.codes) != self.doc_offsets[-1]:
            raise IndexFormatError(f"{self.path}: its arrays disagree with each other or the manifest. {_REBUILD}")
        deleted = self.manifest.get("deleted")
        self.deleted = np.load(self.path / deleted) if deleted else np.zeros(len(self.doc_offsets) - 1, dtype=bool)

    def _write_manifest(self, directory: Path, manifest: dict[str, Any]) -> None:
        _write_manifest(directory, manifest)  # the module's writer: this format's files and counts

    @property
    def bits(self) -> int:
        return int(self.manifest["bits"])

    @property
    def num_tokens(self) -> int:
        return int(self.manifest["num_tokens"])

    def bytes_per_token(self) -> float:
        """Stored bytes per token vector: the residual (or float16 vector) plus the 4-byte centroid id."""
        per = self.dim * 2 if not self.bits else self.dim * self.bits // 8
        return float(per + 4)

    @cached_property
    def docids(self) -> np.ndarray:
        return load_docids(self.path)

    @cached_property
    def _positions(self) -> dict[str, int]:
        live = ~self.deleted
        return {d: i for i, d in enumerate(self.docids.tolist()) if live[i]}

    def position(self, docid: str) -> int:
        pos = self._positions.get(str(docid))
        if pos is None:
            raise KeyError(f"docid {docid!r} is not in index {self.path}")
        return pos

    # ---- vectors
    def token_vectors(self, start: int, stop: int) -> np.ndarray:
        """float32 vectors of stored tokens ``start:stop`` (decompressed when the index is compressed)."""
        if self.vectors is not None:
            return np.asarray(self.vectors[start:stop], np.float32)
        assert self.codec is not None and self.residuals is not None
        codes = np.asarray(self.codes[start:stop])
        return self.codec.decode(np.asarray(self.residuals[start:stop]), self.centroids[codes], self.dim)

    def doc_vectors(self, positions: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The token vectors of documents at ``positions``, packed: ``(vectors [T', dim], offsets [len + 1])``."""
        positions = np.asarray(positions, dtype=np.int64)
        starts, stops = self.doc_offsets[positions], self.doc_offsets[positions + 1]
        offsets = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(stops - starts, out=offsets[1:])
        rows = concat_ranges(starts, stops)
        if self.vectors is not None:
            return np.asarray(self.vectors[rows], np.float32), offsets
        assert self.codec is not None and self.residuals is not None
        codes = np.asarray(self.codes[rows])
        return self.codec.decode(np.asarray(self.residuals[rows]), self.centroids[codes], self.dim), offsets

    def iter_documents(self, docs_per_block: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(positions, vectors, offsets)`` over every live document, a block at a time (exhaustive search)."""
        live = np.flatnonzero(~self.deleted)
        for lo in range(0, len(live), docs_per_block):
            positions = live[lo : lo + docs_per_block]
            yield (positions, *self.doc_vectors(positions))

    # ---- updates
    def add(self, blocks: Blocks, model: dict[str, Any] | None = None) -> TokenIndex:
        """Add documents (a docid already present is replaced): their tokens are compressed against this
        index's centroids and codec, and the index is rewritten aside and renamed into place."""
        if model is not None and model.get("fingerprint") != self.model.get("fingerprint"):
            raise RankstackError(f"index {self.path} was built with {self.model.get('model')!r}; add documents "
                                 f"encoded by the same model, not {model.get('model')!r}")  # fmt: skip
        with atomic_directory(self.path, overwrite=True) as tmp:
            raw = NpyAppender(tmp / "new.npy", self.dim, np.float16)
            docids, lengths = _stream(blocks, raw, self.dim)
            raw.close()
            new = np.load(tmp / "new.npy", mmap_mode="r")
            total = self.num_tokens_stored + len(new)
            codes = np.lib.format.open_memmap(tmp / "codes.npy", mode="w+", dtype=np.int32, shape=(total,))
            codes[: self.num_tokens_stored] = self.codes
            if self.codec is not None:
                width = self.codec.bytes_per_vector(self.dim)
                residuals = np.lib.format.open_memmap(tmp / "residuals.npy", mode="w+", dtype=np.uint8, shape=(total, width))
                residuals[: self.num_tokens_stored] = self.residuals
            else:
                vectors = NpyAppender(tmp / "vectors.npy", self.dim, np.float16)
                for lo in range(0, self.num_tokens_stored, _CHUNK_TOKENS):
                    vectors.append(self.vectors[lo : lo + _CHUNK_TOKENS])
            _encode_into(new, self.centroids, self.codec, codes, residuals if self.codec is not None else None,
                         self.num_tokens_stored, keep=None if self.codec is not None else vectors)  # fmt: skip
            codes.flush()
            del codes, new
            if self.codec is not None:
                residuals.flush()
                del residuals
                np.save(tmp / "cutoffs.npy", self.codec.cutoffs)
                np.save(tmp / "weights.npy", self.codec.weights)
            else:
                vectors.close()
            (tmp / "new.npy").unlink()
            np.save(tmp / "centroids.npy", self.centroids)
            manifest = {k: v for k, v in self.manifest.items() if k != "files"}
            generation = int(manifest.get("generation", 0)) + 1
            old = self.deleted
            deleted = np.concatenate([old, np.zeros(len(docids), dtype=bool)])
            deleted[[self._positions[d] for d in docids if d in self._positions]] = True  # replaced, not repeated
            all_docids = [*self.docids.tolist(), *docids]
            all_lengths = [*np.diff(self.doc_offsets).tolist(), *lengths]
            manifest["deleted"] = _save_layout(tmp, all_docids, all_lengths, len(self.centroids), deleted, generation)
            manifest["generation"], manifest["modified"] = generation, now()
            _write_manifest(tmp, manifest)
        return TokenIndex(self.path)

    @property
    def num_tokens_stored(self) -> int:
        """Tokens on disk, deleted documents' included."""
        return int(self.doc_offsets[-1])

    def colbert(self, model: Any = None, k: int = 1000, **kwargs: Any) -> Any:
        """A ``ColBERT`` retriever over this index; ``model`` defaults to the one recorded in the manifest."""
        return stage_factory("colbert")(self, model, k=k, **kwargs)
