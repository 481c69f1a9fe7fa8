"""Cross-encoder variants at one training budget (SciFact): CEDR heads, the Cascade Transformer's speed at equal
effectiveness, and PROP pre-training against none.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_cross_variants.py --workdir /tmp/rankstack-bench-xv \\
        [--parts cross cedr-knrm cedr-vanilla cascade prop]

Every model starts from the packaged all-MiniLM-L6-v2 and is fine-tuned by ``train_reranker`` with one recipe
(a seeded sample of ``--examples`` SciFact training judgments, LCE over ``--negatives`` BM25 negatives, batch 8,
``--max-length``-token pairs, one epoch; the recipe of ``bench_decoupled.py``, so its cross-encoder row is the
same model when both share a work directory). Test: BM25's top ``--depth`` for the 300 test queries.

- ``cross``: the plain cross-encoder (monoBERT; CEDR's "vanilla BERT" reads [CLS] averaged over windows instead).
- ``cedr-knrm``, ``cedr-drmm``, ``cedr-pacrr``, ``cedr-vanilla``: CEDR heads over the same encoder (one window).
- ``cascade``: exits after layers 2, 4, 6 trained jointly; re-ranked with ``keep`` 1.0 (full model), 0.8, 0.6,
  0.4 at each exit; reports pairs/s and nDCG@10 cost against keep = 1.0, and the fastest setting within 0.005.
- ``prop``: PROP pre-training on ``--prop-docs`` SciFact documents, then the same fine-tuning; against ``cross``.

Writes ``benchmarks/results/cross_variants.md``.
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
from _common import bm25_index, experiment_markdown, git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
KEEPS = (1.0, 0.8, 0.6, 0.4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-xv")
    parser.add_argument("--parts", nargs="+", default=["cross", "cedr-knrm", "cedr-vanilla", "cascade", "prop"])
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--prop-docs", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "cross_variants.md")
    args = parser.parse_args(argv)

    import torch

    from rankstack.data import load_collection
    from rankstack.eval import Experiment, evaluate
    from rankstack.models.model_dir import packaged_path
    from rankstack.rerank import CEDR, CascadeCrossEncoder, CrossEncoder
    from rankstack.train import PropConfig, RerankConfig, pretrain_prop, train_reranker

    warnings.filterwarnings("ignore", message=r".*(max_length|no sequence-classification head|windows)")
    torch.set_num_threads(args.threads)
    started = time.time()
    minilm = packaged_path("minilm")
    col = load_collection(DATA / "scifact")
    args.workdir.mkdir(parents=True, exist_ok=True)
    bm25_path = args.workdir / "bm25"
    index = bm25_index(col.corpus, bm25_path)
    config = RerankConfig(max_examples=args.examples, num_negatives=args.negatives, max_length=args.max_length,
                          query_max_length=32, batch_size=8, show_progress=False, save_every=10, keep_checkpoints=1)  # fmt: skip
    queries, qrels = col.queries_for("test"), col.qrels("test")
    first = index.bm25(k=args.depth)(queries)
    runs = {"BM25 (k1=0.9, b=0.4)": first}
    costs: list[list[str]] = []

    trained: dict[str, str] = {}

    def train(name: str, model: object) -> Path:
        t0 = time.perf_counter()
        final = train_reranker(model, col.queries_for("train"), col.qrels("train"), index, args.workdir / name,
                               config=config, bm25_index=index, resume=True)  # fmt: skip
        trained[name] = f"{time.perf_counter() - t0:.0f}"
        print(f"{name}: trained in {trained[name]}s (0 when cached in the work directory)", flush=True)
        return final

    def rerank(name: str, scorer: object) -> float:
        t0 = time.perf_counter()
        runs[name] = scorer(first)  # type: ignore[operator]
        seconds = time.perf_counter() - t0
        costs.append([name, f"{len(first) / seconds:.1f}"])
        print(costs[-1], flush=True)
        return seconds

    sizes = {"max_length": args.max_length, "query_max_length": 32}
    cascade_rows: list[list[str]] = []
    for part in args.parts:
        if part == "cross":
            final = train("cross", CrossEncoder(minilm, **sizes))
            rerank("BM25 >> cross-encoder", CrossEncoder(final, docs=index, cache=False, **sizes))
        elif part.startswith("cedr-"):
            final = train(part, CEDR(minilm, head=part.removeprefix("cedr-"), max_length=args.max_length, max_windows=1))
            rerank(f"BM25 >> CEDR-{part.removeprefix('cedr-')}", CEDR(final, docs=index, cache=False, max_windows=1,
                                                                      max_length=args.max_length))  # fmt: skip
        elif part == "cascade":
            final = train("cascade", CascadeCrossEncoder(minilm, **sizes))
            base = None
            for keep in KEEPS:
                scorer = CascadeCrossEncoder(final, docs=index, keep=keep, **sizes)
                seconds = rerank(f"BM25 >> cascade keep={keep}", scorer)
                ndcg = evaluate(runs[f"BM25 >> cascade keep={keep}"], qrels, ["nDCG@10"])["nDCG@10"]
                base = base if base is not None else (ndcg, seconds)
                cascade_rows.append([f"{keep}", "/".join(str(int(c)) for c in scorer.last_counts),
                                     f"{len(first) / seconds:.1f}", f"{base[1] / seconds:.2f}x", f"{ndcg:.4f}",
                                     f"{ndcg - base[0]:+.4f}"])  # fmt: skip
        elif part == "prop":
            t0 = time.perf_counter()
            pconfig = PropConfig(max_docs=args.prop_docs, max_length=args.max_length, show_progress=False,
                                 save_every=20, keep_checkpoints=1)  # fmt: skip
            pre = pretrain_prop(minilm, col.corpus, args.workdir / "prop-pretrain", config=pconfig, resume=True)
            trained["prop-pretrain"] = f"{time.perf_counter() - t0:.0f}"
            print(f"PROP pre-training: {trained['prop-pretrain']}s", flush=True)
            final = train("prop-finetune", CrossEncoder(pre, **sizes))
            rerank("BM25 >> PROP + cross-encoder", CrossEncoder(final, docs=index, cache=False, **sizes))
        else:
            raise SystemExit(f"unknown part {part!r}")
    table = Experiment(runs, queries, qrels, ["nDCG@10", "R@10"], baseline=0, correction="holm")
    print(table.to_string(), flush=True)
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_cross_variants.py " + " ".join(sys.argv[1:])
    lines = [
        "# Cross-encoder variants at one training budget (SciFact): CEDR, Cascade Transformer, PROP",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"Each model: all-MiniLM-L6-v2 fine-tuned by `train_reranker` on the same {args.examples} SciFact training "
        f"judgments (LCE, {args.negatives} BM25 negatives, batch 8, {args.max_length}-token pairs, 1 epoch: a small "
        f"CPU budget). Test: BM25 top {args.depth} of 300 queries re-ranked; Holm-corrected paired t-tests vs BM25.",
        "",
        experiment_markdown(table),
        "",
        markdown_table(["system", "pairs/s"], costs),
        "",
        markdown_table(["model", "training (s; 0 when reused from the work directory)"], list(trained.items())),
        "",
    ]
    if cascade_rows:
        lines += ["## Cascade: throughput against effectiveness", "",
                  markdown_table(["keep per exit", "pairs reaching exits 2/4/6", "pairs/s", "speed-up vs full",
                                  "nDCG@10", "cost vs full"], cascade_rows), ""]  # fmt: skip
    lines += machine_section(["torch", "transformers"])
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
