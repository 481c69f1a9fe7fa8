"""The ``rankstack`` command line: index, search, rerank, eval, experiment.

Every subcommand runs a pipeline of stages; nothing here holds retrieval logic of its own. Output is
TREC run files and plain tables, so rankstack fits into existing trec_eval / ir_measures workflows.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from rankstack.errors import MissingExtraError, RankstackError

app = typer.Typer(
    name="rankstack",
    help=(
        "Retrieval experiments from the command line.\n\n"
        "Typical session:\n\n"
        "  rankstack index scifact --index-dir idx/scifact\n\n"
        "  rankstack index scifact --index-dir idx/scifact-dense --dense sentence-transformers/all-MiniLM-L6-v2\n\n"
        "  rankstack search idx/scifact --queries scifact --output runs/bm25.trec\n\n"
        "  rankstack rerank runs/bm25.trec --model cross-encoder/ms-marco-MiniLM-L-6-v2 --index idx/scifact "
        "--queries scifact --output runs/bm25-ce.trec\n\n"
        "  rankstack eval runs/bm25.trec --qrels scifact -m nDCG@10 -m AP\n\n"
        "or all at once:  rankstack experiment scifact\n\n"
        "Collections are named (scifact, nfcorpus, ...: found through $RANKSTACK_DATA, the cache, or "
        "downloaded) or given as a path to a BEIR folder or a corpus file."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_METRICS = ["nDCG@10", "AP@1000", "R@100", "RR@10", "P@10"]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _progress(items, desc: str):
    from tqdm.auto import tqdm

    items = list(items)
    return tqdm(items, desc=desc, unit=desc.rstrip("s"), disable=len(items) < 2, file=sys.stderr)


def _load_collection(name_or_path: str):
    from rankstack.data import load_collection

    return load_collection(name_or_path)


def _is_collection(value: str) -> bool:
    """A collection name or BEIR folder, as opposed to a single corpus/queries file."""
    p = Path(value)
    if not p.exists():  # a name, resolved through RANKSTACK_DATA, the cache, or a download; not a file path
        return not p.suffix or p.suffix.lstrip(".").isdigit()
    return p.is_dir() and any((p / name).exists() for name in ("corpus.jsonl.gz", "corpus.jsonl"))


def _read_queries(value: str, split: str, field: str):
    """Queries from a collection name/folder (its ``split``) or from a queries file."""
    from rankstack.data import read_queries

    if _is_collection(value):
        return _load_collection(value).queries_for(split)
    return read_queries(value, field=field)


def _read_qrels(value: str, split: str):
    from rankstack.types import Qrels

    if _is_collection(value):
        return _load_collection(value).qrels(split)
    return Qrels.read(value)


def _quiet_model_loading() -> None:
    """transformers draws a progress bar for every checkpoint it loads; rankstack shows its own."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers is first imported
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False) -> None:
    _quiet_model_loading()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def index(
    corpus: Annotated[
        str | None,
        typer.Argument(
            help="Collection name (scifact), BEIR folder, or corpus file (.jsonl[.gz], .tsv, TREC SGML, .parquet)."
        ),
    ] = None,
    index_dir: Annotated[
        Path | None, typer.Option("--index-dir", "-i", help="Where to write the index directory.")
    ] = None,
    clean: Annotated[
        bool,
        typer.Option(
            "--clean",
            help="Build nothing: remove what killed builds and updates of --index-dir left behind, and old "
            "generations no reader uses any more (safe while others search).",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace an existing index (atomically: the old one stays until the new one is complete)."),
    ] = False,
    on_duplicate: Annotated[str, typer.Option(help="Repeated docids: 'error', 'keep-first' or 'keep-last'.")] = "error",
    stemmer: Annotated[
        str,
        typer.Option(
            help="'porter' (Lucene's PorterStemFilter, as Pyserini), a PyStemmer algorithm ('english' = Snowball), or 'none'."
        ),
    ] = "porter",
    stopwords: Annotated[
        str, typer.Option(help="Stopword list: 'lucene' (Lucene's English set) or 'none'.")
    ] = "lucene",
    store_docs: Annotated[
        bool, typer.Option(help="Keep document texts in the index (needed by re-rankers and `index.docs[docid]`).")
    ] = True,
    threads: Annotated[
        int,
        typer.Option(
            help="Processes analysing documents (0: one per core). The index is the same, byte for byte, "
            "whatever the number.",
            min=0,
        ),
    ] = 1,
    dense: Annotated[
        str | None,
        typer.Option(
            help="Build a dense (vector) index with this bi-encoder instead: a model directory or Hugging Face id.",
            rich_help_panel="Dense",
        ),
    ] = None,
    ann: Annotated[
        str, typer.Option(help="Dense: 'flat' (exact), 'hnsw' or 'ivfpq'.", rich_help_panel="Dense")
    ] = "flat",
    dtype: Annotated[
        str, typer.Option(help="Dense: store vectors as float32 or float16 (half the size).", rich_help_panel="Dense")
    ] = "float32",
    backend: Annotated[
        str,
        typer.Option(
            help="Dense: 'torch' (CPU or CUDA) or 'onnx' (int8 export from `rankstack export-onnx`).",
            rich_help_panel="Dense",
        ),
    ] = "torch",
    max_length: Annotated[
        int | None, typer.Option(help="Dense: truncate documents to this many tokens.", rich_help_panel="Dense")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Dense: texts per forward pass (default 32; 8 with --backend onnx).", rich_help_panel="Dense"
        ),
    ] = None,
    impact: Annotated[
        str | None,
        typer.Option(
            help="Build an impact index of learned sparse vectors made by this SPLADE model: a directory, a Hugging "
            "Face id (naver/splade-cocondenser-ensembledistil) or 'splade-tiny' (the packaged SPLADE-tiny).",
            rich_help_panel="Learned sparse",
        ),
    ] = None,
    vectors: Annotated[
        Path | None,
        typer.Option(
            help="Build an impact index from vectors made elsewhere: a JsonVectorCollection file (one "
            '{"id", "contents", "vector": {token: weight}} a line, .jsonl or .jsonl.gz). No corpus needed; with '
            "--impact MODEL too, MODEL encodes the queries and every token must be in its vocabulary.",
            rich_help_panel="Learned sparse",
        ),
    ] = None,
    bits: Annotated[
        int | None,
        typer.Option(
            help="Impact: bits per quantised weight (1-16; 0 keeps float32; default 8). ColBERT: residual bits per "
            "dimension (1, 2, 4 or 8; 0 keeps float16 vectors; default 2).",
            rich_help_panel="Learned sparse",
        ),
    ] = None,
    doc2query: Annotated[
        str | None,
        typer.Option(
            help="BM25: first expand each document with queries sampled from this seq2seq model "
            "(castorini/doc2query-t5-base-msmarco); cached in --doc2query-cache.",
            rich_help_panel="Learned sparse",
        ),
    ] = None,
    doc2query_queries: Annotated[
        int, typer.Option(help="doc2query: queries sampled per document.", rich_help_panel="Learned sparse")
    ] = 10,
    doc2query_cache: Annotated[
        Path,
        typer.Option(
            help="doc2query: where expansions are kept (re-indexing samples nothing twice).",
            rich_help_panel="Learned sparse",
        ),
    ] = Path(".cache/doc2query"),
    deepct: Annotated[
        str | None,
        typer.Option(
            help="BM25 over DeepCT-rewritten term frequencies (round(weight x 100)) predicted by this trained "
            "DeepCT model directory.",
            rich_help_panel="Learned sparse",
        ),
    ] = None,
    colbert: Annotated[
        str | None,
        typer.Option(
            help="Build a compressed ColBERT token index (PLAID) with this model: a ColBERT / PyLate directory, a "
            "Hugging Face id (colbert-ir/colbertv2.0) or one trained by `rankstack train --colbert`. "
            "--max-length sets the document length (default: the model's), --bits the compression.",
            rich_help_panel="Late interaction",
        ),
    ] = None,
    images: Annotated[
        bool,
        typer.Option(
            "--images",
            help="Index the collection's images (corpus rows with an 'image' path) with the dual encoder --model.",
            rich_help_panel="Multimodal",
        ),
    ] = False,
    captions: Annotated[
        bool,
        typer.Option(
            "--captions",
            help="Index the collection's captions (its queries) with --model's text side: what image queries search.",
            rich_help_panel="Multimodal",
        ),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="Multimodal: a dual encoder (a directory `rankstack train --multimodal` wrote, a CLIP / SigLIP "
            "directory or Hugging Face id such as openai/clip-vit-base-patch32, or open_clip:ARCH/TAG).",
            rich_help_panel="Multimodal",
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            help="Multimodal: keep only images whose corpus FIELD equals VALUE (FIELD=VALUE, e.g. coco_split=val2017).",
            rich_help_panel="Multimodal",
        ),
    ] = None,
    shards: Annotated[
        int,
        typer.Option(
            help="BM25, --dense, --impact or --colbert: split the corpus into this many shards (each an ordinary index) that "
            "`rankstack search` merges exactly (BM25 with the collection's statistics; impact shards keep float32 "
            "weights unless --bits is given).",
            min=0,
            rich_help_panel="Scale",
        ),
    ] = 0,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="With --shards: build the shards as Ray tasks on this cluster ('local' starts one here; 'auto' "
            "joins the one `ray start --head` started; or host:port). Needs the [scale] extra.",
            rich_help_panel="Scale",
        ),
    ] = None,
    ray_data: Annotated[
        int,
        typer.Option(
            "--ray-data",
            metavar="ACTORS",
            help="With --shards, --ray and --dense / --impact / --colbert: encode the corpus with this many Ray Data "
            "actors (each loads the model once; a killed one is restarted and its batch retried), then write the "
            "shards here.",
            min=0,
            rich_help_panel="Scale",
        ),
    ] = 0,
) -> None:
    """Build a BM25 inverted index; with --dense a vector index, --impact / --vectors an impact index, --colbert a
    compressed ColBERT token index, --images / --captions a text-image index.

    Examples:
      rankstack index scifact --index-dir idx/scifact
      rankstack index scifact --index-dir idx/scifact-minilm --dense sentence-transformers/all-MiniLM-L6-v2
      rankstack index scifact --index-dir idx/scifact-hnsw --dense MODEL_DIR --ann hnsw --dtype float16
      rankstack index scifact --index-dir idx/scifact-splade --impact splade-tiny
      rankstack index --vectors splade-vectors.jsonl.gz --index-dir idx/splade --bits 8
      rankstack index scifact --index-dir idx/scifact-d2q --doc2query castorini/doc2query-t5-base-msmarco
      rankstack index scifact --index-dir idx/scifact-colbert --colbert models/colbert-scifact/final --bits 2
      rankstack index --clean --index-dir idx/scifact    # tidy up after a killed build or update
      rankstack index coco-mini-captions -i idx/coco-images --images --model models/lit/final --where coco_split=val2017
      rankstack index coco-mini-captions -i idx/coco-captions --captions --model models/lit/final --where coco_split=val2017
    """
    from rankstack.index import build_inverted_index
    from rankstack.text import Analyzer

    if index_dir is None:
        _fail("--index-dir is required: where the index is (or is to be) written")
    if clean:
        _clean(index_dir)
        return
    if images or captions:
        _index_multimodal(corpus, index_dir, model, images, where, overwrite)
        return
    if shards and impact is not None and corpus is not None:
        docs = _load_collection(corpus).corpus if _is_collection(corpus) else _read_corpus(corpus)
        _index_sharded(docs, index_dir, shards, None, ray_address, overwrite, store_docs, impact=impact,
                       bits=bits or None, ray_data=ray_data)  # fmt: skip
        return
    if vectors is not None or impact is not None:
        _index_impact(corpus, index_dir, impact, vectors, 8 if bits is None else bits, overwrite, on_duplicate,
                      store_docs, max_length, batch_size)  # fmt: skip
        return
    if corpus is None:
        _fail("give the corpus to index: a collection name (scifact), a BEIR folder or a corpus file")
    try:
        if _is_collection(corpus):
            docs = _load_collection(corpus).corpus
        else:
            from rankstack.data import read_corpus

            docs = read_corpus(corpus)
        if shards:
            _index_sharded(docs, index_dir, shards, dense, ray_address, overwrite, store_docs, colbert=colbert,
                           bits=bits, ray_data=ray_data)  # fmt: skip
            return
        if colbert is not None:
            _index_colbert(docs, index_dir, colbert, 2 if bits is None else bits, overwrite, max_length, batch_size)
            return
        if dense is not None:
            from rankstack.dense import BiEncoder, build_dense_index

            encoder = BiEncoder(dense, backend=backend, max_length=max_length, batch_size=batch_size)  # type: ignore[arg-type]
            start = time.perf_counter()
            vidx = build_dense_index(docs, encoder, index_dir, ann=ann, dtype=dtype, overwrite=overwrite)  # type: ignore[arg-type]
            elapsed = time.perf_counter() - start
            typer.echo(
                f"encoded {vidx.num_docs:,} documents with {dense} ({vidx.dim} dimensions, {ann}) into {index_dir} "
                f"in {elapsed:.1f}s ({vidx.num_docs / max(elapsed, 1e-9):.1f} docs/s)"
            )
            return
        analyzer = Analyzer(stopwords=stopwords, stemmer=None if stemmer == "none" else stemmer)
        start = time.perf_counter()
        workers = threads or _cores()
        if doc2query is not None:
            from rankstack.sparse.doc2query import Doc2Query

            _quiet_model_loading()
            expander = Doc2Query(doc2query, num_queries=doc2query_queries, cache_dir=doc2query_cache)
            docs = expander.expand(docs)
        if deepct is not None:
            from rankstack.index import build_term_index
            from rankstack.sparse.deepct import DeepCT

            _quiet_model_loading()
            bags = DeepCT(deepct, analyzer=analyzer).bags(docs)
            idx = build_term_index(bags, index_dir, analyzer, overwrite=overwrite, store_docs=store_docs)
        else:
            idx = build_inverted_index(
                docs,
                index_dir,
                analyzer,
                overwrite=overwrite,
                on_duplicate=on_duplicate,  # type: ignore[arg-type]
                store_docs=store_docs,
                threads=workers,
            )
    except (RankstackError, FileExistsError, ValueError) as e:
        _fail(str(e))
    counts = idx.manifest["counts"]
    typer.echo(
        f"indexed {counts['documents']:,} documents ({counts['postings']:,} postings, "
        f"{counts['empty_documents']} empty) into {index_dir} in {time.perf_counter() - start:.1f}s"
    )


def _index_sharded(docs, index_dir: Path, shards: int, dense: str | None, ray_address: str | None, overwrite: bool,
                   store_docs: bool, impact: str | None = None, bits: int | None = None,
                   colbert: str | None = None, ray_data: int = 0) -> None:  # fmt: skip
    from rankstack.scale import build_sharded

    kind = "impact" if impact else "colbert" if colbert else "dense" if dense else "bm25"
    if ray_data and (ray_address is None or kind == "bm25"):
        _fail("--ray-data encodes with a model on a Ray cluster: give --ray (e.g. --ray local) and one of --dense, "
              "--impact or --colbert")  # fmt: skip
    if ray_address is not None:
        try:
            import ray
        except ImportError:
            _fail("--ray needs the [scale] extra: pip install 'rankstack[scale]'")
        ray.init(address=None if ray_address == "local" else ray_address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)  # fmt: skip
    start = time.perf_counter()
    sharded = build_sharded(docs, index_dir, shards, kind, impact or colbert or dense, overwrite=overwrite,
                            store_docs=store_docs, bits=bits, encode="ray-data" if ray_data else "tasks",
                            encode_workers=ray_data or 2)  # fmt: skip
    counts = [s["docs"] for s in sharded.manifest["shards"]]
    typer.echo(f"indexed {sum(counts):,} documents into {shards} shards ({', '.join(f'{c:,}' for c in counts)}) in "
               f"{index_dir} in {time.perf_counter() - start:.1f}s{' with Ray' if ray_address else ''}"
               f"{f' ({ray_data} Ray Data actors encoding)' if ray_data else ''}")  # fmt: skip


def _where(values: list[str] | None) -> dict[str, str]:
    """``--where FIELD=VALUE`` options as a mapping."""
    out = {}
    for value in values or []:
        field, sep, wanted = value.partition("=")
        if not sep or not field:
            _fail(f"--where takes FIELD=VALUE (e.g. coco_split=val2017), not {value!r}")
        out[field] = wanted
    return out


def _image_collection(corpus: str | None, where: list[str] | None):
    from rankstack.multimodal import ImageCollection

    if corpus is None or not _is_collection(corpus):
        _fail("give an image collection: a name (coco-mini-captions) or a BEIR-like folder whose corpus rows name images")
    return ImageCollection(_load_collection(corpus), where=_where(where))


def _index_multimodal(corpus, index_dir: Path, model: str | None, images: bool, where, overwrite: bool) -> None:
    from rankstack.multimodal import build_image_index, build_text_index, load_dual_encoder

    if model is None:
        _fail("--images / --captions need --model: the dual encoder whose vectors the index holds")
    try:
        col = _image_collection(corpus, where)
        _quiet_model_loading()
        encoder = load_dual_encoder(model)
        start = time.perf_counter()
        if images:
            idx = build_image_index(col, encoder, index_dir, overwrite=overwrite)
            what = "images"
        else:
            idx = build_text_index(col.captions, encoder, index_dir, overwrite=overwrite, source=col.root)
            what = "captions"
    except (RankstackError, FileExistsError, ValueError) as e:
        _fail(str(e))
    elapsed = time.perf_counter() - start
    typer.echo(f"encoded {idx.num_docs:,} {what} of {col} with {model} ({idx.dim} dimensions) into {index_dir} in "
               f"{elapsed:.1f}s ({idx.num_docs / max(elapsed, 1e-9):.1f}/s)")  # fmt: skip


IMAGE_METRICS = ["nDCG@10", "R@1", "R@5", "R@10"]


def _experiment_images(collection: str, model: str, where, split: str, metrics: list[str], test: str,
                       vl_rerank: str | None = None, depth: int = 20) -> None:  # fmt: skip
    """Both directions on an image collection, each in its own table (the query sets differ)."""
    import tempfile

    import pandas as pd

    import rankstack
    from rankstack.eval import Experiment
    from rankstack.index import build_inverted_index
    from rankstack.multimodal import TextProxy, build_image_index, build_text_index, load_dual_encoder

    try:
        images = _image_collection(collection, where)
        _quiet_model_loading()
        dual = load_dual_encoder(model)
        with tempfile.TemporaryDirectory(prefix="rankstack-images-") as tmp:
            image_index = build_image_index(images, dual, Path(tmp) / "images")
            caption_index = build_text_index(images.captions, dual, Path(tmp) / "captions")
            captions = [rankstack.Document(q, t) for q, t in images.captions]
            proxy_index = build_inverted_index(captions, Path(tmp) / "captions-bm25", show_progress=False)
            proxy = TextProxy(proxy_index.bm25(k=100), images.caption_image)
            t2i_queries, t2i_qrels = images.text_to_image()
            i2t_queries, i2t_qrels = images.image_to_text()
            t2i = {"dual encoder": image_index.dense(dual, k=100)(t2i_queries), "text proxy (BM25, other captions)":
                   proxy(t2i_queries)}  # fmt: skip
            i2t = {"dual encoder": caption_index.dense(dual, k=100)(i2t_queries)}
            if vl_rerank is not None:
                from rankstack.multimodal.vl import VLReranker

                reranker = VLReranker(vl_rerank, images=images, texts=images.captions)
                name = f"dual encoder >> VL re-ranker (top {depth})"
                t2i[name] = (image_index.dense(dual, k=100) % depth >> reranker)(t2i_queries)
                i2t[name] = (caption_index.dense(dual, k=100) % depth >> reranker)(i2t_queries)
        tables = [("text -> image", Experiment(t2i, t2i_queries, t2i_qrels, metrics, baseline=0, test=test), t2i_queries),
                  ("image -> text", Experiment(i2t, i2t_queries, i2t_qrels, metrics, baseline=0 if len(i2t) > 1 else None,
                                               test=test), i2t_queries)]  # fmt: skip
    except (RankstackError, ValueError) as e:
        _fail(str(e))
    for title, table, queries in tables:
        typer.echo(f"\n{images}: {title}, {len(queries)} queries\n")
        with pd.option_context("display.width", 250, "display.max_columns", 80, "display.float_format", "{:.4f}".format):
            typer.echo(_compact(table, metrics).to_string(index=False))


def _dual_candidates(images, model: str, k: int = 10) -> dict[str, list[str]]:
    """Each caption's top ``k`` images by a dual encoder: the VL re-ranker's hard negatives."""
    import tempfile

    from rankstack.multimodal import build_image_index, load_dual_encoder

    dual = load_dual_encoder(model)
    queries, _ = images.text_to_image()
    with tempfile.TemporaryDirectory(prefix="rankstack-candidates-") as tmp:
        run = build_image_index(images, dual, Path(tmp) / "images", show_progress=False).dense(dual, k=k)(queries)
    texts, out = queries.to_dict(), {}
    for qid, docid in zip(run.qid.tolist(), run.docid.tolist(), strict=True):
        out.setdefault(texts[qid], []).append(str(images.images[docid]))
    return out


def _multimodal_labels(idx) -> dict[str, str]:
    """What to print beside a text-image index's hits: image paths or caption texts, read from the collection
    folder the index recorded (nothing when it recorded none or the folder has moved)."""
    from rankstack.multimodal import ImageCollection

    source = idx.model.get("source")
    if not source or not Path(source).is_dir():
        return {}
    try:
        col = ImageCollection(source)
    except (RankstackError, ValueError, OSError):
        return {}
    if idx.modality == "image":
        return {d: str(p) for d, p in col.images.items()}
    return col.captions.to_dict()


def _train_multimodal(collection, model, output_dir, split, where, image_tower, text_layers, class_prompts,
                      hard_negatives, epochs, batch_size, lr, seed, save_every, resume, vl=False, candidates=None,
                      num_negatives=None, loop: dict[str, Any] | None = None) -> None:  # fmt: skip
    from rankstack.multimodal import CompositeDualEncoder, ImageCollection
    from rankstack.train.lit import LiTConfig, LiTTrainer

    try:
        col = _load_collection(collection)
        if split not in col.splits:
            raise ValueError(f"{col.name} has no {split!r} judgments (it has {col.splits}); choose the training images "
                             "with --split and --where, e.g. --split test --where coco_split=train2017")  # fmt: skip
        images = ImageCollection(col, where=_where(where), split=split)
        _quiet_model_loading()
        start = time.perf_counter()
        if vl:
            from rankstack.multimodal.vl import VLCrossEncoder
            from rankstack.train.vl import VLConfig, VLTrainer

            pools = _dual_candidates(images, candidates) if candidates else None
            config = VLConfig(epochs=epochs, batch_size=batch_size or 16, learning_rate=lr or 5e-5, seed=seed,
                              num_negatives=3 if num_negatives is None else num_negatives, save_every=save_every,
                              train_layers=text_layers or None, **(loop or {}))  # fmt: skip
            final = VLTrainer(VLCrossEncoder(image_tower, model), images.pairs(), config, output_dir, pools).train(resume=resume)
            typer.echo(f"trained a VL re-ranker on {len(images.pairs())} captions in {time.perf_counter() - start:.0f}s: "
                       f"{final}\n  use it: rankstack experiment {collection} --images DUAL --vl-rerank {final}")  # fmt: skip
            return
        dual = CompositeDualEncoder(image_tower, model)
        config = LiTConfig(epochs=epochs, batch_size=batch_size or 64, learning_rate=lr or 2e-5, train_layers=text_layers,
                           class_prompts=class_prompts, hard_negatives=hard_negatives, seed=seed,
                           save_every=save_every, **(loop or {}))  # fmt: skip
        final = LiTTrainer(dual, images.pairs(), config, output_dir).train(resume=resume)
    except (RankstackError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"trained on {len(images.pairs())} captions of {len(images.images)} images in "
               f"{time.perf_counter() - start:.0f}s: {final}\n  index it: rankstack index {collection} -i IDX --images "
               f"--model {final}")  # fmt: skip


def _index_colbert(docs, index_dir: Path, model: str, bits: int, overwrite: bool, max_length, batch_size) -> None:
    from rankstack.late import ColBERTEncoder, build_colbert_index

    _quiet_model_loading()
    encoder = ColBERTEncoder(model, doc_length=max_length, batch_size=batch_size or 32)
    start = time.perf_counter()
    idx = build_colbert_index(docs, encoder, index_dir, bits=bits, overwrite=overwrite)
    elapsed = time.perf_counter() - start
    typer.echo(
        f"encoded {idx.num_docs:,} documents ({idx.num_tokens:,} token vectors, {idx.bytes_per_token():.0f} bytes "
        f"each, {idx.manifest['num_centroids']:,} centroids) with {model} into {index_dir} in {elapsed:.1f}s "
        f"({idx.num_docs / max(elapsed, 1e-9):.1f} docs/s)"
    )


def _impact_encoder(model: str, **kwargs: Any):
    from rankstack.sparse.splade import load_splade

    return load_splade(model, **kwargs)


def _index_impact(
    corpus, index_dir: Path, model, vectors, bits, overwrite, on_duplicate, store_docs, max_length, batch_size
):
    from rankstack.index import build_impact_index

    if vectors is None and model is None:
        _fail("give --impact MODEL (encode the corpus) or --vectors FILE (vectors made elsewhere)")
    if not 0 <= bits <= 16:
        _fail(f"--bits must be 1..16, or 0 for float32 weights, not {bits}")
    start = time.perf_counter()
    try:
        vocabulary = None
        if vectors is not None:
            if not vectors.exists():
                _fail(f"{vectors}: no such file (a JsonVectorCollection .jsonl or .jsonl.gz)")
            source, encoder = vectors, None
            if model is not None:  # vectors made elsewhere, queries to be encoded by MODEL: same vocabulary?
                _quiet_model_loading()
                enc = _impact_encoder(model)
                encoder, vocabulary = {**enc.describe(), "model": model}, set(enc._vocab)
        else:
            if corpus is None:
                _fail("give the corpus to encode: a collection name (scifact), a BEIR folder or a corpus file")
            docs = _load_collection(corpus).corpus if _is_collection(corpus) else _read_corpus(corpus)
            _quiet_model_loading()
            options = {k: v for k, v in (("max_length", max_length), ("batch_size", batch_size)) if v}
            enc = _impact_encoder(model, **options)
            source, encoder = enc.encode_corpus(docs), {**enc.describe(), "model": model}
        idx = build_impact_index(
            source, index_dir, bits=bits or None, encoder=encoder, overwrite=overwrite,
            on_duplicate=on_duplicate, store_docs=store_docs, vocabulary=vocabulary,  # type: ignore[arg-type]
        )  # fmt: skip
    except (RankstackError, FileExistsError, ValueError) as e:
        _fail(str(e))
    counts = idx.manifest["counts"]
    typer.echo(
        f"indexed {counts['documents']:,} documents ({counts['postings']:,} postings, "
        f"{'float32' if not bits else f'{bits}-bit'} impacts) into {index_dir} in {time.perf_counter() - start:.1f}s"
    )


def _read_corpus(path: str):
    from rankstack.data import read_corpus

    return read_corpus(path)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _clean(index_dir: Path) -> None:
    from rankstack.index.inverted import clean_index

    if not index_dir.exists() and not any(index_dir.parent.glob(f".{index_dir.name}.*")):
        _fail(f"{index_dir}: no index and nothing left behind by one")
    try:
        done = clean_index(index_dir)
    except RankstackError as e:
        _fail(str(e))
    for line in done:
        typer.echo(line)
    typer.echo(f"{index_dir}: {'nothing to clean' if not done else f'{len(done)} cleaned'}")


@app.command()
def search(
    index_dir: Annotated[Path, typer.Argument(help="An index directory built by `rankstack index`.")],
    queries: Annotated[
        str | None,
        typer.Option(
            "--queries",
            "-q",
            help="Collection name/folder (uses --split) or a queries file (.jsonl, .tsv, TREC topics).",
        ),
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="Search one query string and print the hits.")] = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", help="Search with one image (an image or caption index of a dual encoder)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Which judged query set of a collection to use.")] = "test",
    topic_field: Annotated[str, typer.Option(help="TREC topics field: title, desc or narr.")] = "title",
    k: Annotated[int, typer.Option("--k", "-k", help="Documents per query (at least 1).")] = 1000,
    k1: Annotated[float, typer.Option(help="BM25 term-frequency saturation.")] = 0.9,
    b: Annotated[float, typer.Option(help="BM25 length normalisation.")] = 0.4,
    rm3: Annotated[bool, typer.Option(help="Expand queries with RM3 pseudo-relevance feedback.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write a TREC run file here (default: print).")
    ] = None,
    tag: Annotated[str, typer.Option(help="Run tag in the TREC file's last column.")] = "rankstack",
    threads: Annotated[int | None, typer.Option(help="Threads for batch search (default: all cores).")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Dense, impact or ColBERT index: query encoder (default: the model recorded in the index).",
            rich_help_panel="Dense",
        ),
    ] = None,
    backend: Annotated[str, typer.Option(help="Dense: 'torch' or 'onnx'.", rich_help_panel="Dense")] = "torch",
    exact: Annotated[
        bool,
        typer.Option(
            help="Dense: score every document, ignoring HNSW / IVF-PQ. ColBERT: exact MaxSim over every document "
            "instead of PLAID's candidates.",
            rich_help_panel="Dense",
        ),
    ] = False,
    ef_search: Annotated[
        int | None, typer.Option(help="Dense HNSW: candidate list size (recall vs speed).", rich_help_panel="Dense")
    ] = None,
    nprobe: Annotated[
        int | None,
        typer.Option(
            help="Dense IVF-PQ: cells visited. ColBERT: centroids probed per query vector (recall vs speed).",
            rich_help_panel="Dense",
        ),
    ] = None,
    allow_other_model: Annotated[
        bool,
        typer.Option(help="Dense: search with a model other than the index's (warns).", rich_help_panel="Dense"),
    ] = False,
    max_query_terms: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Impact: keep each query's N heaviest tokens (query term pruning: SPLADE-tiny's SciFact queries "
            "carry ~53; 24 touch 42% of the postings at the same nDCG@10). Default: every token, exact.",
            rich_help_panel="Impact",
        ),
    ] = None,
) -> None:
    """Search an index (BM25, optionally + RM3; dense; impact; or ColBERT) and write a TREC run.

    The index's manifest says which kind it is. An impact index encodes queries with the model that built it
    (or --model); one built from --vectors reads queries as space-separated tokens unless --model is given.

    Examples:
      rankstack search idx/scifact --queries scifact --output bm25.trec
      rankstack search idx/scifact --query "vitamin D and bone density" -k 5
      rankstack search idx/scifact-minilm --queries scifact --output dense.trec
      rankstack search idx/scifact-colbert --queries scifact -k 100 --output colbert.trec
      rankstack search idx/coco-images --query "a dog on a beach" -k 5
      rankstack search idx/coco-captions --image photo.jpg -k 5
    """
    import rankstack
    from rankstack.serve.spec import retriever_for, retriever_kind
    from rankstack.types import Queries

    if sum(x is not None for x in (queries, query, image)) != 1:
        _fail("give exactly one of --queries (a set of queries), --query (one query string) or --image (one image)")
    if k < 1:
        _fail(f"-k must be at least 1 (documents per query), not {k}")
    try:
        if (index_dir / "shards.json").exists():
            from rankstack.scale import open_sharded

            idx = open_sharded(index_dir)
            _check_max_query_terms(max_query_terms, idx.kind)
            stage = (idx.bm25(k1=k1, b=b, k=k) if idx.kind == "bm25" else idx.dense(model, k=k) if idx.kind == "dense"
                     else idx.colbert(model, k=k, nprobe=nprobe, exhaustive=exact) if idx.kind == "colbert"
                     else idx.impact(model, k=k, max_query_terms=max_query_terms))  # fmt: skip
            qs = Queries(["1"], [query]) if query is not None else _read_queries(queries, split, topic_field)  # type: ignore[arg-type]
            if image is not None:
                _fail("--image needs a text-image index; a sharded index holds text")
            start = time.perf_counter()
            run = stage(qs)
            elapsed = time.perf_counter() - start
            _print_run(run, output, tag, query is not None)
            typer.echo(f"searched {len(qs)} queries over {len(idx)} shards in {elapsed:.2f}s", err=True)
            return
        idx = rankstack.open(index_dir)
        kind = retriever_kind(idx)
        if rm3 and kind != "bm25":
            _fail(f"--rm3 expands BM25 queries; it does not apply to {_INDEX_NAMES[kind]}")
        _check_max_query_terms(max_query_terms, kind)
        if image is not None and kind == "dense":
            _fail(f"--image cannot search {index_dir}: it holds text vectors of the text-only model "
                  f"{idx.model['model']!r}; build a text-image index with `rankstack index COLL --images --model M`")  # fmt: skip
        if image is not None and kind != "multimodal":
            _fail(f"--image cannot search {index_dir}: it is a text-only {idx.manifest['type']} index; build a "
                  "text-image index with `rankstack index COLL --images --model M` (or --captions)")  # fmt: skip
        if kind != "bm25":
            _quiet_model_loading()
        stage = retriever_for(idx, kind, {
            "k": k, "k1": k1, "b": b, "threads": threads, "rm3": rm3, "model": model, "backend": backend,
            "exact": exact, "ef_search": ef_search, "nprobe": nprobe, "allow_other_model": allow_other_model,
            "max_query_terms": max_query_terms,
        })  # fmt: skip
        if image is not None:
            qs = Queries.from_images({"1": str(image)})
        elif query is not None:
            qs = Queries(["1"], [query])
        else:
            qs = _read_queries(queries, split, topic_field)  # type: ignore[arg-type]
        start = time.perf_counter()
        run = stage(qs)
        elapsed = time.perf_counter() - start
    except RankstackError as e:
        _fail(str(e))
    if image is not None and not len(run):
        _fail(f"{image} could not be read as an image (see the warning above)")
    if (query is not None or image is not None) and output is None:
        shown = _multimodal_labels(idx) if idx.manifest["type"] == "dense" and idx.is_multimodal else {}
        for docid, score, rank in zip(run.docid.tolist(), run.score.tolist(), run.rank.tolist(), strict=True):
            doc = idx.docs[docid] if idx.manifest.get("store_docs", idx.manifest["type"] == "inverted") else None
            snippet = (doc.contents()[:100] + "...") if doc else shown.get(docid, "")
            typer.echo(f"{rank:>4}  {score:8.4f}  {docid}  {snippet}")
        return
    _print_run(run, output, tag, one_query=False)
    typer.echo(f"searched {len(qs)} queries in {elapsed:.2f}s ({len(qs) / max(elapsed, 1e-9):.0f} q/s)", err=True)


_INDEX_NAMES = {"bm25": "a BM25 index", "colbert": "a ColBERT index", "impact": "an impact index",
                "dense": "a dense index", "multimodal": "a text-image index"}  # fmt: skip


def _check_max_query_terms(max_query_terms: int | None, kind: str) -> None:
    """--max-query-terms prunes weighted queries: one line for any other kind of index (sharded or not)."""
    if max_query_terms is not None and kind != "impact":
        _fail("--max-query-terms prunes the weighted queries of an impact index; it does not apply to "
              f"{_INDEX_NAMES[kind]}")


def _print_run(run, output: Path | None, tag: str, one_query: bool) -> None:
    """A run to ``output`` (TREC), else on stdout: TREC lines, or rank / score / docid for one query."""
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        run.write_trec(output, tag=tag)
        return
    for q, d, r, sc in zip(run.qid.tolist(), run.docid.tolist(), run.rank.tolist(), run.score.tolist(), strict=True):
        typer.echo(f"{r:>4}  {sc:8.4f}  {d}" if one_query else f"{q} Q0 {d} {r} {sc:.6f} {tag}")


@app.command()
def rerank(
    run: Annotated[Path, typer.Argument(help="The TREC run to re-rank (e.g. from `rankstack search`).")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Cross-encoder: a model directory or Hugging Face id (cross-encoder/ms-marco-MiniLM-L-6-v2).",
        ),
    ],
    index_dir: Annotated[
        Path,
        typer.Option("--index", "-i", help="An index built by `rankstack index` (with its document store): the texts."),
    ],
    queries: Annotated[
        str | None,
        typer.Option(
            "--queries",
            "-q",
            help="Collection name/folder (uses --split) or a queries file (.jsonl, .tsv, TREC topics); "
            "default: the named collection the index was built from.",
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="Which judged query set of a collection to read texts from.")] = "test",
    topic_field: Annotated[str, typer.Option(help="TREC topics field: title, desc or narr.")] = "title",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the re-ranked TREC run here (default: print).")
    ] = None,
    depth: Annotated[
        int, typer.Option("--depth", "-k", help="Re-rank the top DEPTH documents of each query; the rest are dropped.")
    ] = 100,
    batch_size: Annotated[
        int | None, typer.Option(help="Pairs per forward pass (default 32; 8 with --backend onnx).")
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            help="Tokens per (query, document) pair; documents are cut to fit (default: the model's, <= 512)."
        ),
    ] = None,
    query_max_length: Annotated[
        int | None, typer.Option(help="Query tokens kept (default: the model's saved value, else 64).")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="'torch' (CPU or CUDA) or 'onnx' (an export from `rankstack export-onnx MODEL`).")
    ] = "torch",
    int8: Annotated[
        bool, typer.Option("--int8/--fp32", help="With --backend onnx: run the int8 export or the fp32 one.")
    ] = True,
    missing: Annotated[
        str,
        typer.Option(
            help="Docids of the run that the index lacks: 'error', or 'keep' them below the re-ranked documents."
        ),
    ] = "error",
    tag: Annotated[str, typer.Option(help="Run tag in the TREC file's last column.")] = "rankstack",
    keep: Annotated[
        float | None,
        typer.Option(help="A cascade: the fraction of candidates that goes on at each early exit (default: saved)."),
    ] = None,
    protect: Annotated[
        int | None,
        typer.Option(help="A cascade: the run's top PROTECT always reach the full model (default: saved, else 0)."),
    ] = None,
) -> None:
    """Re-rank a run's top documents with a cross-encoder (monoBERT) and write a TREC run.

    Document texts come from the index's document store, query texts from --queries.

    Examples:
      rankstack rerank bm25.trec --model cross-encoder/ms-marco-MiniLM-L-6-v2 --index idx/scifact -q scifact -o ce.trec
      rankstack rerank bm25.trec --model MODEL_DIR --index idx/scifact -q queries.tsv -k 20 --backend onnx
      rankstack rerank bm25.trec --model CASCADE_DIR --index idx/scifact -q scifact --keep 0.6 --protect 10
    """
    import rankstack
    from rankstack.rerank import CrossEncoder
    from rankstack.types import Ranking

    if backend not in ("torch", "onnx"):
        _fail(f"--backend must be 'torch' or 'onnx', not {backend!r}")
    if missing not in ("error", "keep"):
        _fail(f"--missing must be 'error' or 'keep', not {missing!r}")
    if depth < 1:
        _fail(f"--depth must be at least 1, not {depth}")
    if not run.is_file():
        _fail(f"run file {run} does not exist")
    try:
        idx = rankstack.open(index_dir)
        if getattr(idx, "docs", None) is None:
            _fail(f"index {index_dir} holds no document texts (a {idx.manifest['type']} index); pass the BM25 index")
        if not idx.manifest.get("store_docs", True):
            _fail(f"index {index_dir} was built without its documents (--no-store-docs); rebuild it to re-rank")
        qs = _rerank_queries(queries, split, topic_field, idx.manifest.get("built_from"))
        ranking = Ranking.read_trec(run, queries=qs).cutoff(depth)
        known = set(qs.qid.tolist())
        lacking = [q for q in ranking.qids() if q not in known]
        if lacking:
            where = f"{queries or idx.manifest.get('built_from')}" + (
                f" (split {split!r})" if queries is None or _is_collection(queries) else ""
            )
            _fail(
                f"{len(lacking)} queries of {run} have no text in {where}, e.g. "
                f"{', '.join(lacking[:5])}; pass the --queries (and --split) the run was made from"
            )
        from rankstack.late.decoupled import is_decoupled, load_decoupled
        from rankstack.rerank.cascade import CascadeCrossEncoder, is_cascade
        from rankstack.rerank.cedr import CEDR, is_cedr
        from rankstack.rerank.interaction import InteractionReranker, is_interaction

        sizes = {k: v for k, v in (("max_length", max_length), ("query_max_length", query_max_length),
                                   ("batch_size", batch_size)) if v is not None}  # fmt: skip
        if (keep is not None or protect is not None) and not is_cascade(model):
            _fail(f"--keep and --protect steer a cascade's early exits; {model} is not a cascade (train one with "
                  "`rankstack train COLL --reranker --family cascade`)")  # fmt: skip
        if is_decoupled(model):  # PreTTR, DC-BERT, poly-encoder, MORES: the family is in the directory
            _quiet_model_loading()
            reranker = load_decoupled(model, docs=idx, missing=missing, show_progress=True, **sizes)
        elif is_interaction(model):  # KNRM, Conv-KNRM, DRMM, MatchPyramid, DUET, DSSM
            reranker = InteractionReranker(model, docs=idx, missing=missing, show_progress=True, **sizes)  # type: ignore[arg-type]
        elif is_cedr(model):
            _quiet_model_loading()
            reranker = CEDR(model, docs=idx, missing=missing, show_progress=True, **sizes)  # type: ignore[arg-type]
        elif is_cascade(model):  # early exits: keep and protect (or the saved ones) decide who reaches the top layers
            reranker = CascadeCrossEncoder(model, docs=idx, missing=missing, show_progress=True, keep=keep,  # type: ignore[arg-type]
                                           protect=protect, **sizes)  # fmt: skip
        else:
            reranker = CrossEncoder(
                model,
                docs=idx,
                backend=backend,  # type: ignore[arg-type]
                quantized=int8,
                max_length=max_length,
                query_max_length=query_max_length,
                batch_size=batch_size,
                missing=missing,  # type: ignore[arg-type]
                show_progress=True,
                require_head=True,
            )
        start = time.perf_counter()
        out = reranker(ranking)
        elapsed = time.perf_counter() - start
    except (RankstackError, FileNotFoundError, ValueError) as e:
        _fail(str(e).replace("missing='keep'", "--missing keep"))
    if output is None:
        for q, d, r, s in zip(out.qid.tolist(), out.docid.tolist(), out.rank.tolist(), out.score.tolist(), strict=True):
            typer.echo(f"{q} Q0 {d} {r} {s:.6f} {tag}")
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        out.write_trec(output, tag=tag)
    nq = len(out.qids())
    typer.echo(
        f"re-ranked {len(out):,} documents of {nq} queries with {model} in {elapsed:.1f}s "
        f"({len(out) / max(elapsed, 1e-9):.0f} docs/s)" + (f" into {output}" if output is not None else ""),
        err=output is None,
    )


def _rerank_queries(value: str | None, split: str, field: str, built_from: str | None):
    """The query texts a run needs: from --queries, else from the named collection the index was built from."""
    from rankstack.data import REGISTRY

    if value is None:
        if not built_from or built_from not in REGISTRY:
            _fail("give --queries: the collection name/folder or queries file the run's queries come from")
        value = built_from
    elif (os.sep in value or Path(value).suffix) and not Path(value).exists():
        _fail(f"queries file or collection folder {value} does not exist")
    return _read_queries(value, split, field)  # type: ignore[arg-type]


@app.command()
def train(
    collection: Annotated[str, typer.Argument(help="Collection name or BEIR folder with a training split.")],
    model: Annotated[str, typer.Option("--model", help="Starting model: a model directory or Hugging Face id.")],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Checkpoints and the final model (OUTPUT_DIR/final).")
    ],
    reranker: Annotated[
        bool,
        typer.Option(
            "--reranker",
            help="Train a cross-encoder re-ranker instead of a bi-encoder (a bare encoder such as all-MiniLM-L6-v2 "
            "gets a fresh one-logit head).",
        ),
    ] = False,
    sparse: Annotated[
        str | None,
        typer.Option(
            help="Train a learned sparse model instead: 'splade' (a masked-LM checkpoint; --model splade-tiny is the "
            "packaged one; in-batch + BM25 negatives + FLOPS), 'unicoil' (one weight per token, from any encoder), "
            "'deepct' (term importance from query term recall) or 'doc2query' (a sequence-to-sequence model, or an "
            "encoder warm-started as one, learns to write each judged document's queries).",
            rich_help_panel="Learned sparse",
        ),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(
            help="With --reranker: train another kind of re-ranker than a cross-encoder. Document side cached: "
            "'prettr' (split at layer 3), 'dcbert', 'poly' (poly-encoder) or 'mores'. Interaction models over token "
            "embeddings (--model minilm or static-model, the packaged ones, or any encoder; default --lr 1e-3): "
            "'knrm', 'conv-knrm', 'drmm', 'matchpyramid', 'duet', 'dssm', or 'tkl' (long documents). CEDR heads over a cross-encoder's "
            "per-layer similarity matrices: 'cedr-knrm', 'cedr-drmm', 'cedr-pacrr' or 'cedr-vanilla'. 'cascade': a "
            "cross-encoder with early exits after 1/3 and 2/3 of its layers, trained jointly.",
            rich_help_panel="Late interaction",
        ),
    ] = None,
    colbert: Annotated[
        bool,
        typer.Option(
            "--colbert",
            help="Train a ColBERT model instead (a bare encoder such as all-MiniLM-L6-v2 gets a fresh 128-d "
            "projection): --loss 'lce' (in-batch + BM25 negatives) or 'kl' (distil --teacher: 'bm25' or a cross-encoder).",
            rich_help_panel="Late interaction",
        ),
    ] = False,
    prop: Annotated[
        bool,
        typer.Option(
            "--prop",
            help="PROP pre-training instead: a cross-encoder learns which of two word sets drawn from a document's "
            "language model is more representative (plus masked-LM) on the collection's corpus (--max-examples "
            "documents); fine-tune the result with --reranker --model OUTPUT_DIR/final.",
        ),
    ] = False,
    flops: Annotated[
        float, typer.Option(help="SPLADE: FLOPS weight of documents (queries: 3x).", rich_help_panel="Learned sparse")
    ] = 1e-4,
    inference_free: Annotated[
        bool,
        typer.Option(
            "--inference-free",
            help="SPLADE: queries are their own tokens weighted by a table learnt alongside the document encoder "
            "(no query encoder at search time); the table is saved as OUTPUT_DIR/final/idf.json.",
            rich_help_panel="Learned sparse",
        ),
    ] = False,
    split: Annotated[str, typer.Option(help="Judged query set to train on.")] = "train",
    negatives: Annotated[
        str,
        typer.Option(
            help="Bi-encoder: 'none' (in-batch only), 'bm25' (BM25-mined hard negatives) or 'ance' (re-mined by "
            "the model being trained every --refresh-every steps). Re-rankers always draw BM25 negatives."
        ),
    ] = "bm25",
    loss: Annotated[
        str,
        typer.Option(
            help="Re-ranker loss: 'lce' (softmax over the positive and its negatives), 'pointwise' (binary "
            "cross-entropy), 'pairwise' (hinge) or 'margin_mse' (distil --teacher's score margins). Bi-encoders, "
            "--sparse splade / unicoil: 'lce' (in-batch + hard negatives) or 'margin_mse'."
        ),
    ] = "lce",
    teacher: Annotated[
        str | None,
        typer.Option(help="MarginMSE teacher: 'bm25' (re-rankers only), or a cross-encoder directory / Hugging Face "
                          "id (re-rankers, bi-encoders, --sparse splade / unicoil)."),
    ] = None,
    curriculum: Annotated[
        str | None,
        typer.Option(help="Re-ranker BM25 curriculum (MacAvaney et al. 2020): 'recip' or 'norm' (default: none)."),
    ] = None,
    generation_weight: Annotated[
        float,
        typer.Option(help="Re-ranker (monoT5): also learn to generate each positive's query from its document, this "
                     "weight times that loss added (GDMTL-style multitask training)."),
    ] = 0.0,
    weak: Annotated[
        str | None,
        typer.Option(
            help="Re-ranker weak supervision: train on pseudo-queries from the corpus ('title', 'first_sentence' or "
            "'both') instead of judgments, with a ReInfoSelect data selector rewarded by nDCG@10 on --split's queries.",
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training queries.")] = 1,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Queries per step, each with its positive and negatives (default 32; re-ranker 8)."),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="AdamW learning rate, linear warm-up then decay (default 2e-5; re-ranker 3e-5)."),
    ] = None,
    num_negatives: Annotated[
        int | None, typer.Option(help="Hard negatives per query and step (default 1; re-ranker 7).")
    ] = None,
    negative_depth: Annotated[
        int | None, typer.Option(help="How deep BM25 / ANCE mining looks per query (default 30; re-ranker 100).")
    ] = None,
    max_examples: Annotated[
        int | None, typer.Option(help="Re-ranker: train on a seeded sample of this many (query, positive) pairs; "
                                 "--prop: pre-train on this many documents.")
    ] = None,
    max_per_query: Annotated[
        int | None, typer.Option(help="Re-ranker: at most this many positives per query, sampled before "
                                 "--max-examples (a few broad queries can hold most judgments; NFCorpus: 4).")
    ] = None,
    positive_depth: Annotated[
        int | None, typer.Option(help="Re-ranker: train only on positives BM25 ranks within this depth, the "
                                 "candidates it will re-rank (needed where most positives lie deeper; NFCorpus: 100).")
    ] = None,
    refresh_every: Annotated[int, typer.Option(help="ANCE: steps between refreshes (0: every epoch).")] = 0,
    denoise_margin: Annotated[
        float | None,
        typer.Option(
            help="RocketQA-style denoising: drop negatives the starting model scores above the positive minus this."
        ),
    ] = None,
    ict_epochs: Annotated[
        int, typer.Option(help="Inverse cloze task pre-training on the corpus first, for this many epochs (0: off).")
    ] = 0,
    ict_docs: Annotated[
        int | None, typer.Option(help="ICT: use at most this many documents (default: the whole corpus).")
    ] = None,
    query_max_length: Annotated[int, typer.Option(help="Query tokens kept in training.")] = 32,
    doc_max_length: Annotated[
        int, typer.Option(help="Document tokens kept in training (re-ranker: the whole pair's window).")
    ] = 128,
    save_every: Annotated[int, typer.Option(help="Steps between checkpoints (0: only the final model).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed for data order and sampling: the same seed, the same model.")] = 42,
    precision: Annotated[
        str,
        typer.Option(help="fp32, or bf16: forward passes under bfloat16 autocast (weights stay fp32), 1.7-1.8x the "
                     "training speed on a CPU with AMX (bf16 units), more on GPUs. Every trainer."),
    ] = "fp32",
    attention_dropout: Annotated[
        float | None,
        typer.Option(help="Dropout on attention probabilities while training (default: the model's own, 0.1 for "
                     "BERT). 0 lets a CPU run fused attention: ~1.5x the training speed of a MiniLM cross-encoder "
                     "(benchmarks/results/train-speed.md). BERT-family encoders, DistilBERT, T5, GPT-2; others warn."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its latest checkpoint.")] = False,
    multimodal: Annotated[
        bool,
        typer.Option(
            "--multimodal",
            help="Train a text-image dual encoder LiT-style on an image collection's captions: the image tower "
            "stays frozen, --model is the text encoder (minilm: the packaged all-MiniLM-L6-v2).",
            rich_help_panel="Multimodal",
        ),
    ] = False,
    image_tower: Annotated[
        str, typer.Option(help="Multimodal: the frozen image tower.", rich_help_panel="Multimodal")
    ] = "efficientnet-lite0",
    text_layers: Annotated[
        int,
        typer.Option(min=0, help="Multimodal: also train this many top text layers (0: the projection only; with "
                     "--vl: the top layers that learn, 0 = all).", rich_help_panel="Multimodal"),
    ] = 0,
    class_prompts: Annotated[
        bool,
        typer.Option(help="Multimodal: add 'a photo of a {class}' pairs from the image tower's ImageNet head.",
                     rich_help_panel="Multimodal"),
    ] = True,
    hard_negatives: Annotated[
        int,
        typer.Option(min=0, help="Multimodal: extra nearest-neighbour images per caption.", rich_help_panel="Multimodal"),
    ] = 0,
    where: Annotated[
        list[str] | None,
        typer.Option(help="Multimodal: train on the images whose corpus FIELD equals VALUE (coco_split=train2017).",
                     rich_help_panel="Multimodal"),
    ] = None,
    vl: Annotated[
        bool,
        typer.Option(
            "--vl",
            help="Multimodal: train a vision-language cross-encoder re-ranker (image regions + text through --model's "
            "layers) instead of a dual encoder.",
            rich_help_panel="Multimodal",
        ),
    ] = False,
    candidates: Annotated[
        str | None,
        typer.Option(help="With --vl: a dual encoder whose top 10 images per caption are the hard negatives "
                      "(default: random other images).", rich_help_panel="Multimodal"),
    ] = None,
) -> None:
    """Fine-tune a bi-encoder (contrastive, in-batch + hard negatives) or, with --reranker, a cross-encoder
    (BM25 hard negatives; LCE, pointwise, pairwise or MarginMSE) on a collection's judgments; with --multimodal,
    a text-image dual encoder on an image collection.

    The result is an ordinary Hugging Face model directory (it loads in sentence-transformers too, as a
    SentenceTransformer or a CrossEncoder); index or re-rank with it as with any model.

    Examples:
      rankstack train scifact --model sentence-transformers/all-MiniLM-L6-v2 -o models/minilm-scifact
      rankstack train scifact --model MODEL --negatives ance --refresh-every 20 -o models/ance
      rankstack index scifact -i idx/scifact-ft --dense models/minilm-scifact/final
      rankstack train scifact --reranker --model sentence-transformers/all-MiniLM-L6-v2 -o models/ce-scifact
      rankstack train nfcorpus --reranker --model MODEL --loss margin_mse --teacher bm25 --max-examples 2000 -o m
      rankstack train scifact --reranker --model MODEL --precision bf16 -o m   # bfloat16 autocast: ~1.8x on AMX CPUs
      rankstack train scifact --reranker --model MODEL --attention-dropout 0 -o m   # fused attention on CPU: ~1.5x
      rankstack rerank runs/bm25.trec --model models/ce-scifact/final --index idx/scifact -o runs/ce.trec
      rankstack train scifact --sparse splade --model splade-tiny -o models/splade-scifact
      rankstack train nfcorpus --sparse splade --model splade-tiny --loss margin_mse --teacher models/ce-nfcorpus/final -o m
      rankstack train scifact --sparse deepct --model sentence-transformers/all-MiniLM-L6-v2 -o models/deepct
      rankstack train scifact --sparse unicoil --model minilm -o models/unicoil
      rankstack train scifact --sparse doc2query --model minilm --epochs 3 -o models/d2q
      rankstack index scifact -i idx/scifact-d2q --doc2query models/d2q/final --doc2query-queries 5
      rankstack train scifact --colbert --model sentence-transformers/all-MiniLM-L6-v2 --epochs 4 -o models/colbert
      rankstack train scifact --reranker --family prettr --model sentence-transformers/all-MiniLM-L6-v2 -o models/prettr
      rankstack train scifact --reranker --family knrm --model minilm -o models/knrm
      rankstack train scifact --prop --model minilm --max-examples 2000 -o models/prop
      rankstack train nfcorpus --reranker --family knrm --model minilm --weak both --split dev -o models/knrm-weak
      rankstack train scifact --reranker --model models/prop/final -o models/prop-ce
      rankstack train coco-mini-captions --multimodal --model minilm --split test --where coco_split=train2017 \
          --epochs 30 -o models/lit
    """
    if vl and not multimodal:
        _fail("--vl trains a multimodal re-ranker: use it with --multimodal")
    if precision not in ("fp32", "bf16"):
        _fail(f"--precision must be fp32 or bf16, not {precision!r}")
    if attention_dropout is not None and not 0.0 <= attention_dropout < 1.0:
        _fail(f"--attention-dropout must be in [0, 1), not {attention_dropout}")
    loop = {"precision": precision, "attention_dropout": attention_dropout}
    if multimodal:
        _train_multimodal(collection, model, output_dir, split, where, image_tower, text_layers, class_prompts,
                          hard_negatives, epochs, batch_size, lr, seed, save_every, resume, vl, candidates,
                          num_negatives, loop)  # fmt: skip
        return
    try:
        col = _load_collection(collection)
        start = time.perf_counter()
        from rankstack.rerank.interaction import FAMILIES as INTERACTION_FAMILIES

        if family is not None and not reranker:
            raise ValueError("--family chooses the kind of re-ranker: use it with --reranker")
        if (weak is not None or generation_weight or curriculum is not None) and not reranker:
            raise ValueError("--weak, --generation-weight and --curriculum train re-rankers: use them with --reranker")
        if (max_per_query or positive_depth) and not reranker:
            raise ValueError("--max-per-query and --positive-depth choose re-ranker examples: use them with --reranker")
        chosen = [flag for flag, on in (("--prop", prop), ("--reranker", reranker), ("--colbert", colbert),
                                        ("--sparse", sparse is not None)) if on]  # fmt: skip
        if len(chosen) > 1:
            raise ValueError(f"{' and '.join(chosen)} choose different kinds of training: pick one")
        if family == "cedr":
            raise ValueError("--family cedr needs its head: cedr-knrm, cedr-drmm, cedr-pacrr or cedr-vanilla")
        if prop:
            from rankstack.train.prop import PropConfig, pretrain_prop

            _quiet_model_loading()
            config = PropConfig(epochs=epochs, batch_size=batch_size or 8, learning_rate=lr or 3e-5,
                                max_length=max(16, doc_max_length), max_docs=max_examples, seed=seed,
                                save_every=save_every, **loop)  # fmt: skip
            final = pretrain_prop(model, col.corpus, output_dir, config=config, resume=resume)
        elif colbert:
            final = _train_colbert(
                col, model, output_dir, split=split, loss=loss, teacher=teacher, epochs=epochs, batch_size=batch_size,
                lr=lr, num_negatives=num_negatives, negative_depth=negative_depth, doc_max_length=doc_max_length,
                save_every=save_every, seed=seed, resume=resume, loop=loop,
            )  # fmt: skip
        elif sparse is not None:
            if inference_free and sparse != "splade":
                raise ValueError("--inference-free trains a SPLADE document encoder: use it with --sparse splade")
            final = _train_sparse(
                col, sparse, model, output_dir, split=split, epochs=epochs, batch_size=batch_size, lr=lr,
                num_negatives=num_negatives, negative_depth=negative_depth, flops=flops,
                query_max_length=query_max_length, doc_max_length=doc_max_length, save_every=save_every, seed=seed,
                resume=resume, inference_free=inference_free, loss=loss, teacher=teacher, loop=loop,
            )  # fmt: skip
        elif reranker:
            bi_only = {"--negatives": negatives != "bm25", "--refresh-every": refresh_every, "--ict-epochs": ict_epochs}
            bi_only |= {"--denoise-margin": denoise_margin is not None, "--ict-docs": ict_docs is not None}
            if any(bi_only.values()):
                raise ValueError(
                    f"{', '.join(k for k, v in bi_only.items() if v)} apply to bi-encoders, not to --reranker "
                    "training (re-rankers draw BM25 negatives; see --loss, --teacher, --curriculum)"
                )
            final = _train_reranker(
                col,
                model,
                output_dir,
                family=family,
                split=split,
                loss=loss,
                teacher=teacher,
                curriculum=curriculum,
                weak=weak,
                generation_weight=generation_weight,
                epochs=epochs,
                batch_size=batch_size or 8,
                lr=lr or (1e-3 if family in INTERACTION_FAMILIES else 3e-5),
                num_negatives=7 if num_negatives is None else num_negatives,
                negative_depth=negative_depth or 100,
                max_examples=max_examples,
                max_per_query=max_per_query,
                positive_depth=positive_depth,
                query_max_length=query_max_length,
                max_length=doc_max_length,
                save_every=save_every,
                seed=seed,
                resume=resume,
                loop=loop,
            )
        else:
            from rankstack.train import TrainConfig, train_biencoder

            distil_from = _margin_mse_teacher("a bi-encoder", loss, teacher)
            config = TrainConfig(
                epochs=epochs,
                batch_size=batch_size or 32,
                learning_rate=lr or 2e-5,
                num_negatives=(1 if num_negatives is None else num_negatives) if negatives != "none" else 0,
                negative_depth=negative_depth or 30,
                refresh_every=refresh_every,
                query_max_length=query_max_length,
                doc_max_length=doc_max_length,
                save_every=save_every,
                seed=seed,
                **loop,  # type: ignore[arg-type]
                loss="margin_mse" if distil_from is not None else "contrastive",
            )
            final = train_biencoder(
                model,
                col.queries_for(split),
                col.qrels(split),
                col.corpus,
                output_dir,
                negatives=negatives,  # type: ignore[arg-type]
                config=config,
                denoise_margin=denoise_margin,
                teacher=distil_from,
                ict_warmup=config.replace(epochs=ict_epochs, num_negatives=0, loss="contrastive") if ict_epochs else None,
                ict_max_docs=ict_docs,
                resume=resume,
            )
    except (RankstackError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"trained in {time.perf_counter() - start:.0f}s; final model: {final}")


def _train_colbert(col, model: str, output_dir: Path, *, split: str, loss: str, teacher: str | None, **o: Any) -> Path:
    from rankstack.train import ColBERTConfig, train_colbert

    if loss not in ("lce", "kl"):
        raise ValueError(f"--colbert trains with --loss 'lce' (in-batch + BM25 negatives) or 'kl', not {loss!r}")
    if (loss == "kl") != (teacher is not None):
        raise ValueError("--loss kl distils a --teacher ('bm25' or a cross-encoder directory); give both or neither")
    _quiet_model_loading()
    config = ColBERTConfig(
        loss="kl" if loss == "kl" else "contrastive", epochs=o["epochs"], batch_size=o["batch_size"] or 16,
        learning_rate=o["lr"] or 3e-5, num_negatives=1 if o["num_negatives"] is None else o["num_negatives"],
        negative_depth=o["negative_depth"] or 30, doc_max_length=o["doc_max_length"], save_every=o["save_every"],
        seed=o["seed"], **o["loop"],
    )  # fmt: skip
    index = _training_bm25_index(col, output_dir)
    return train_colbert(model, col.queries_for(split), col.qrels(split), index, output_dir, config=config,
                         bm25_index=index, teacher=_teacher_stage(teacher, index, config.negative_depth),
                         resume=o["resume"])  # fmt: skip


def _train_sparse(
    col, kind: str, model: str, output_dir: Path, *, split: str, flops: float, inference_free: bool = False, **o: Any
) -> Path:
    from rankstack.train import SpladeConfig, TrainConfig, train_deepct, train_splade

    if kind not in SPARSE_KINDS:
        raise ValueError(f"--sparse must be one of {', '.join(SPARSE_KINDS)}, not {kind!r}")
    loss, teacher_name = o.pop("loss"), o.pop("teacher")
    if kind in ("deepct", "doc2query") and (loss != "lce" or teacher_name is not None):
        raise ValueError(f"--loss and --teacher train SPLADE, uniCOIL, bi-encoders and re-rankers, not --sparse {kind}")
    _quiet_model_loading()  # before the teacher loads too
    teacher = _margin_mse_teacher(f"--sparse {kind}", loss, teacher_name)
    queries, qrels = col.queries_for(split), col.qrels(split)
    if kind == "doc2query":
        return _train_doc2query(col, model, output_dir, queries, qrels, **o)
    common = dict(
        epochs=o["epochs"], learning_rate=o["lr"] or 2e-5, save_every=o["save_every"], seed=o["seed"],
        query_max_length=o["query_max_length"], doc_max_length=o["doc_max_length"], **o["loop"],
    )  # fmt: skip
    if kind == "deepct":
        from rankstack.sparse.deepct import DeepCT

        with warnings.catch_warnings():  # a fresh head is what training starts from
            warnings.filterwarnings("ignore", message=".*no DeepCT head")
            deepct = DeepCT(model, max_length=o["doc_max_length"])
        config = TrainConfig(batch_size=o["batch_size"] or 16, **common)  # type: ignore[arg-type]
        return train_deepct(deepct, queries, qrels, col.corpus, output_dir, config=config, resume=o["resume"])
    config = SpladeConfig(
        batch_size=o["batch_size"] or 32, num_negatives=1 if o["num_negatives"] is None else o["num_negatives"],
        negative_depth=o["negative_depth"] or 30, flops_doc=flops, flops_query=3 * flops,
        loss="contrastive" if teacher is None else "margin_mse", **common,  # type: ignore[arg-type]
    )  # fmt: skip
    if kind == "unicoil":  # one weight per token: sparse by construction, no FLOPS term
        from rankstack.sparse import UniCoil

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*no uniCOIL head")
            encoder = UniCoil(model, max_length=o["doc_max_length"])
        config = config.replace(flops_doc=0.0, flops_query=0.0)
    else:
        encoder = _impact_encoder(model, **({"query_mode": "tokens"} if inference_free else {}))
    return train_splade(encoder, queries, qrels, col.corpus, output_dir, config=config, teacher=teacher,
                        resume=o["resume"])  # fmt: skip


SPARSE_KINDS = ("splade", "unicoil", "deepct", "doc2query")


def _margin_mse_teacher(what: str, loss: str, teacher: str | None):
    """--loss/--teacher of a bi-encoder or a learned sparse model: 'lce' (the default) is the in-batch +
    hard-negative softmax; 'margin_mse' distils a cross-encoder's score margins, loaded here."""
    if loss not in ("lce", "margin_mse"):
        raise ValueError(f"{what} trains with --loss lce (in-batch + hard negatives) or margin_mse (distil --teacher), "
                         f"not {loss!r}")  # fmt: skip
    if loss == "lce":
        if teacher is not None:
            raise ValueError("--teacher is distilled with --loss margin_mse: add it, or drop --teacher")
        return None
    if teacher is None or teacher == "bm25":
        raise ValueError(f"{what} with --loss margin_mse needs --teacher: a cross-encoder directory or Hugging Face "
                         "id (it scores each query's positives and hard negatives as text pairs)")  # fmt: skip
    from rankstack.rerank import CrossEncoder

    return CrossEncoder(teacher, show_progress=True, require_head=True)


def _train_doc2query(col, model: str, output_dir: Path, queries, qrels, **o: Any) -> Path:
    """doc2query from a sequence-to-sequence model, or from a bare encoder warm-started as a BERT2BERT first
    (OUTPUT_DIR/init)."""
    from rankstack.models import lazy, model_dir
    from rankstack.train import seq2seq_from_encoder
    from rankstack.train.doc2query import Doc2QueryConfig, train_doc2query

    path = model_dir.resolve(model)[0]
    if not getattr(lazy.transformers().AutoConfig.from_pretrained(path), "is_encoder_decoder", False):
        init = output_dir / "init"
        if not (init / "config.json").exists():
            typer.echo(f"{model} is an encoder: warm-starting a sequence-to-sequence model from it in {init}", err=True)
            seq2seq_from_encoder(path, init)
        model = str(init)
    config = Doc2QueryConfig(epochs=o["epochs"], batch_size=o["batch_size"] or 16, learning_rate=o["lr"] or 1e-4,
                             max_length=o["doc_max_length"], query_max_length=o["query_max_length"],
                             save_every=o["save_every"], seed=o["seed"], **o["loop"])  # fmt: skip
    return train_doc2query(model, queries, qrels, col.corpus, output_dir, config=config, resume=o["resume"])


def _training_bm25_index(col, output_dir: Path):
    """BM25 over the training collection, kept in OUTPUT_DIR/bm25-index (negatives, and a BM25 teacher)."""
    from rankstack.index import build_inverted_index, open_index

    index_dir = output_dir / "bm25-index"
    if (index_dir / "manifest.json").exists():
        return open_index(index_dir)
    return build_inverted_index(col.corpus, index_dir, show_progress=True)


def _teacher_stage(teacher: str | None, index, depth: int):
    """--teacher as a stage: 'bm25', or a cross-encoder re-ranking over the index's document store."""
    if teacher is None:
        return None
    if teacher == "bm25":
        return index.bm25(k=depth + 50)
    from rankstack.rerank import CrossEncoder

    return CrossEncoder(teacher, docs=index, show_progress=True, require_head=True)


def _train_reranker(
    col, model: str, output_dir: Path, *, teacher: str | None, split: str, family: str | None = None,
    weak: str | None = None, **options: Any,
) -> Path:
    from rankstack.train import RerankConfig, train_reranker

    keys = (
        "loss",
        "curriculum",
        "generation_weight",
        "epochs",
        "batch_size",
        "num_negatives",
        "negative_depth",
        "max_examples",
        "max_per_query",
        "positive_depth",
        "query_max_length",
        "max_length",
        "save_every",
        "seed",
    )
    config = RerankConfig(learning_rate=options["lr"], **{k: options[k] for k in keys}, **options["loop"])
    index = _training_bm25_index(col, output_dir)
    stage = _teacher_stage(teacher, index, config.negative_depth)
    from rankstack.rerank.interaction import FAMILIES as INTERACTION
    from rankstack.rerank.interaction import InteractionReranker

    if family in INTERACTION:
        model = InteractionReranker(model, family=family, max_length=config.max_length,  # type: ignore[assignment]
                                    query_max_length=config.query_max_length)  # fmt: skip
    elif family == "cascade":
        from rankstack.rerank.cascade import CascadeCrossEncoder

        _quiet_model_loading()
        with warnings.catch_warnings():  # a fresh head on a bare encoder is what training is for
            warnings.filterwarnings("ignore", message=r".*no sequence-classification head")
            model = CascadeCrossEncoder(model, max_length=config.max_length,  # type: ignore[assignment]
                                        query_max_length=config.query_max_length)  # fmt: skip
    elif family is not None and family.startswith("cedr-"):
        from rankstack.rerank.cedr import CEDR

        _quiet_model_loading()
        model = CEDR(model, head=family.removeprefix("cedr-"), max_length=config.max_length)  # type: ignore[assignment]
    elif family is not None:
        from rankstack.late.decoupled import load_decoupled

        _quiet_model_loading()
        model = load_decoupled(model, family=family, max_length=config.max_length,  # type: ignore[assignment]
                               query_max_length=config.query_max_length)  # fmt: skip
    if weak is not None:
        from rankstack.train.weak import train_weakly

        if stage is not None:
            raise ValueError("--weak trains on pseudo-queries with the ranking losses; it takes no --teacher")
        return train_weakly(model, index, col.queries_for(split), col.qrels(split), output_dir, source=weak,
                            config=config, bm25_index=index, resume=options["resume"])  # fmt: skip
    return train_reranker(
        model,
        col.queries_for(split),
        col.qrels(split),
        index,
        output_dir,
        config=config,
        teacher=stage,
        resume=options["resume"],
    )


@app.command("export-onnx")
def export_onnx_cmd(
    model: Annotated[str, typer.Argument(help="A model directory or Hugging Face id.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write a new model directory here (default: into MODEL).")
    ] = None,
    quantize: Annotated[bool, typer.Option(help="Also write the dynamic int8 model (onnx/model_qint8.onnx).")] = True,
) -> None:
    """Export a bi-encoder or cross-encoder to ONNX (fused attention) and quantise it to int8 for fast CPU use.

    A checkpoint with a sequence-classification head (a cross-encoder) is exported with its head. Then
    index, search or rerank with --backend onnx. Examples:
      rankstack export-onnx MODEL_DIR --out models/minilm-onnx
      rankstack index scifact -i idx/scifact-int8 --dense models/minilm-onnx --backend onnx
      rankstack export-onnx CROSS_ENCODER_DIR --out models/ce-onnx
      rankstack rerank bm25.trec --model models/ce-onnx --index idx/scifact -q scifact --backend onnx
    """
    from rankstack.dense import export_onnx

    try:
        start = time.perf_counter()
        head = "logits" if _has_classification_head(model) else "hidden"
        dest = export_onnx(model, out, quantize=quantize, head=head)
    except RankstackError as e:
        _fail(str(e))
    typer.echo(f"wrote {dest / 'onnx'} in {time.perf_counter() - start:.1f}s")


def _has_classification_head(model: str) -> bool:
    """Whether a model directory (or cached Hub id) is a cross-encoder: its config names a
    ``...ForSequenceClassification`` architecture."""
    import json

    from rankstack.models import model_dir

    path, _ = model_dir.resolve(model)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False  # export_onnx names what is wrong with the directory
    return any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or [])


@app.command()
def warmup() -> None:
    """Compile the search and evaluation kernels into numba's on-disk cache, so no later process waits
    for a compile (about a minute, once per installation; `make setup` runs it). Numba keeps the cache
    beside the installed package when that is writable, else in ~/.cache/numba or $NUMBA_CACHE_DIR. Also
    byte-compiles rankstack's modules where they are writable (an editable install).

    Example:  rankstack warmup
    """
    import tempfile

    import numpy as np

    from rankstack.eval import evaluate
    from rankstack.index import build_inverted_index
    from rankstack.index.select import TopK
    from rankstack.sparse import bm25 as bm25_module
    from rankstack.types import Document, Qrels, Queries

    t0 = time.perf_counter()
    typer.echo("rankstack: compiling search and evaluation kernels, or loading them if cached", err=True)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]
    docs = [Document(f"d{i}", " ".join(words[j % len(words)] for j in range(i, i + 3 + i % 5))) for i in range(40)]
    with tempfile.TemporaryDirectory() as tmp:
        index = build_inverted_index(docs, Path(tmp) / "index", show_progress=False)
        texts = [" ".join(words[i : i + 2]) for i in range(10)]  # more than a few: the parallel kernel
        queries = Queries([f"q{i}" for i in range(len(texts))], texts)
        bm25_module._kernels()
        for algorithm in ("exhaustive", "maxscore"):
            for k in (10, 1000):  # heap and radix selection
                run = index.bm25(k=k, algorithm=algorithm)(queries)
                index.bm25(k=k, algorithm=algorithm)(Queries(["q0"], [texts[0]]))  # on the calling thread
        # a build in a process whose kernels have started analyses through the compiled scan: its kernels too
        build_inverted_index([*docs, Document("x", "John’s © x²")], Path(tmp) / "again", show_progress=False)
        qrels = Qrels(run.qid[:20], run.docid[:20], np.ones(20, dtype=np.int64))
        evaluate(run, qrels, [*DEFAULT_METRICS, "bpref", "Judged@10", "Success@10", "P@10"])
    top = TopK(2, 3)
    top.push(np.random.default_rng(0).random((2, 8), dtype=np.float32), 0)
    top.result()
    _warm_token_index(np.random.default_rng(0))
    _compile_bytecode()
    typer.echo(f"kernels ready in {time.perf_counter() - t0:.1f} s")


def _compile_bytecode() -> None:
    """Byte-compile rankstack's modules where its directory is writable: pip writes .pyc files when it installs a
    package, but an editable install gets them only on first import, and never where PYTHONDONTWRITEBYTECODE is
    set; compiling the sources again costs every process ~0.1 s (a fresh one-query search: 0.31 -> 0.22 s)."""
    import compileall

    package = Path(__file__).resolve().parent
    if os.access(package, os.W_OK):
        compileall.compile_dir(package, quiet=1, workers=0)  # 0: one process per core


def _warm_token_index(rng) -> None:
    """The ColBERT token index's kernels: residual decoding at every width, PLAID's centroid interaction."""
    import tempfile

    import numpy as np

    from rankstack.index.tokens import build_token_index
    from rankstack.late.plaid import PlaidSettings, search_one

    vectors = rng.normal(size=(24, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [vectors[i : i + 3] for i in range(0, 24, 3)]
    with tempfile.TemporaryDirectory() as tmp:
        for bits in (1, 2, 4, 8):
            index = build_token_index(Path(tmp) / f"t{bits}", [([f"d{i}" for i in range(8)], docs)],
                                      {"model": "warmup", "dim": 8}, bits=bits, num_centroids=4)  # fmt: skip
            search_one(index, vectors[:2], 3, PlaidSettings(nprobe=1, threshold=-1.0, ndocs=4))


@app.command("eval")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="A TREC run file.")],
    qrels: Annotated[
        str,
        typer.Option("--qrels", help="A qrels file (TREC or BEIR tsv), or a collection name/folder (uses --split)."),
    ],
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            help="ir_measures-style names: nDCG@10, AP, P@20, R@100, RR@10, bpref, Judged@10, Success@10, P(rel=2)@10.",
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="Qrels split of a collection.")] = "test",
    per_query: Annotated[bool, typer.Option(help="Print one line per query and metric (trec_eval -q style).")] = False,
) -> None:
    """Evaluate a run with trec_eval-exact metrics.

    Example:  rankstack eval bm25.trec --qrels scifact -m nDCG@10 -m AP
    """
    from rankstack.eval import evaluate
    from rankstack.types import Ranking

    try:
        ranking = Ranking.read_trec(run)
        judged = _read_qrels(qrels, split)
        measures = metrics or DEFAULT_METRICS
        if per_query:
            table = evaluate(ranking, judged, measures, per_query=True)
            for row in table.itertuples(index=False):
                typer.echo(f"{row.measure}\t{row.qid}\t{row.value:.4f}")
            return
        result = evaluate(ranking, judged, measures)
    except (RankstackError, ValueError) as e:
        _fail(str(e))
    for name, value in result.items():
        typer.echo(f"{name!s:<12}{value:.4f}")


@app.command()
def experiment(
    collection: Annotated[
        str, typer.Argument(help="Collection name (scifact, nfcorpus, ...) or BEIR folder.")
    ] = "scifact",
    index_dir: Annotated[
        Path | None, typer.Option(help="Index directory (built if missing; default .cache/indexes/<name>).")
    ] = None,
    split: Annotated[str, typer.Option(help="Judged query set to evaluate on.")] = "test",
    metrics: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Metrics (default: nDCG@10 AP@1000 R@100 RR@10 P@10).")
    ] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Also write each system's TREC run here.")] = None,
    test: Annotated[str, typer.Option(help="Significance test against the first system: 't' or 'permutation'.")] = "t",
    full: Annotated[
        bool, typer.Option("--full", help="Print every column: +/- counts, raw and Holm p-values per metric.")
    ] = False,
    dense: Annotated[
        str | None,
        typer.Option(
            help="Also run this bi-encoder (model directory or Hugging Face id) and its fusions with BM25; "
            "its index is built once into <index-dir>-dense.",
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="With --dense or --rerank: 'torch' or 'onnx' (the model's int8 export).")
    ] = "torch",
    rerank: Annotated[
        str | None,
        typer.Option(
            help="Also re-rank BM25's top --rerank-depth with this cross-encoder (model directory or Hugging Face "
            "id): the system 'BM25 >> MODEL'.",
        ),
    ] = None,
    rerank_depth: Annotated[int, typer.Option(help="With --rerank: documents re-ranked per query.")] = 100,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw PNGs here: each system's per-query difference to BM25 in the first metric, and "
            "recall at depth 1-1000 per system (needs the [plot] extra: pip install 'rankstack[plot]').",
        ),
    ] = None,
    images: Annotated[
        str | None,
        typer.Option(
            help="Image collection: evaluate this dual encoder text->image and image->text, beside the text-proxy "
            "baseline (BM25 over each image's other captions).",
            rich_help_panel="Multimodal",
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(help="With --images: only the images whose corpus FIELD equals VALUE (coco_split=val2017).",
                     rich_help_panel="Multimodal"),
    ] = None,
    vl_rerank: Annotated[
        str | None,
        typer.Option(help="With --images: also re-rank the dual encoder's top --rerank-depth with this vision-language "
                     "cross-encoder (a `train --multimodal --vl` directory or a ViLT checkpoint).",
                     rich_help_panel="Multimodal"),
    ] = None,
) -> None:
    """End-to-end: index a collection, run BM25 variants, evaluate, print a table with significance tests.

    Systems: BM25 (k1=0.9, b=0.4; the baseline), BM25 (k1=1.2, b=0.75), BM25 + RM3, and RRF of BM25 with
    BM25 + RM3; with --dense, also the dense retriever, RRF(BM25, dense) and min-max BM25 + dense; with
    --rerank, BM25's top --rerank-depth re-ranked by the cross-encoder.
    p-values are paired against the baseline, Holm-corrected across systems.

    Examples:
      rankstack experiment scifact
      rankstack experiment scifact --dense sentence-transformers/all-MiniLM-L6-v2
      rankstack experiment scifact --rerank cross-encoder/ms-marco-MiniLM-L-6-v2 --rerank-depth 50
      rankstack experiment scifact --plot plots/    # per-query deltas and recall-at-depth PNGs
      rankstack experiment coco-mini-captions --images models/lit/final --where coco_split=val2017
      rankstack experiment coco-mini-captions --images models/lit/final --vl-rerank models/vl/final --rerank-depth 20
    """
    import pandas as pd

    import rankstack
    from rankstack.eval import Experiment
    from rankstack.index import build_inverted_index
    from rankstack.sparse import RM3

    if rerank_depth < 1:
        _fail(f"--rerank-depth must be at least 1, not {rerank_depth}")
    if images is not None:
        _experiment_images(collection, images, where, split, metrics or IMAGE_METRICS, test, vl_rerank, rerank_depth)
        return
    if plot is not None:  # before any system runs: a missing extra or a bad folder must not waste the run
        _check_plot_dir(plot)
    try:
        col = _load_collection(collection)
        first = next(iter(col.corpus), None)
        if first is not None and "image" in first.fields and not first.contents().strip():
            raise ValueError(f"{col.name} is an image collection (its documents are images, with no text to index): "
                             f"evaluate a text-image model with `rankstack experiment {collection} --images MODEL`")  # fmt: skip
        path = index_dir or Path(".cache") / "indexes" / col.name
        if (path / "manifest.json").exists():
            idx = rankstack.open(path)
            typer.echo(f"using index {path} ({idx.num_docs:,} documents)", err=True)
        else:
            start = time.perf_counter()
            idx = build_inverted_index(col.corpus, path)
            typer.echo(
                f"indexed {idx.num_docs:,} documents into {path} in {time.perf_counter() - start:.1f}s", err=True
            )
        queries = col.queries_for(split)
        qrels = col.qrels(split)
        bm25 = idx.bm25()
        systems = {
            "BM25": bm25,
            "BM25 k1=1.2 b=0.75": idx.bm25(k1=1.2, b=0.75),
            "BM25 + RM3": RM3(bm25),
            "RRF(BM25, BM25 + RM3)": bm25 | RM3(bm25),
        }
        if dense is not None:
            retriever = _dense_for_experiment(col, dense, backend, path.with_name(path.name + "-dense"))
            systems |= {"Dense": retriever, "RRF(BM25, Dense)": bm25 | retriever, "BM25 + Dense": bm25 + retriever}
        if rerank is not None:
            from rankstack.rerank import CrossEncoder
            from rankstack.rerank.cascade import CascadeCrossEncoder, is_cascade
            from rankstack.rerank.cedr import CEDR, is_cedr
            from rankstack.rerank.interaction import InteractionReranker, is_interaction

            if is_interaction(rerank):
                reranker = InteractionReranker(rerank, docs=idx, show_progress=True)
            elif is_cedr(rerank):
                reranker = CEDR(rerank, docs=idx, show_progress=True)
            elif is_cascade(rerank):
                reranker = CascadeCrossEncoder(rerank, docs=idx, show_progress=True)
            else:
                reranker = CrossEncoder(rerank, docs=idx, backend=backend, show_progress=True, require_head=True)  # type: ignore[arg-type]
            systems[f"BM25 >> {_short_name(rerank)}"] = bm25 % rerank_depth >> reranker
        start = time.perf_counter()
        runs = {name: stage(queries) for name, stage in _progress(systems.items(), "systems")}
        table, per_query = Experiment(
            runs, queries, qrels, metrics or DEFAULT_METRICS, baseline=0, test=test, per_query=True
        )
        elapsed = time.perf_counter() - start
    except (RankstackError, ValueError) as e:
        _fail(str(e))
    if runs_dir is not None:
        runs_dir.mkdir(parents=True, exist_ok=True)
        for name, run in runs.items():
            tag = name.replace(" ", "_").replace("/", "-")
            run.write_trec(runs_dir / f"{tag}.trec", tag=tag)
    typer.echo(f"\n{col.name}: {len(queries)} {split} queries, {len(qrels)} judgments, {idx.num_docs:,} documents\n")
    with pd.option_context("display.width", 250, "display.max_columns", 80, "display.float_format", "{:.4f}".format):
        typer.echo((table if full else _compact(table, metrics or DEFAULT_METRICS)).to_string(index=False))
    if not full:
        typer.echo(
            "\n▲/▼: better/worse than BM25, paired t-test p < 0.05 after Holm correction"
            if test == "t"
            else "\n▲/▼: better/worse than BM25, paired permutation test p < 0.05 after Holm correction"
        )
    typer.echo(f"{len(runs)} systems run and evaluated in {elapsed:.1f}s")
    pictures = _experiment_plots(runs, qrels, plot, (metrics or DEFAULT_METRICS)[0], per_query) if plot else []
    if pictures:
        typer.echo(f"\n{len(pictures)} plots written:")
        for picture in pictures:
            typer.echo(f"  {picture}")


def _check_plot_dir(out_dir: Path) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _fail(str(MissingExtraError("matplotlib", "plot")))
    if out_dir.exists() and not out_dir.is_dir():
        _fail(f"--plot {out_dir}: exists and is not a folder")


def _experiment_plots(runs, qrels, out_dir: Path, measure: str, per_query) -> list[Path]:
    """The experiment's PNGs; matplotlib draws into files only (no window, works without a display)."""
    import matplotlib

    from rankstack.eval import write_experiment_plots

    matplotlib.use("Agg")
    try:
        return write_experiment_plots(runs, qrels, out_dir, measure, per_query=per_query)
    except (OSError, ValueError) as e:
        typer.secho(f"error: the plots could not be written: {e}", fg=typer.colors.RED, err=True)
        return []


def _dense_for_experiment(col, model: str, backend: str, path: Path):
    """A dense retriever over ``path``, building the index first unless one made by this model is there."""
    import rankstack
    from rankstack.dense import BiEncoder, build_dense_index

    encoder = BiEncoder(model, backend=backend)  # type: ignore[arg-type]
    if (path / "manifest.json").exists():
        index = rankstack.open(path)
        if index.manifest["type"] == "dense" and index.model.get("fingerprint") == encoder.identity()["fingerprint"]:
            typer.echo(f"using dense index {path} ({index.num_docs:,} documents)", err=True)
            return index.dense(encoder, allow_other_model=backend == "onnx")
    start = time.perf_counter()
    index = build_dense_index(col.corpus, encoder, path, overwrite=True)
    typer.echo(f"encoded {index.num_docs:,} documents into {path} in {time.perf_counter() - start:.1f}s", err=True)
    return index.dense(encoder, allow_other_model=backend == "onnx")


def _short_name(model: str) -> str:
    """A model's name for a table row: the last part of its path or Hub id."""
    return Path(model.rstrip("/\\")).name or model


def _compact(table, metrics: list[str]):
    """One column per metric, marked ▲/▼ where the Holm-corrected difference to the baseline is significant."""
    import pandas as pd

    out = pd.DataFrame({"system": table["name"]})
    if f"{metrics[0]} p-value (holm)" not in table:  # one system, nothing to compare with
        return out.assign(**{m: [f"{v:.4f}" for v in table[m]] for m in metrics})
    for m in metrics:
        col = table[m]
        marks = []
        for i, v in enumerate(col):
            p = table[f"{m} p-value (holm)"].iloc[i]
            delta = v - col.iloc[0]
            mark = "" if pd.isna(p) or p >= 0.05 else ("▲" if delta > 0 else "▼")
            marks.append(f"{v:.4f}{mark}")
        out[m] = marks
    first = metrics[0]
    out[f"{first} +/-"] = [
        "" if pd.isna(a) else f"{a}/{b}" for a, b in zip(table[f"{first} +"], table[f"{first} -"], strict=True)
    ]
    out[f"{first} p (holm)"] = ["" if pd.isna(p) else f"{p:.4f}" for p in table[f"{first} p-value (holm)"]]
    return out


@app.command()
def serve(
    spec: Annotated[Path, typer.Argument(help="A serve spec (.toml; see rankstack/serve/spec.py) or an index directory.")],
    host: Annotated[str, typer.Option(help="Address to bind. 0.0.0.0 exposes the server to your network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Processes; they share the indexes' memory maps.")] = 1,
    api_key: Annotated[
        str | None,
        typer.Option(help="Require this key in the X-API-Key header (or set RANKSTACK_API_KEY).", envvar="RANKSTACK_API_KEY"),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Open the spec's indexes and models, print the pipeline, exit.")] = False,
    ray_serve: Annotated[
        bool,
        typer.Option("--ray-serve", help="Deploy on Ray Serve instead of uvicorn (--workers replicas; the [scale] extra)."),
    ] = False,
) -> None:
    """Serve a pipeline over HTTP, with a search page at / (needs the [serve] extra).

    Endpoints: GET /search?q=...&k=10&offset=0, POST /search (a batch), GET /docs/{docid}, GET /healthz,
    GET /metrics (Prometheus), OpenAPI docs at /api. Binds to 127.0.0.1 unless --host says otherwise; Ctrl-C
    (SIGTERM) lets requests in flight finish.

    Examples:
      rankstack serve .cache/indexes/scifact
      rankstack serve pipeline.toml --port 8080 --workers 2
      rankstack serve pipeline.toml --check
      rankstack serve pipeline.toml --ray-serve --workers 2   # two Ray Serve replicas
    """
    import os

    from rankstack.serve import load_spec

    if workers < 1:
        _fail(f"--workers must be at least 1, not {workers}")
    if not 0 < port < 65536:
        _fail(f"--port must be 1..65535, not {port}")
    pipeline = load_spec(spec)  # a bad spec fails here, before any worker starts
    if check:
        typer.echo(f"{pipeline.title}: {pipeline.stage!r}")
        return
    try:
        import uvicorn

        from rankstack.serve.app import create_app
    except ImportError:
        _fail("rankstack serve needs the [serve] extra: pip install 'rankstack[serve]'")
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        typer.secho(f"warning: serving on {host} without --api-key: anyone who can reach it can search", err=True)
    typer.echo(f"serving {pipeline.stage!r} on http://{host}:{port}/ (Ctrl-C stops)", err=True)
    if ray_serve:
        from rankstack.serve import ray_serve as ray_deploy

        ray_deploy.run(spec, host, port, api_key, replicas=workers)
        return
    options = {"host": host, "port": port, "timeout_graceful_shutdown": 30, "log_level": "warning"}
    if workers == 1:
        uvicorn.run(create_app(pipeline, api_key), **options)
        return
    os.environ["RANKSTACK_SERVE_SPEC"] = str(spec.resolve())
    if api_key is not None:
        os.environ["RANKSTACK_API_KEY"] = api_key
    uvicorn.run("rankstack.serve.app:app_from_env", factory=True, workers=workers, **options)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning on the command line: what happened and what to do, not the line of rankstack's source it came from."""
    return f"warning: {message}\n"


def main() -> None:
    shown, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:  # a missing, unreadable or misplaced file: one line naming it, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        typer.secho(f"error: {where}{e.strerror or e}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except RankstackError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":
    main()
