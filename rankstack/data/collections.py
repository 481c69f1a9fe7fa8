"""Named test collections: a registry, a search path, and the ``Collection`` that ties files together.

``load_collection("scifact")`` looks in each directory of ``RANKSTACK_DATA`` (colon-separated), then in the
cache (``$RANKSTACK_HOME/collections`` or ``~/.cache/rankstack/collections``), then downloads from the
publisher with a checksum check. A path to a folder in BEIR layout works directly. Experiments name
collections rather than files so a run can be repeated on another machine.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

from rankstack.data.download import download_and_extract
from rankstack.data.readers import FileCorpus, read_qrels, read_queries
from rankstack.errors import InputFormatError, RankstackError, UnknownCollectionError
from rankstack.types import Qrels, Queries

__all__ = [
    "BEIR_LAYOUT",
    "MSMARCO_PASSAGE_LAYOUT",
    "REGISTRY",
    "Collection",
    "CollectionInfo",
    "CollectionNotFoundError",
    "Layout",
    "cache_dir",
    "data_dirs",
    "load_collection",
]

logger = logging.getLogger(__name__)


class CollectionNotFoundError(RankstackError, FileNotFoundError):
    """A registered collection that is neither on the search path nor downloadable."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a collection keeps its files, relative to its folder.

    ``corpus``: candidate file names, the first that exists is used. ``queries``: every existing file is
    read, in this order. ``qrels``: split name -> file, or ``None`` for BEIR's ``qrels/<split>.tsv``.
    """

    corpus: tuple[str, ...]
    queries: tuple[str, ...]
    qrels: Mapping[str, str] | None = None


BEIR_LAYOUT = Layout(
    corpus=("corpus.jsonl", "corpus.jsonl.gz", "corpus.parquet", "corpus.tsv", "corpus.tsv.gz"),
    queries=("queries.jsonl", "queries.jsonl.gz", "queries.tsv"),
)
# The official MS MARCO passage archive (collectionandqueries.tar.gz) unpacked as published.
MSMARCO_PASSAGE_LAYOUT = Layout(
    corpus=("collection.tsv",),
    queries=("queries.train.tsv", "queries.dev.tsv", "queries.eval.tsv"),
    qrels={"train": "qrels.train.tsv", "dev": "qrels.dev.small.tsv"},
)


@dataclasses.dataclass(frozen=True)
class CollectionInfo:
    """A registry entry. ``url`` is None for collections that can only be found on the search path."""

    name: str
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    layout: Layout = BEIR_LAYOUT
    description: str = ""


_BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{}.zip"
# md5 values are the ones BEIR publishes in its README's dataset table. sha256 is not published; the one for
# scifact (2,816,079-byte zip) is recorded identically by two unrelated public projects that downloaded it.
# Everything else is None: the downloader then checks the md5 and records the sha256 it computed.
_BEIR = {
    "scifact": (
        "5f7d1de60b170fc8027bb7898e2efca1",
        "536e14446a0ba56ed1398ab1055f39fe852686ecad24a6306c80c490fa8e0165",
        "SciFact claims vs. scientific abstracts (BEIR)",
    ),
    "nfcorpus": ("a89dba18a62ef92f7d323ec890a0d38d", None, "NFCorpus nutrition/medical (BEIR)"),
    "trec-covid": ("ce62140cb23feb9becf6270d0d1fe6d1", None, "TREC-COVID over CORD-19 (BEIR)"),
    "fiqa": ("17918ed23cd04fb15047f73e6c3bd9d9", None, "FiQA-2018 financial QA (BEIR)"),
    "arguana": ("8ad3e3c2a5867cdced806d6503f29b99", None, "ArguAna counter-arguments (BEIR)"),
    "scidocs": ("38121350fc3a4d2f48850f6aff52e4a9", None, "SCIDOCS citation prediction (BEIR)"),
    "nq": ("d4d3d2e48787a744b6f6e691ff534307", None, "Natural Questions over Wikipedia (BEIR)"),
    "msmarco": ("444067daf65d982533ea17ebd59501e4", None, "MS MARCO passage in BEIR layout (train/dev/test=DL19)"),
}
_LOCAL_ONLY = {
    "adi": "ADI (SMART), 82 docs",
    "cacm": "CACM (SMART), 3,204 docs",
    "cranfield": "Cranfield (Glasgow distribution), 1,400 docs",
    "npl": "NPL / Vaswani (Glasgow), 11,429 docs",
    "nq-utd": "NQ subset in BEIR layout",
    "trec-dl-2019-passage-subset": "TREC DL 2019 passage: judged passages + candidate pool (not the full 8.8M)",
    "coco-mini-captions": "COCO captions subset (multimodal)",
}

REGISTRY: dict[str, CollectionInfo] = {
    **{
        name: CollectionInfo(name, _BEIR_URL.format(name), sha256, md5, BEIR_LAYOUT, desc)
        for name, (md5, sha256, desc) in _BEIR.items()
    },
    "msmarco-passage": CollectionInfo(
        "msmarco-passage",
        "https://msmarco.z22.web.core.windows.net/msmarcoranking/collectionandqueries.tar.gz",
        sha256=None,
        md5="31644046b18952c1386cd4564ba2ae69",  # as given in Anserini's MS MARCO passage guide
        layout=MSMARCO_PASSAGE_LAYOUT,
        description="MS MARCO passage ranking v1, official archive (8,841,823 passages; dev = dev.small)",
    ),
    **{name: CollectionInfo(name, description=desc) for name, desc in _LOCAL_ONLY.items()},
}


def data_dirs() -> list[Path]:
    """The directories named in ``RANKSTACK_DATA`` (colon-separated), in order."""
    return [Path(p).expanduser() for p in os.environ.get("RANKSTACK_DATA", "").split(os.pathsep) if p]


def cache_dir() -> Path:
    """Where downloaded collections live: ``$RANKSTACK_HOME/collections`` or ``~/.cache/rankstack/collections``."""
    home = os.environ.get("RANKSTACK_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "rankstack"
    return base / "collections"


class Collection:
    """A test collection on disk: a streaming corpus, its queries, and qrels per split.

    Queries and qrels are small and read on first use; the corpus is a ``FileCorpus`` and is only read
    when iterated.
    """

    def __init__(self, path: str | Path, name: str | None = None, layout: Layout = BEIR_LAYOUT):
        self.path = Path(path)
        self.name = name or self.path.name
        self.layout = layout
        if not self.path.is_dir():
            raise FileNotFoundError(f"collection folder {str(self.path)!r} does not exist")
        corpus_file = next((self.path / f for f in layout.corpus if (self.path / f).is_file()), None)
        if corpus_file is None:
            raise InputFormatError(self.path, None, f"no corpus file; expected one of {', '.join(layout.corpus)}")
        self._query_files = [self.path / f for f in layout.queries if (self.path / f).is_file()]
        if not self._query_files:
            raise InputFormatError(self.path, None, f"no queries file; expected one of {', '.join(layout.queries)}")
        if layout.qrels is None:
            self._qrels_files = {p.stem: p for p in sorted((self.path / "qrels").glob("*.tsv"))}
        else:
            self._qrels_files = {s: self.path / f for s, f in layout.qrels.items() if (self.path / f).is_file()}
        self.corpus = FileCorpus(corpus_file, name=self.name)
        self._qrels: dict[str, Qrels] = {}

    @property
    def splits(self) -> list[str]:
        """The qrels splits present on disk, sorted (e.g. ``["dev", "test", "train"]``)."""
        return sorted(self._qrels_files)

    @cached_property
    def queries(self) -> Queries:
        """Every query of the collection, judged or not, in file order."""
        parts = [read_queries(p) for p in self._query_files]
        if len(parts) == 1:
            return parts[0]
        merged: dict[str, str] = {}
        for part in parts:
            for qid, text in part:
                merged.setdefault(qid, text)
        return Queries.from_dict(merged)

    def qrels(self, split: str = "test") -> Qrels:
        """The judgments of one split."""
        if split not in self._qrels_files:
            raise ValueError(f"collection {self.name!r} has no qrels split {split!r}; available: {self.splits}")
        if split not in self._qrels:
            self._qrels[split] = read_qrels(self._qrels_files[split])
        return self._qrels[split]

    def queries_for(self, split: str = "test") -> Queries:
        """The queries judged in ``split``, in queries-file order (what an evaluation should run)."""
        judged = self.qrels(split).qids()
        result = self.queries.subset(judged)
        if len(result) < len(judged):
            known = set(result.qid.tolist())
            missing = [q for q in judged if q not in known]
            logger.warning(
                "%s/%s: %d judged qids have no query text (e.g. %s)",
                self.name,
                split,
                len(missing),
                ", ".join(missing[:5]),
            )
        return result

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, path={str(self.path)!r}, splits={self.splits})"


def _looks_like_path(value: str | Path) -> bool:
    if isinstance(value, Path):
        return True
    return os.sep in value or value.startswith((".", "~")) or (value not in REGISTRY and Path(value).is_dir())


def load_collection(name_or_path: str | Path, *, download: bool = True, show_progress: bool = True) -> Collection:
    """Open a collection by name (search path, cache, then download) or by the path of a BEIR-layout folder.

    Raises ``UnknownCollectionError`` for a name that is neither registered nor on the search path, and
    ``CollectionNotFoundError`` for a registered name that cannot be found or downloaded, saying where it
    looked and how to point ``RANKSTACK_DATA`` at a copy.
    """
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        info = REGISTRY.get(path.name)
        return Collection(path, layout=info.layout if info else BEIR_LAYOUT)

    name = str(name_or_path)
    info = REGISTRY.get(name)
    layout = info.layout if info else BEIR_LAYOUT
    searched: list[Path] = []
    for root in [*data_dirs(), cache_dir()]:
        candidate = root / name
        searched.append(candidate)
        if candidate.is_dir():
            logger.debug("collection %s found at %s", name, candidate)
            return Collection(candidate, name=name, layout=layout)
    if info is None:
        raise UnknownCollectionError(name, list(REGISTRY))
    where = ", ".join(str(p) for p in searched)
    hint = (
        f"put a folder {name}/ in BEIR layout (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv) under a "
        f"directory and set RANKSTACK_DATA=/that/directory (several: separate with '{os.pathsep}')"
    )
    if info.url is None:
        raise CollectionNotFoundError(
            f"collection {name!r} is local-only and was not found; looked in: {where}. To use it, {hint}"
        )
    if not download:
        raise CollectionNotFoundError(
            f"collection {name!r} was not found (looked in: {where}) and download=False; {hint}"
        )
    dest = download_and_extract(
        info.url, cache_dir() / name, sha256=info.sha256, md5=info.md5, show_progress=show_progress
    )
    return Collection(dest, name=name, layout=layout)
