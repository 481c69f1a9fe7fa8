"""The MatchZoo family (KNRM, Conv-KNRM, DRMM, MatchPyramid, DUET, DSSM) and TKL trained here, re-ranking BM25 top 100.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_matchzoo.py --workdir /tmp/rankstack-bench-matchzoo \\
        [--cross-run scifact=runs/mono.trec]

Every model starts from the packaged all-MiniLM-L6-v2's input embeddings (``--embeddings minilm``; or
``static-model``, the packaged Model2Vec model) and is trained by ``train_reranker`` (the cross-encoders' trainer:
LCE over the positive and ``--negatives`` BM25 negatives, batch 16, documents cut at ``--max-length`` tokens;
embeddings at ``--lr``, the fresh layers at ``--head-lr``) on each collection's train split (NFCorpus: a seeded
sample of ``--nfcorpus-examples`` of its ~110k judgments). Each re-ranks BM25's top ``--depth`` for the test
queries; one ``Experiment`` per collection with Holm-corrected paired t-tests against BM25. A cross-encoder's
TREC run over the same BM25 depth can be added with ``--cross-run COLLECTION=PATH``. Models are kept in the work
directory, so a second run only evaluates. Writes ``benchmarks/results/matchzoo.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index, experiment_markdown, git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
FAMILIES = ["knrm", "conv-knrm", "drmm", "matchpyramid", "duet", "dssm", "tkl"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-matchzoo")
    parser.add_argument("--collections", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--families", nargs="+", default=FAMILIES)
    parser.add_argument("--embeddings", default="minilm")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--nfcorpus-examples", type=int, default=1000)
    parser.add_argument("--negatives", type=int, default=7)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--head-lr", type=float, default=1e-2)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cross-run", action="append", default=[], metavar="COLLECTION=PATH")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "matchzoo.md")
    args = parser.parse_args(argv)

    import torch

    from rankstack.data import load_collection
    from rankstack.eval import Experiment
    from rankstack.rerank import InteractionReranker
    from rankstack.train import RerankConfig, train_reranker
    from rankstack.types import Ranking

    warnings.filterwarnings("ignore", message=r".*(longer than max_length|no tokens left)")
    torch.set_num_threads(args.threads)
    started = time.time()
    cross_runs = dict(item.split("=", 1) for item in args.cross_run)
    sections, timing = [], []
    for name in args.collections:
        col = load_collection(DATA / name)
        work = args.workdir / name
        work.mkdir(parents=True, exist_ok=True)
        bm25_path = work / "bm25"
        index = bm25_index(col.corpus, bm25_path)
        examples = args.nfcorpus_examples if name == "nfcorpus" else None
        config = RerankConfig(epochs=args.epochs, batch_size=16, learning_rate=args.lr, head_learning_rate=args.head_lr,
                              num_negatives=args.negatives, max_length=args.max_length, max_examples=examples,
                              show_progress=False, log_every=50, save_every=25, keep_checkpoints=1)  # fmt: skip
        queries, qrels = col.queries_for("test"), col.qrels("test")
        bm25 = index.bm25(k=args.depth)
        first = bm25(queries)
        runs = {"BM25 (k1=0.9, b=0.4)": first}
        if name in cross_runs:
            runs["BM25 >> cross-encoder (MiniLM, trained here)"] = Ranking.read_trec(cross_runs[name]).cutoff(args.depth)
        for family in args.families:
            out = work / f"{family}-{args.embeddings}"
            timings = out / "timing.json"
            if not (out / "final").exists():
                model = InteractionReranker(args.embeddings, family=family, max_length=args.max_length)
                t0 = time.perf_counter()
                train_reranker(model, col.queries_for("train"), col.qrels("train"), index, out, config=config,
                               bm25_index=index, resume=True)  # fmt: skip
                timings.write_text(json.dumps({"train_s": time.perf_counter() - t0}))
            cached = out / f"bm25-top{args.depth}.trec"
            if cached.exists():  # a finished model's run: re-runs of the report do not re-rank again
                runs[f"BM25 >> {family}"] = Ranking.read_trec(cached)
                rerank_s = json.loads(timings.read_text()).get("rerank_s", float("nan"))
            else:
                scorer = InteractionReranker(out / "final", docs=index, max_length=args.max_length, cache=False)
                t0 = time.perf_counter()
                runs[f"BM25 >> {family}"] = scorer(first)
                rerank_s = time.perf_counter() - t0
                runs[f"BM25 >> {family}"].write_trec(cached, tag=family)
                if timings.exists():
                    timings.write_text(json.dumps({**json.loads(timings.read_text()), "rerank_s": rerank_s}))
            train_s = json.loads(timings.read_text())["train_s"] if timings.exists() else float("nan")
            timing.append([name, family, f"{train_s / args.epochs:.0f}", f"{len(first) / rerank_s:.0f}"])
            print(timing[-1], flush=True)
        table = Experiment(runs, queries, qrels, ["nDCG@10", "R@100"], baseline=0, correction="holm")
        print(table.to_string(), flush=True)
        n_train = examples or len(col.qrels("train"))
        sections += [f"## {name} (test: {len(queries)} queries; training: {n_train} judgments, {args.epochs} epochs)", "",
                     experiment_markdown(table), ""]  # fmt: skip
        write_report(args, started, sections, timing)  # after each collection: a long run leaves a partial report


def write_report(args: argparse.Namespace, started: float, sections: list[str], timing: list[list[str]]) -> None:
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_matchzoo.py " + " ".join(sys.argv[1:])
    lines = [
        "# The MatchZoo family and TKL re-ranking BM25 (SciFact, NFCorpus)",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"Each model: `{args.embeddings}` token embeddings, trained by `train_reranker` (LCE, {args.negatives} BM25 "
        f"negatives, batch 16, documents cut at {args.max_length} tokens, embeddings at lr {args.lr}, fresh layers "
        f"at {args.head_lr}, {args.epochs} epochs). Test: BM25 top {args.depth} re-ranked; p-values: paired t-test "
        "against BM25, Holm-corrected over the rows.",
        "",
        *sections,
        "## Cost on this machine",
        "",
        markdown_table(["collection", "model", "training (s per epoch)", "re-ranking (pairs/s)"], timing),
        "",
        *machine_section(["torch"]),
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
