"""Does a trained re-ranker beat BM25 on queries it was trained on? A check for a model that re-ranks worse than
BM25 on test: if it also loses on its own training queries, the training data teaches the wrong thing.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/rerank_in_sample.py MODEL_DIR --collection nfcorpus \
        --split train --queries 40 --depth 30

Re-ranks BM25's top ``--depth`` for a seeded sample of ``--queries`` judged queries of ``--split`` (PyTorch,
one thread) and prints nDCG@10 and RR@10 of BM25 and of the re-ranker over those queries' judgments.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a trained cross-encoder directory")
    parser.add_argument("--collection", default="nfcorpus")
    parser.add_argument("--split", default="train")
    parser.add_argument("--queries", type=int, default=40, help="seeded sample of judged queries")
    parser.add_argument("--depth", type=int, default=30, help="BM25 candidates re-ranked per query")
    a = parser.parse_args(argv)

    import torch

    from rankstack.data import load_collection
    from rankstack.eval import evaluate
    from rankstack.rerank import CrossEncoder

    torch.set_num_threads(1)
    col = load_collection(DATA / a.collection)
    qrels = col.qrels(a.split)
    judged = sorted(set(qrels.qid.tolist()))
    qids = sorted(np.random.default_rng(0).choice(judged, min(a.queries, len(judged)), replace=False).tolist())
    qrels = qrels.subset(qids)
    with tempfile.TemporaryDirectory() as tmp:
        index = bm25_index(col.corpus, Path(tmp) / "bm25", show_progress=False)
        run = index.bm25(k1=0.9, b=0.4, k=a.depth)(col.queries_for(a.split).subset(qids))
        reranked = CrossEncoder(a.model, docs=index, max_length=256, show_progress=False)(run)
    for name, ranking in (("BM25", run), ("BM25 >> model", reranked)):
        scores = evaluate(ranking, qrels, ["nDCG@10", "RR@10"])
        print(f"{a.collection} {a.split}, {len(qids)} queries, {name}: "
              + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
