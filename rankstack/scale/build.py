"""Building a sharded index: one ordinary index per contiguous slice of the corpus, built by Ray tasks when Ray
is initialised (``ray.init()`` for a local cluster, ``ray.init(address="auto")`` on one started with
``ray start --head``), else one after another here.

A task that dies (a killed worker, a lost node) is retried by Ray (``max_retries``); a shard is written aside
and renamed into place, so a retried task replaces a half-written shard instead of adding to it, and the whole
sharded index appears only when every shard is complete (``shards.json`` last, in one rename).

Dense, SPLADE and ColBERT shards can be encoded with Ray Data (``encode="ray-data"``): the corpus becomes a
dataset, a pool of encoder actors maps it in batches, and the driver writes each shard from the stream, in corpus
order. Ray Data restarts a killed actor and retries its batch; the driver checks that every document comes back
exactly once, in order, before anything is written, so a retry can neither duplicate nor drop a document.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from rankstack.index.manifest import atomic_directory
from rankstack.scale.sharded import KINDS, ShardedIndex, write_shards_file
from rankstack.types import Document

Encode = Literal["tasks", "ray-data"]


def build_sharded(
    corpus: Iterable[Document],
    path: str | Path,
    num_shards: int,
    kind: str = "bm25",
    model: Any = None,
    *,
    overwrite: bool = False,
    store_docs: bool = True,
    encode: Encode = "tasks",
    encode_workers: int = 2,
    max_retries: int = 3,
    task: Callable[..., int] | None = None,
    bits: int | None = None,
) -> ShardedIndex:
    """Split ``corpus`` into ``num_shards`` contiguous slices and index each (``kind``: "bm25", or "dense" / "impact"
    (SPLADE) / "colbert" with ``model``, a Hugging Face id or directory that every worker loads; ColBERT shards
    compress with ``bits`` residual bits, default 2, 0 keeps float16 vectors). ``task`` replaces ``build_shard`` as
    what each task runs (same arguments), e.g. to add work around it."""
    task = task or build_shard
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, not {num_shards}")
    if encode not in get_args(Encode):
        raise ValueError(f"encode must be one of {', '.join(get_args(Encode))}, not {encode!r}")
    if encode == "ray-data" and kind == "bm25":
        raise ValueError("encode='ray-data' is for model-encoded shards (dense, impact, colbert); BM25 has nothing to encode")
    if kind in ("dense", "impact", "colbert") and model is None:
        raise ValueError(f"a {kind} sharded index needs model= (a Hugging Face id or a model directory"
                         f"{'; splade-tiny for the packaged SPLADE' if kind == 'impact' else ''})")  # fmt: skip
    docs = list(corpus)
    bounds = [len(docs) * i // num_shards for i in range(num_shards + 1)]
    slices = [docs[bounds[i] : bounds[i + 1]] for i in range(num_shards)]
    path = Path(path)
    with atomic_directory(path, overwrite=overwrite) as tmp:
        dirs = [tmp / f"shard-{i:03d}" for i in range(num_shards)]
        if kind == "dense" and encode == "ray-data":
            _dense_shards_with_ray_data(slices, dirs, model, encode_workers)
        elif kind == "impact" and encode == "ray-data":
            _impact_shards_with_ray_data(slices, dirs, model, encode_workers, bits, store_docs)
        elif kind == "colbert" and encode == "ray-data":
            _colbert_shards_with_ray_data(slices, dirs, model, encode_workers, bits)
        elif _ray_ready():
            import ray

            remote = ray.remote(max_retries=max_retries, retry_exceptions=False)(task)
            ray.get([remote.remote(ray.put(s), str(d), kind, _portable(model), store_docs, bits)
                     for s, d in zip(slices, dirs, strict=True)])  # fmt: skip
        else:
            for s, d in zip(slices, dirs, strict=True):
                task(s, str(d), kind, model, store_docs, bits)
        write_shards_file(tmp, kind, dirs, {"model": _portable(model)} if model is not None else None)
    return ShardedIndex(path)


def build_shard(docs: Sequence[Document], out: str, kind: str, model: Any, store_docs: bool, bits: int | None = None) -> int:
    """One shard: an ordinary index (written aside, then renamed: a retried task replaces, never appends).
    Impact shards keep float32 weights unless ``bits`` asks for quantised ones (each shard then has its own
    scale, divided out at search time, so scores differ from one index's by the quantisation error)."""
    if kind == "bm25":
        from rankstack.index import build_inverted_index

        build_inverted_index(docs, out, overwrite=True, store_docs=store_docs, show_progress=False)
    elif kind == "impact":
        from rankstack.index import build_impact_index
        from rankstack.sparse.impact import encode_corpus
        from rankstack.sparse.splade import load_splade

        encoder = load_splade(model) if isinstance(model, str | os.PathLike) else model
        vectors = encode_corpus(encoder, docs, show_progress=False)
        build_impact_index(vectors, out, bits=bits, encoder=encoder.describe(), overwrite=True, store_docs=store_docs,
                           show_progress=False)  # fmt: skip
    elif kind == "colbert":
        from rankstack.late import ColBERTEncoder, build_colbert_index

        encoder = ColBERTEncoder(model) if isinstance(model, str | os.PathLike) else model
        build_colbert_index(docs, encoder, out, bits=2 if bits is None else bits, overwrite=True, show_progress=False)
    else:
        from rankstack.dense import build_dense_index

        build_dense_index(docs, model, out, overwrite=True, show_progress=False)
    return len(docs)


def encode_with_ray_data(
    texts: Sequence[str], model: str, batch_size: int = 64, workers: int = 2, max_length: int | None = None
) -> np.ndarray:
    """Document vectors of ``texts`` (in order), encoded by ``workers`` Ray Data actors each holding ``model``
    (truncating at ``max_length`` tokens, default the model's)."""
    class Encode:
        def __init__(self) -> None:
            from rankstack.dense import BiEncoder

            self.encoder = BiEncoder(model) if max_length is None else BiEncoder(model, max_length=max_length)

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"row": batch["row"], "vector": self.encoder.encode_docs(list(batch["text"]))}

    vectors = [r["vector"] for r in _rows_in_order(texts, Encode, batch_size, workers)]
    return np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)


def encode_sparse_with_ray_data(texts: Sequence[str], model: str, batch_size: int = 64, workers: int = 2) -> list[dict[str, float]]:
    """SPLADE ``{token: weight}`` vectors of ``texts`` (in order), encoded by ``workers`` Ray Data actors; rows
    travel as two parallel lists (tokens, weights), which Arrow stores as it is."""
    class Encode:
        def __init__(self) -> None:
            from rankstack.sparse.splade import load_splade

            self.encoder = load_splade(model)

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
            vectors = self.encoder.encode_documents(list(batch["text"]))
            return {"row": batch["row"], "tokens": [list(v) for v in vectors],
                    "weights": [[float(w) for w in v.values()] for v in vectors]}  # fmt: skip

    return [dict(zip(r["tokens"], r["weights"], strict=True)) for r in _rows_in_order(texts, Encode, batch_size, workers)]


def encode_tokens_with_ray_data(texts: Sequence[str], model: Any, batch_size: int = 32, workers: int = 2) -> Iterator[np.ndarray]:
    """ColBERT ``[tokens, dim]`` matrices of ``texts``, streamed in order from ``workers`` Ray Data actors (the
    driver holds a few batches, never the corpus' vectors). ``model``: a directory or Hub id each actor loads, or
    a ``ColBERTEncoder``, shipped to the actors as it is (its projection included)."""
    class Encode:
        def __init__(self) -> None:
            from rankstack.late.retriever import as_colbert

            self.encoder = as_colbert(model)

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
            matrices = self.encoder.encode_docs(list(batch["text"]))
            # rows of different lengths travel flat, with their token counts
            return {"row": batch["row"], "tokens": np.array([len(m) for m in matrices], np.int64),
                    "flat": [m.astype(np.float16).ravel() for m in matrices]}  # fmt: skip

    for r in _rows_in_order(texts, Encode, batch_size, workers):
        yield np.asarray(r["flat"]).reshape(int(r["tokens"]), -1)


def _rows_in_order(texts: Sequence[str], actor: type, batch_size: int, workers: int) -> Iterator[dict[str, Any]]:
    """``texts`` as a Ray dataset of (row, text), mapped in batches by ``workers`` instances of ``actor``, its
    output rows streamed in the texts' order. A row missing, repeated or out of place (which a retried batch must
    never cause) stops the stream with an error before the caller writes it."""
    import ray

    _require_ray()
    data = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)])
    mapped = data.map_batches(actor, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers))
    mapped.context.execution_options.preserve_order = True
    expected = 0
    for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
        for i, row in enumerate(batch["row"]):
            if int(row) != expected:
                raise RuntimeError(f"Ray Data returned document {int(row)} where document {expected} was due "
                                   f"(a batch lost or repeated); nothing was written")  # fmt: skip
            yield {key: column[i] for key, column in batch.items()}
            expected += 1
    if expected != len(texts):
        raise RuntimeError(f"Ray Data returned {expected} of {len(texts)} documents; nothing was written")


def _impact_shards_with_ray_data(
    slices: list[list[Document]], dirs: list[Path], model: Any, workers: int, bits: int | None, store_docs: bool
) -> None:
    from rankstack.data.vectors import SparseVector
    from rankstack.index import build_impact_index
    from rankstack.sparse.splade import load_splade

    name = _portable(model)
    describe = (model if not isinstance(model, str | os.PathLike) else load_splade(name)).describe()
    texts = [d.contents() for s in slices for d in s]
    vectors = iter(encode_sparse_with_ray_data(texts, name, workers=workers))
    for s, d in zip(slices, dirs, strict=True):
        shard = [SparseVector(doc.docid, next(vectors), doc.contents()) for doc in s]
        build_impact_index(shard, d, bits=bits, encoder=describe, overwrite=True, store_docs=store_docs, show_progress=False)


def _colbert_shards_with_ray_data(slices: list[list[Document]], dirs: list[Path], model: Any, workers: int,
                                  bits: int | None) -> None:  # fmt: skip
    from rankstack.index.tokens import build_token_index
    from rankstack.late.retriever import as_colbert

    encoder = as_colbert(model)
    shipped = encoder if not isinstance(model, str | os.PathLike) else str(model)
    matrices = encode_tokens_with_ray_data([d.contents() for s in slices for d in s], shipped, workers=workers)
    for s, d in zip(slices, dirs, strict=True):
        blocks = _token_blocks(s, matrices)
        build_token_index(d, blocks, encoder.identity(), bits=2 if bits is None else bits, overwrite=True)


def _token_blocks(docs: list[Document], matrices: Iterator[np.ndarray], size: int = 1024) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """One shard's ``(docids, matrices)`` blocks, taken from the corpus-wide stream."""
    from rankstack.models import lazy

    for chunk in lazy.chunked(docs, size):
        yield [doc.docid for doc in chunk], [next(matrices) for _ in chunk]


def _dense_shards_with_ray_data(slices: list[list[Document]], dirs: list[Path], model: Any, workers: int) -> None:
    from rankstack.dense import BiEncoder
    from rankstack.index.vectors import AnnConfig, write_vector_index

    identity = BiEncoder(model).identity()
    texts = [d.contents() for s in slices for d in s]
    vectors = encode_with_ray_data(texts, str(model), workers=workers)
    start = 0
    for s, d in zip(slices, dirs, strict=True):
        block = vectors[start : start + len(s)]
        start += len(s)
        write_vector_index(d, [([doc.docid for doc in s], block)], identity, AnnConfig(kind="flat"), overwrite=True)


def _ray_ready() -> bool:
    try:
        import ray
    except ImportError:
        return False
    return bool(ray.is_initialized())


def _require_ray() -> None:
    if not _ray_ready():
        raise RuntimeError("Ray is not initialised: call ray.init() (a local cluster) or ray.init(address='auto')")


def _portable(model: Any) -> Any:
    """What a worker can load: a name or a path (an encoder object's own model name)."""
    if model is None or isinstance(model, str | os.PathLike):
        return None if model is None else str(model)
    if hasattr(model, "describe"):  # a sparse encoder
        return model.describe().get("model")
    if hasattr(model, "fingerprint") and hasattr(model, "path"):  # a ColBERT encoder
        return str(model.path)
    return getattr(model, "name", None) or model.identity().get("model")
