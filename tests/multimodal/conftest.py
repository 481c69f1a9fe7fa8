"""Fixtures: a handful of real COCO photos (from ../shared/data) copied into a tiny image collection, the packaged
EfficientNet-Lite0 tower and the packaged all-MiniLM-L6-v2, loaded once per session."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

COCO = SHARED_DATA / "coco-mini-captions"


def _rows(n_train: int, n_val: int) -> tuple[list[dict], list[dict], list[tuple[str, str]]]:
    with gzip.open(COCO / "corpus.jsonl.gz", "rt") as f:
        corpus = [json.loads(line) for line in f]
    picked = [r for r in corpus if r["coco_split"] == "train2017"][:n_train]
    picked += [r for r in corpus if r["coco_split"] == "val2017"][:n_val]
    ids = {r["_id"] for r in picked}
    queries = [json.loads(line) for line in (COCO / "queries.jsonl").open()]
    queries = [q for q in queries if q["image_id"] in ids]
    return picked, queries, [(q["_id"], q["image_id"]) for q in queries]


@pytest.fixture(scope="session")
def image_collection(tmp_path_factory) -> Path:
    """A BEIR-like image collection of 6 train2017 + 4 val2017 COCO photos with their captions."""
    if not COCO.is_dir():
        pytest.skip(f"{COCO} not found")
    root = tmp_path_factory.mktemp("collections") / "tiny-coco"
    (root / "images").mkdir(parents=True)
    (root / "qrels").mkdir()
    corpus, queries, qrels = _rows(6, 4)
    for row in corpus:
        shutil.copy(COCO / row["image"], root / row["image"])
    with gzip.open(root / "corpus.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in corpus)
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels))
    return root


@pytest.fixture(scope="session")
def photos(image_collection) -> list[Path]:
    return sorted((image_collection / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def tower():
    from rankstack.multimodal import EfficientNetTower

    return EfficientNetTower("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="session")
def composite(tower):
    from rankstack.multimodal import CompositeDualEncoder

    return CompositeDualEncoder(tower, "minilm", device="cpu")
