"""Training speed of the BERT-based re-rankers on this CPU: seconds per step under each precision, with the
model's own attention dropout and with none (``attention_dropout=0.0``).

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_train_speed.py   # ~8 min on 2 cores

Why: PyTorch's fused scaled-dot-product attention on a CPU has no dropout, so BERT's default attention dropout
(0.1) sends every layer down the unfused path, which materialises the [batch, heads, length, length]
probabilities and their gradients. Each row trains the same model (all-MiniLM-L6-v2 as a cross-encoder, or as
CEDR-KNRM over its every layer) with ``train_reranker`` on SciFact's training queries, one positive and
``--negatives`` BM25 negatives per query, documents cut at ``--max-length`` tokens, for ``--steps`` steps; the
first ``--warmup`` steps are not timed. ``kernel time`` is the share of the process' CPU time spent in the kernel
and ``minor page faults`` their count divided by the steps, both over the whole row (model loading and BM25 mining
included). All rows run in one process, ``--rounds`` times, every other round in reverse order; the report gives
each round's seconds per step and takes medians.
Writes ``benchmarks/results/train-speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index, git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-train-speed")
    parser.add_argument("--models", nargs="+", default=["cross", "cedr-knrm"], choices=["cross", "cedr-knrm"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="each row runs once a round; the report takes medians")
    parser.add_argument("--batch-size", type=int, default=4, help="queries per step (each with its negatives)")
    parser.add_argument("--negatives", type=int, default=7)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cedr-windows", type=int, default=4, help="CEDR: windows per document (its default, 4)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "train-speed.md")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")

    import torch

    from rankstack.data import load_collection
    from rankstack.models.model_dir import packaged_path
    from rankstack.rerank import CEDR, CrossEncoder
    from rankstack.train import RerankConfig, train_reranker

    warnings.filterwarnings("ignore", message=r".*(longer than max_length|max_length)")
    torch.set_num_threads(args.threads)
    started = time.time()
    col = load_collection(DATA / "scifact")
    index = bm25_index(col.corpus, args.workdir / "bm25")
    minilm = packaged_path("minilm")
    variants = [(f, p, d) for f in args.models for p in args.precisions for d in (None, 0.0)]
    measured: dict[tuple, list[tuple[float, float, float]]] = {v: [] for v in variants}
    for round_ in range(args.rounds):  # rows take turns: every other round runs them in reverse order
        for family, precision, dropout in variants if round_ % 2 == 0 else variants[::-1]:
            model = (CrossEncoder(minilm, max_length=args.max_length) if family == "cross" else
                     CEDR(minilm, head="knrm", max_length=args.max_length, max_windows=args.cedr_windows))  # fmt: skip
            config = RerankConfig(epochs=1, batch_size=args.batch_size, num_negatives=args.negatives,
                                  max_length=args.max_length, max_examples=args.steps * args.batch_size,
                                  precision=precision, attention_dropout=dropout, log_every=1,
                                  show_progress=False)  # fmt: skip
            out = Path(tempfile.mkdtemp(dir=args.workdir))
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            train_reranker(model, col.queries_for("train"), col.qrels("train"), col.corpus, out, config=config,
                           bm25_index=index)  # fmt: skip
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            seconds = [h["seconds"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"]]
            timed = (seconds[-1] - seconds[args.warmup - 1]) / (len(seconds) - args.warmup)
            user, system = cpu1.ru_utime - cpu0.ru_utime, cpu1.ru_stime - cpu0.ru_stime
            measured[(family, precision, dropout)].append((timed, system / (user + system),
                                                           (cpu1.ru_minflt - cpu0.ru_minflt) / args.steps))  # fmt: skip
            print(family, precision, dropout, measured[(family, precision, dropout)][-1], flush=True)
    rows = []
    pairs = args.batch_size * (1 + args.negatives)
    for family, precision, dropout in variants:
        runs = measured[(family, precision, dropout)]
        step = float(np.median([r[0] for r in runs]))
        base = float(np.median([r[0] for r in measured[(family, precision, None)]]))
        rows.append(["CEDR-KNRM (MiniLM)" if family == "cedr-knrm" else "cross-encoder (MiniLM)", precision,
                     "model's own (0.1)" if dropout is None else f"{dropout:g}",
                     " / ".join(f"{r[0]:.2f}" for r in runs), f"{step / pairs * 1000:.0f}",
                     f"{np.median([r[1] for r in runs]):.0%}", f"{np.median([r[2] for r in runs]) / 1000:.0f}k",
                     f"{base / step:.2f}x"])  # fmt: skip
    lines = [
        "# Training speed on CPU: precision and attention dropout",
        "",
        f"Generated by `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_train_speed.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"in {(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"`train_reranker` on SciFact's training queries: {args.batch_size} queries a step, each with its positive and "
        f"{args.negatives} BM25 negatives ({pairs} pairs), documents cut at "
        f"{args.max_length} tokens (CEDR: up to {args.cedr_windows} windows of {args.max_length} tokens with the query, "
        f"a document's [CLS] vectors averaged), {args.steps} steps of which the first {args.warmup} are not timed; "
        f"{args.rounds} rounds, the rows taking turns (every other round in reverse order), medians over rounds. "
        "`kernel time` (the share of the process' CPU time spent in the kernel) and `minor page faults per step` cover "
        "the whole row, loading and BM25 mining included. `speed-up`: against the same model and precision with its "
        "own attention dropout.",
        "",
        markdown_table(["model", "precision", "attention dropout", "s per step (each round)", "ms per pair",
                        "kernel time", "minor page faults per step", "speed-up"], rows),
        "",
        *machine_section(["torch", "transformers"]),
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
