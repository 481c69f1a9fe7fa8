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
(page faults on freed and re-allocated buffers, mostly). All rows run in one process, one after another.
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
    rows = []
    for family in args.models:
        for precision in args.precisions:
            for dropout in (None, 0.0):
                model = (CrossEncoder(minilm, max_length=args.max_length) if family == "cross" else
                         CEDR(minilm, head="knrm", max_length=args.max_length, max_windows=args.cedr_windows))  # fmt: skip
                own = next(m.dropout.p for m in model.model.modules() if type(m).__name__.endswith("SelfAttention"))
                config = RerankConfig(epochs=1, batch_size=args.batch_size, num_negatives=args.negatives,
                                      max_length=args.max_length, max_examples=args.steps * args.batch_size,
                                      precision=precision, attention_dropout=dropout, log_every=1,
                                      show_progress=False)  # fmt: skip
                out = Path(tempfile.mkdtemp(dir=args.workdir))
                cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                train_reranker(model, col.queries_for("train"), col.qrels("train"), col.corpus, out, config=config,
                               bm25_index=index)  # fmt: skip
                cpu1 = resource.getrusage(resource.RUSAGE_SELF)
                history = json.loads((out / "trainer_state.json").read_text())["log_history"]
                seconds = [h["seconds"] for h in history]
                timed = (seconds[-1] - seconds[args.warmup - 1]) / (len(seconds) - args.warmup)
                user, system = cpu1.ru_utime - cpu0.ru_utime, cpu1.ru_stime - cpu0.ru_stime
                label = "CEDR-KNRM (MiniLM)" if family == "cedr-knrm" else "cross-encoder (MiniLM)"
                rows.append([label, precision, f"{own:g} (model's own)" if dropout is None else f"{dropout:g}",
                             f"{timed:.2f}", f"{timed / (args.batch_size * (1 + args.negatives)) * 1000:.0f}",
                             f"{system / (user + system):.0%}"])  # fmt: skip
                print(rows[-1], flush=True)
    for row in rows:  # speed-up against the same model and precision with its own attention dropout
        base = next(r for r in rows if r[0] == row[0] and r[1] == row[1] and "own" in r[2])
        row.append(f"{float(base[3]) / float(row[3]):.2f}x")
    lines = [
        "# Training speed on CPU: precision and attention dropout",
        "",
        f"Generated by `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_train_speed.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"in {(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"`train_reranker` on SciFact's training queries: {args.batch_size} queries a step, each with its positive and "
        f"{args.negatives} BM25 negatives ({args.batch_size * (1 + args.negatives)} pairs), documents cut at "
        f"{args.max_length} tokens (CEDR: up to {args.cedr_windows} windows of {args.max_length} tokens with the query, "
        f"a document's [CLS] vectors averaged), {args.steps} steps of which the first {args.warmup} are not timed. `kernel "
        "time`: the share of the process' CPU time spent in the kernel over the whole run (page faults, mostly). "
        "`speed-up`: against the same model and precision with its own attention dropout.",
        "",
        markdown_table(["model", "precision", "attention dropout", "s per step", "ms per pair", "kernel time",
                        "speed-up"], rows),
        "",
        *machine_section(["torch", "transformers"]),
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
