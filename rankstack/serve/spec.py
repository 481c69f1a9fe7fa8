"""What ``rankstack serve`` runs: a pipeline read from a TOML spec (or one bare index), as timed steps.

A spec names indexes by path (relative to the spec file) and the stages over them; nothing in it is
evaluated as code::

    title = "SciFact"                 # shown on the search page

    [retrievers.bm25]                 # any name; the index's manifest says what kind of index it is
    index = "indexes/scifact"
    k = 1000                          # BM25 also takes k1, b, rm3, threads

    [retrievers.dense]
    index = "indexes/scifact-minilm"  # dense: model, backend, exact, ef_search, nprobe

    [fusion]                          # with several retrievers (default: rrf)
    method = "combsum"                # rrf | combsum | combmnz
    norm = "zscore"                   # combsum / combmnz: minmax | zscore | ...
    k = 100                           # keep this many after fusing

    [[rerankers]]                     # in order; each re-ranks the previous stage's top `depth`
    model = "models/mono"             # any checkpoint load_reranker reads (family= when it cannot tell)
    depth = 50                        # also: max_length, batch_size, backend ("onnx"), cache (false: no score cache)
    docs = "bm25"                     # whose document store supplies the texts (default: the first that has one)

    [limits]                          # what one request may ask for (4xx beyond)
    max_query_chars = 1000
    max_k = 1000
    max_batch = 64

``ServedPipeline.run`` executes the same pipeline as ``ServedPipeline.stage`` (tested), one step at a time, so a
response can say where its time went.
"""

from __future__ import annotations

import dataclasses
import re
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rankstack.errors import RankstackError
from rankstack.pipeline import Fuse, Stage
from rankstack.types import Queries, Ranking

TOP_LEVEL = ("title", "retrievers", "fusion", "rerankers", "limits")
RETRIEVER_OPTIONS: dict[str, tuple[str, ...]] = {
    "bm25": ("index", "k", "k1", "b", "rm3", "threads"),
    "impact": ("index", "k", "model", "threads"),
    "dense": ("index", "k", "model", "backend", "exact", "ef_search", "nprobe", "allow_other_model"),
    "multimodal": ("index", "k", "model", "exact", "allow_other_model"),
    "colbert": ("index", "k", "model", "nprobe", "exact"),
}
FUSION_OPTIONS = ("method", "norm", "k", "rrf_k")
RERANKER_OPTIONS = ("model", "depth", "family", "docs", "max_length", "batch_size", "backend", "cache", "name")


class SpecError(RankstackError):
    """A serve spec that cannot run: names the file, the line where it can, and what to write instead."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond these the server answers 4xx naming the limit."""

    max_query_chars: int = 1000
    max_k: int = 1000
    max_batch: int = 64


@dataclasses.dataclass
class ServedPipeline:
    """Retrievers (fused when several), then re-rankers, each a named step the server times."""

    retrievers: list[tuple[str, Stage]]
    rerankers: list[tuple[str, int, Stage]] = dataclasses.field(default_factory=list)
    fusion: dict[str, Any] | None = None
    docs: Any = None
    analyzer: Any = None
    title: str = "rankstack"
    limits: Limits = dataclasses.field(default_factory=Limits)
    images: dict[str, str] | None = None  # docid -> image file, for an image index's thumbnails

    @property
    def stage(self) -> Stage:
        """The same pipeline as one Stage (its repr is what the search page shows)."""
        if len(self.retrievers) == 1:
            stage = self.retrievers[0][1]
        else:
            stage = Fuse(*(s for _, s in self.retrievers), **self._fuse_options)
            if (self.fusion or {}).get("k"):
                stage = stage % int(self.fusion["k"])  # type: ignore[index]
        for _, depth, reranker in self.rerankers:
            stage = stage % depth >> reranker
        return stage

    @property
    def _fuse_options(self) -> dict[str, Any]:
        """The spec's [fusion] as ``Fuse`` / ``fusion.fuse`` take it (the cut-off ``k`` apart)."""
        f = self.fusion or {}
        return {"method": f.get("method", "rrf"), "norm": f.get("norm", "minmax"), "k": f.get("rrf_k", 60)}

    @property
    def depth(self) -> int:
        """How many documents per query the pipeline can return at most."""
        ks = [getattr(s, "k", self.limits.max_k) for _, s in self.retrievers]
        depth = max(ks) if ks else self.limits.max_k
        if len(self.retrievers) > 1 and self.fusion and self.fusion.get("k"):
            depth = min(depth, int(self.fusion["k"]))
        return depth

    def run(self, queries: Queries, k: int) -> tuple[Ranking, dict[str, float]]:
        """The top ``k`` per query and the seconds each step took (retrievers, fusion, re-rankers)."""
        from rankstack import fusion

        timings: dict[str, float] = {}
        rankings = []
        for name, stage in self.retrievers:
            t0 = time.perf_counter()
            rankings.append(stage(queries))
            timings[name] = time.perf_counter() - t0
        ranking = rankings[0]
        if len(rankings) > 1:
            t0 = time.perf_counter()
            ranking = fusion.fuse(rankings, **self._fuse_options)
            if (self.fusion or {}).get("k"):
                ranking = ranking.cutoff(int(self.fusion["k"]))  # type: ignore[index]
            timings["fusion"] = time.perf_counter() - t0
        for name, depth, reranker in self.rerankers:
            t0 = time.perf_counter()
            ranking = reranker(ranking.cutoff(depth))
            timings[name] = time.perf_counter() - t0
        return ranking.cutoff(k), timings


# ------------------------------------------------------------------------------------------------ reading
def load_spec(path: str | Path) -> ServedPipeline:
    """A spec file (TOML) or an index directory (served alone, with its kind's defaults)."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path} does not exist: give a serve spec (.toml) or an index directory")
    if path.is_dir():
        spec = {"title": path.name, "retrievers": {_index_name(path): {"index": str(path)}}}
        return from_mapping(spec, path.parent, str(path), "")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path} is not UTF-8 text (byte {e.start}); a serve spec is a TOML file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    return from_mapping({"title": path.stem, **data}, path.parent, str(path), text)


def _index_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", path.name) or "index"


def _line(text: str, key: str, table: str | None = None) -> str:
    """' line N' of ``key`` (inside ``[table]`` when given) in the spec's text, or '' when not found."""
    lines = text.splitlines()
    start = 0
    if table is not None:
        header = re.compile(r"^\s*\[\[?\s*" + re.escape(table) + r"\s*\]\]?\s*(#.*)?$")
        start = next((i for i, line in enumerate(lines) if header.match(line)), -1)
        if start < 0:
            return ""
        if key == "":
            return f" line {start + 1}"
    assignment = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    header = re.compile(r"^\s*\[\[?\s*" + re.escape(key) + r"\s*[.\]]")  # [key], [key.name], [[key]]
    for pattern in (assignment, header):
        for i in range(max(start, 0), len(lines)):
            if pattern.match(lines[i]):
                return f" line {i + 1}"
    return ""


def from_mapping(data: Mapping[str, Any], base: Path, origin: str, text: str) -> ServedPipeline:
    """Validate a parsed spec and open what it names (``base``: where relative paths start)."""
    import rankstack

    def fail(message: str, key: str = "", table: str | None = None) -> SpecError:
        return SpecError(f"{origin}{_line(text, key, table) if (key or table) else ''}: {message}")

    for key in data:
        if key not in TOP_LEVEL:
            raise fail(f"unknown section or key {key!r}; a spec has {', '.join(TOP_LEVEL)}", key)
    retrievers_spec = data.get("retrievers")
    if not isinstance(retrievers_spec, Mapping) or not retrievers_spec:
        raise fail("no retrievers: add a [retrievers.NAME] table with index = \"path/to/index\"")
    limits = _limits(data.get("limits", {}), fail)
    opened: dict[str, Any] = {}
    retrievers: list[tuple[str, Stage]] = []
    analyzer = None
    images: dict[str, str] | None = None
    for name, options in retrievers_spec.items():
        table = f"retrievers.{name}"
        if not isinstance(options, Mapping) or "index" not in options:
            raise fail(f"retriever {name!r} needs index = \"path/to/index\"", table=table)
        index_path = Path(str(options["index"]))
        index_path = index_path if index_path.is_absolute() else base / index_path
        try:
            index = rankstack.open(index_path)
        except (RankstackError, OSError, ValueError) as e:
            raise fail(f"retriever {name!r}: cannot open {index_path}: {e}", "index", table) from None
        kind = retriever_kind(index)
        unknown = [key for key in options if key not in RETRIEVER_OPTIONS[kind]]
        if unknown:
            raise fail(f"retriever {name!r} ({kind} index) has no option {unknown[0]!r}; it takes "
                       f"{', '.join(RETRIEVER_OPTIONS[kind])}", unknown[0], table)  # fmt: skip
        k = options.get("k", limits.max_k)
        if not isinstance(k, int) or k < 1:
            raise fail(f"retriever {name!r}: k must be a positive integer, not {k!r}", "k", table)
        try:
            stage = retriever_for(index, kind, {key: v for key, v in options.items() if key != "index"})
        except (RankstackError, ValueError, TypeError, OSError) as e:
            raise fail(f"retriever {name!r}: {e}", table=table) from None
        opened[name] = index
        retrievers.append((name, stage))
        if analyzer is None and kind == "bm25":
            analyzer = index.analyzer
        if kind == "multimodal" and index.modality == "image" and images is None:
            images = _image_files(index)
    fusion_spec = data.get("fusion")
    if fusion_spec is not None:
        if not isinstance(fusion_spec, Mapping):
            raise fail("[fusion] must be a table", "fusion")
        unknown = [key for key in fusion_spec if key not in FUSION_OPTIONS]
        if unknown:
            raise fail(f"[fusion] has no option {unknown[0]!r}; it takes {', '.join(FUSION_OPTIONS)}", unknown[0], "fusion")
        from rankstack.fusion import check_options

        try:
            check_options(fusion_spec.get("method", "rrf"), fusion_spec.get("norm", "minmax"), fusion_spec.get("rrf_k", 60))
        except ValueError as e:
            raise fail(str(e), table="fusion") from None
    docs_source = next((n for n, idx in opened.items() if _has_docs(idx)), None)
    rerankers = []
    specs = data.get("rerankers", [])
    if not isinstance(specs, list):
        raise fail("rerankers must be an array of tables: [[rerankers]]", "rerankers")
    for i, options in enumerate(specs):
        where = "rerankers"
        if not isinstance(options, Mapping) or "model" not in options:
            raise fail(f"re-ranker #{i + 1} needs model = \"path or Hugging Face id\"", table=where)
        unknown = [key for key in options if key not in RERANKER_OPTIONS]
        if unknown:
            raise fail(f"re-ranker #{i + 1} has no option {unknown[0]!r}; it takes {', '.join(RERANKER_OPTIONS)}",
                       unknown[0])  # fmt: skip
        source = options.get("docs", docs_source)
        if source not in opened or not _has_docs(opened[source]):
            have = [n for n, idx in opened.items() if _has_docs(idx)]
            raise fail(f"re-ranker #{i + 1} needs document texts: docs = one of the retrievers with a document "
                       f"store ({', '.join(have) or 'none has one; rebuild an index with its documents stored'})",
                       "docs" if "docs" in options else "model")  # fmt: skip
        depth = options.get("depth", 100)
        if not isinstance(depth, int) or depth < 1:
            raise fail(f"re-ranker #{i + 1}: depth must be a positive integer, not {depth!r}", "depth")
        from rankstack.rerank import load_reranker

        model = str(options["model"])
        local = Path(model) if Path(model).is_absolute() else base / model
        kwargs = {k: v for k, v in options.items() if k in ("max_length", "batch_size", "backend", "cache")}
        try:
            reranker = load_reranker(str(local) if local.exists() else model, opened[source], family=options.get("family"),
                                     **kwargs)  # fmt: skip
        except (RankstackError, ValueError, TypeError, OSError) as e:
            raise fail(f"re-ranker #{i + 1}: cannot load {model!r}: {e}", "model") from None
        rerankers.append((str(options.get("name", f"rerank {i + 1}")), depth, reranker))
    docs = opened[docs_source].docs if docs_source is not None else None
    title = data.get("title", "rankstack")
    return ServedPipeline(retrievers, rerankers, dict(fusion_spec) if fusion_spec else None, docs, analyzer, str(title),
                          limits, images)  # fmt: skip


def _limits(values: Any, fail) -> Limits:
    if not isinstance(values, Mapping):
        raise fail("[limits] must be a table", "limits")
    known = {f.name for f in dataclasses.fields(Limits)}
    for key, value in values.items():
        if key not in known:
            raise fail(f"[limits] has no option {key!r}; it takes {', '.join(sorted(known))}", key, "limits")
        if not isinstance(value, int) or value < 1:
            raise fail(f"[limits] {key} must be a positive integer, not {value!r}", key, "limits")
    return Limits(**values)


def _image_files(index: Any) -> dict[str, str]:
    """docid -> image path of an image index, from the collection folder it recorded (none if moved)."""
    from rankstack.multimodal import ImageCollection

    source = index.model.get("source")
    if not source or not Path(source).is_dir():
        return {}
    try:
        return {d: str(p) for d, p in ImageCollection(source).images.items()}
    except (RankstackError, ValueError, OSError):
        return {}


def _has_docs(index: Any) -> bool:
    return bool(index.manifest.get("store_docs", index.manifest.get("type") == "inverted"))


# ------------------------------------------------------------------------------------------ retrievers
def retriever_kind(index: Any) -> str:
    """bm25, impact, dense, multimodal or colbert: what searching this index means."""
    kind = index.manifest.get("type")
    if kind == "colbert":
        return "colbert"
    if kind == "dense":
        return "multimodal" if index.is_multimodal else "dense"
    if kind == "inverted":
        return "impact" if index.impact is not None else "bm25"
    raise SpecError(f"{index.path} is a {kind!r} index, which rankstack cannot search")


def retriever_for(index: Any, kind: str, options: Mapping[str, Any]) -> Stage:
    """The first-stage Stage for ``index`` with the spec's options (the defaults `rankstack search` uses)."""
    k = int(options.get("k", 1000))
    model = options.get("model")
    if kind == "bm25":
        from rankstack.sparse import RM3

        stage: Stage = index.bm25(k1=options.get("k1", 0.9), b=options.get("b", 0.4), k=k, num_threads=options.get("threads"))
        return RM3(stage) if options.get("rm3") else stage
    if kind == "impact":
        from rankstack.sparse import Impact

        described = index.impact.get("encoder") or {}
        recorded = described.get("model")
        encoder = None
        if model or recorded:
            from rankstack.sparse.splade import load_splade

            # an index built by an inference-free encoder is searched with token queries, as it was built for
            mode = {"query_mode": described["query_mode"]} if described.get("query_mode") else {}
            encoder = load_splade(model or recorded, **mode)
        return Impact(index, encoder, k=k, num_threads=options.get("threads"),
                      max_query_terms=options.get("max_query_terms"))  # fmt: skip
    if kind == "dense":
        from rankstack.dense import BiEncoder

        encoder = BiEncoder(model or index.model["model"], backend=options.get("backend", "torch"))
        return index.dense(encoder, k=k, exact=bool(options.get("exact", False)), ef_search=options.get("ef_search"),
                           nprobe=options.get("nprobe"), allow_other_model=bool(options.get("allow_other_model", False)))  # fmt: skip
    if kind == "multimodal":
        return index.dense(model, k=k, exact=bool(options.get("exact", False)),
                           allow_other_model=bool(options.get("allow_other_model", False)))  # fmt: skip
    return index.colbert(model, k=k, nprobe=options.get("nprobe"), exhaustive=bool(options.get("exact", False)))
