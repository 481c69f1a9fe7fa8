"""Issue 13's re-rankers in one table per collection: the MatchZoo family (KNRM, Conv-KNRM, DRMM, MatchPyramid,
DUET, DSSM), TKL, and the BERT-based ones (vanilla BERT, CEDR, the Cascade Transformer, PROP + fine-tuning), each
trained here and re-ranking BM25's top 100.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_matchzoo.py --workdir /tmp/rankstack-bench-matchzoo \\
        [--families knrm conv-knrm cross cedr-knrm cascade prop] [--cross-run scifact=runs/mono.trec]

Interaction models start from the packaged all-MiniLM-L6-v2's input embeddings (``--embeddings minilm``; or
``static-model``, the packaged Model2Vec model); the BERT-based families from the whole packaged all-MiniLM-L6-v2.
All are trained by ``train_reranker`` (the cross-encoders' trainer: LCE over the positive and ``--negatives`` BM25
negatives, batch 16, documents cut at ``--max-length`` tokens; interaction models' embeddings at ``--lr`` and fresh
layers at ``--head-lr`` for ``--epochs``; BERT-based ones at ``--bert-lr`` / ``--bert-head-lr`` for
``--bert-epochs``) on each collection's train split (NFCorpus: a seeded sample of ``--nfcorpus-examples`` of its
~110k judgments, optionally only positives BM25 ranks within ``--positive-depth``, at most ``--max-per-query`` per
query). Families: ``cross`` (monoBERT, CEDR's "vanilla BERT"), ``cedr-knrm|drmm|pacrr|vanilla`` (CEDR heads over
every layer; ``--cedr-windows`` windows per document), ``cascade`` (exits after layers 2, 4, 6; one row with every
pair reaching the top, one per ``--cascade-keep``, with BM25's top ``--cascade-protect`` always going on), ``prop`` (PROP pre-training on ``--prop-docs`` documents of
the collection, then the ``cross`` fine-tuning). Each re-ranks BM25's top ``--depth`` for the test queries; one
``Experiment`` per collection with Holm-corrected paired t-tests against BM25. A cross-encoder's TREC run over
the same BM25 depth can be added with ``--cross-run COLLECTION=PATH``. Models are kept in the work directory, so
a second run only evaluates; ``--report-only`` trains nothing and reports the runs and timings another run left
there (runs trained in parallel on a lent GPU, say). Writes ``benchmarks/results/matchzoo.md``.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index, experiment_markdown, git_revision, machine_info, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
FAMILIES = ["knrm", "conv-knrm", "drmm", "matchpyramid", "duet", "dssm", "tkl"]
BERT_FAMILIES = ["cross", "cedr-knrm", "cedr-drmm", "cedr-pacrr", "cedr-vanilla", "cascade", "prop"]


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
    parser.add_argument("--bert-lr", type=float, default=3e-5)
    parser.add_argument("--bert-head-lr", type=float, default=1e-3)
    parser.add_argument("--bert-epochs", type=int, default=1)
    parser.add_argument("--query-max-length", type=int, default=32)
    parser.add_argument("--cedr-windows", type=int, default=1)
    parser.add_argument("--cascade-keep", type=float, nargs="*", default=[0.8, 0.6])
    parser.add_argument("--cascade-protect", type=int, default=0, help="cascade rows: BM25's top N always reach the top")
    parser.add_argument("--prop-docs", type=int, default=1000)
    parser.add_argument("--positive-depth", type=int, default=None, help="NFCorpus: train on positives BM25 ranks here")
    parser.add_argument("--max-per-query", type=int, default=None, help="NFCorpus: at most this many examples per query")
    parser.add_argument("--max-examples", type=int, default=None, help="every collection: a seeded training sample")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--attention-dropout", type=float, default=None,
                        help="BERT-based families: attention dropout while training (default: the model's own, 0.1); "
                             "0 lets a CPU use fused attention, 1.7-2.4x faster for CEDR (results/train-speed.md)")  # fmt: skip
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report the runs and timings a run (e.g. on a lent GPU) left in --workdir")
    parser.add_argument("--notes", type=Path, default=None,
                        help="a Markdown file whose text goes under the report's first line, e.g. how and when each "
                             "merged run was made (kept across --report-only rewrites)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "matchzoo.md")
    args = parser.parse_args(argv)
    if args.notes is not None and not args.notes.is_file():
        parser.error(f"--notes {args.notes}: no such file; write the paragraph there first")
    unknown = sorted(set(args.families) - set(FAMILIES) - set(BERT_FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}: choose from {FAMILIES + BERT_FAMILIES}")

    import torch

    from rankstack.data import load_collection
    from rankstack.types import Ranking

    warnings.filterwarnings("ignore", message=r".*(longer than max_length|no tokens left|max_length|windows)")
    torch.set_num_threads(args.threads)
    if torch.cuda.is_available():  # a lent GPU: TF32 matrix products, fp32 weights and optimiser state
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    started = time.time()
    cross_runs = dict(item.split("=", 1) for item in args.cross_run)
    sections, timing = [], []
    for name in args.collections:
        col = load_collection(DATA / name)
        work = args.workdir / name
        work.mkdir(parents=True, exist_ok=True)
        index = bm25_index(col.corpus, work / "bm25")
        configs = training_configs(args, name)
        queries, qrels = col.queries_for("test"), col.qrels("test")
        first = index.bm25(k=args.depth)(queries)
        runs = {"BM25 (k1=0.9, b=0.4)": first}
        if name in cross_runs:
            runs["BM25 >> cross-encoder (MiniLM, trained here)"] = Ranking.read_trec(cross_runs[name]).cutoff(args.depth)
        section: list[str] = []
        for family in args.families:
            bert = family in BERT_FAMILIES
            out = work / (family if bert else f"{family}-{args.embeddings}")
            timings = out / "timing.json"
            if not args.report_only and (out / "final").exists():
                check_regime(args, out, bert)
            elif not args.report_only:
                resumed = resumed_step(out)
                t0 = time.perf_counter()
                train_family(args, family, col, index, out, configs[bert])
                timings.write_text(json.dumps(train_timing(time.perf_counter() - t0, resumed, out)))
            for label, scorer, cached in scorers(args, family, out, index):
                if args.report_only and not cached.exists():
                    print(f"{name}: no run for {label} in {out}: left out", flush=True)
                    continue
                recorded = json.loads(timings.read_text()) if timings.exists() else {}
                if cached.exists():  # a finished model's run: re-runs of the report do not re-rank again
                    runs[label] = Ranking.read_trec(cached)
                    rerank_s = recorded.get(f"rerank_s {label}", float("nan"))
                else:
                    t0 = time.perf_counter()
                    runs[label] = scorer()(first)
                    rerank_s = time.perf_counter() - t0
                    runs[label].write_trec(cached, tag=family)
                    if timings.exists():
                        timings.write_text(json.dumps({**recorded, f"rerank_s {label}": rerank_s}))
                train_s = recorded.get("train_s", float("nan"))
                epochs = args.bert_epochs if bert else args.epochs
                where = recorded.get("device", "this machine")
                if recorded.get("resumed_from_step"):
                    where += (f" (resumed at step {recorded['resumed_from_step']} of {recorded['total_steps']}: "
                              f"{recorded['train_s_measured']:.0f} s timed, scaled to the whole run)")  # fmt: skip
                timing.append([name, label.removeprefix("BM25 >> "), f"{train_s / epochs:.0f}", f"{len(first) / rerank_s:.0f}",
                               where])  # fmt: skip
                print(timing[-1], flush=True)
            # after each model: a run cut short by a time limit still leaves a report of what it finished
            section = collection_section(name, queries, qrels, runs, configs)
            write_report(args, started, [*sections, *section], timing)
        sections += section


def collection_section(name: str, queries: Any, qrels: Any, runs: dict[str, Any], configs: dict[bool, Any]) -> list[str]:
    """One collection's ``Experiment`` (Holm-corrected t-tests against BM25, the first run) as report lines."""
    from rankstack.eval import Experiment

    table = Experiment(runs, queries, qrels, ["nDCG@10", "R@100"], baseline=0, correction="holm")
    print(table.to_string(), flush=True)
    sizes = ", ".join(f"{kind}: {describe(config)}" for kind, config in
                      (("interaction models", configs[False]), ("BERT-based", configs[True])))  # fmt: skip
    return [f"## {name} (test: {len(queries)} queries; training on {sizes})", "", experiment_markdown(table), ""]


def training_configs(args: argparse.Namespace, collection: str) -> dict[bool, Any]:
    """The ``RerankConfig`` for interaction models (False) and BERT-based ones (True) on one collection."""
    from rankstack.train import RerankConfig

    nfcorpus = collection == "nfcorpus"
    examples = args.max_examples or (args.nfcorpus_examples if nfcorpus else None)
    common = {"batch_size": 16, "num_negatives": args.negatives, "max_length": args.max_length, "max_examples": examples,
              "max_per_query": args.max_per_query if nfcorpus else None, "precision": args.precision,
              "positive_depth": args.positive_depth if nfcorpus else None, "show_progress": False, "log_every": 50,
              "save_every": 25, "keep_checkpoints": 1}  # fmt: skip
    return {False: RerankConfig(epochs=args.epochs, learning_rate=args.lr, head_learning_rate=args.head_lr, **common),
            True: RerankConfig(epochs=args.bert_epochs, learning_rate=args.bert_lr, head_learning_rate=args.bert_head_lr,
                               query_max_length=args.query_max_length, attention_dropout=args.attention_dropout,
                               **common)}  # fmt: skip


def describe(config: Any) -> str:
    parts = [f"{config.epochs} epoch(s) at lr {config.learning_rate:g}"]
    for knob in ("max_examples", "max_per_query", "positive_depth"):
        if getattr(config, knob) is not None:
            parts.append(f"{knob} {getattr(config, knob)}")
    return ", ".join(parts)


def resumed_step(out: Path) -> int:
    """The step a resumed run starts from: the trainer's own latest complete checkpoint (0: a fresh run)."""
    from rankstack.train.checkpoint import checkpoints, read_state

    found = checkpoints(out)
    return int(read_state(found[-1])["step"]) if found else 0


def train_timing(seconds: float, resumed: int, out: Path) -> dict[str, Any]:
    """timing.json's training entry: a resumed run's time is scaled to all its steps, and says so."""
    from rankstack.train.checkpoint import read_state

    total = int(read_state(out).get("total_steps", 0) or 0)
    record: dict[str, Any] = {"train_s": seconds, "device": device_name()}
    if resumed and total > resumed:
        record |= {"train_s": seconds * total / (total - resumed), "train_s_measured": seconds,
                   "resumed_from_step": resumed, "total_steps": total}  # fmt: skip
    return record


def check_regime(args: argparse.Namespace, out: Path, bert: bool) -> None:
    """Refuse to report a finished model as trained with this run's precision and attention dropout when it was not."""
    from rankstack.train.checkpoint import STATE_FILE, read_state

    if not (out / STATE_FILE).exists():
        return
    config = read_state(out).get("config", {})
    wanted = {"precision": (args.precision, "fp32")} | ({"attention_dropout": (args.attention_dropout, None)} if bert else {})
    differs = [f"{k} {config.get(k, default)!r} (asked: {v!r})" for k, (v, default) in wanted.items()
               if config.get(k, default) != v]  # fmt: skip
    if differs:
        raise SystemExit(f"{out} holds a model trained with {', '.join(differs)}; delete the directory to train it "
                         "again with these settings, or pass the settings it was trained with")  # fmt: skip


def train_family(args: argparse.Namespace, family: str, col: Any, index: Any, out: Path, config: Any) -> None:
    """Train one family's model into ``out`` (resuming from its checkpoints)."""
    from rankstack.models.model_dir import packaged_path
    from rankstack.rerank import CEDR, CascadeCrossEncoder, CrossEncoder, InteractionReranker
    from rankstack.train import PropConfig, pretrain_prop, train_reranker

    sizes = {"max_length": args.max_length, "query_max_length": args.query_max_length}
    minilm = packaged_path("minilm")
    if family in FAMILIES:
        model = InteractionReranker(args.embeddings, family=family, max_length=args.max_length)
    elif family == "cross":
        model = CrossEncoder(minilm, **sizes)
    elif family == "cascade":
        model = CascadeCrossEncoder(minilm, **sizes)
    elif family == "prop":
        pconfig = PropConfig(max_docs=args.prop_docs, max_length=args.max_length, batch_size=16, precision=args.precision,
                             attention_dropout=args.attention_dropout, show_progress=False, save_every=25,
                             keep_checkpoints=1)  # fmt: skip
        t0 = time.perf_counter()
        pre = pretrain_prop(minilm, col.corpus, out.parent / "prop-pretrain", config=pconfig, resume=True)
        print(f"PROP pre-training on {args.prop_docs} documents: {time.perf_counter() - t0:.0f}s", flush=True)
        model = CrossEncoder(pre, **sizes)
    else:
        model = CEDR(minilm, head=family.removeprefix("cedr-"), max_windows=args.cedr_windows, **sizes)
    train_reranker(model, col.queries_for("train"), col.qrels("train"), index, out, config=config, bm25_index=index,
                   resume=True)  # fmt: skip


def scorers(args: argparse.Namespace, family: str, out: Path, index: Any) -> list[tuple[str, Any, Path]]:
    """(row label, a factory for the re-ranking Stage, its cached TREC run) for each row a family contributes."""
    from rankstack.rerank import CEDR, CascadeCrossEncoder, CrossEncoder, InteractionReranker

    final, depth, sizes = out / "final", args.depth, {"max_length": args.max_length, "query_max_length": args.query_max_length}
    if family in FAMILIES:
        return [(f"BM25 >> {family}", lambda: InteractionReranker(final, docs=index, max_length=args.max_length, cache=False),
                 out / f"bm25-top{depth}.trec")]  # fmt: skip
    if family in ("cross", "prop"):
        label = "BM25 >> vanilla BERT (MiniLM)" if family == "cross" else "BM25 >> PROP + BERT (MiniLM)"
        return [(label, lambda: CrossEncoder(final, docs=index, cache=False, **sizes), out / f"bm25-top{depth}.trec")]
    if family == "cascade":
        protect = args.cascade_protect
        rules = {keep: f"keep={keep}" + (f" protect={protect}" if protect and keep < 1 else "")
                 for keep in [1.0, *args.cascade_keep]}  # fmt: skip
        return [(f"BM25 >> cascade {rule}",
                 lambda keep=keep: CascadeCrossEncoder(final, docs=index, keep=keep, protect=protect, **sizes),
                 out / f"bm25-top{depth}-{rule.replace('=', '').replace(' ', '-')}.trec")
                for keep, rule in rules.items()]  # fmt: skip
    head = family.removeprefix("cedr-")
    return [(f"BM25 >> CEDR-{head}", lambda: CEDR(final, docs=index, cache=False, max_windows=args.cedr_windows,
                                                  max_length=args.max_length), out / f"bm25-top{depth}.trec")]  # fmt: skip


def device_name() -> str:
    """Where a model was trained, for the cost table: the GPU's name, else the CPU's."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return machine_info()["cpu"]


def attention_dropout(args: argparse.Namespace) -> str:
    if args.attention_dropout is None:
        return ""
    return f", BERT-based models' attention dropout {args.attention_dropout:g} while training"


def write_report(args: argparse.Namespace, started: float, sections: list[str], timing: list[list[str]]) -> None:
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_matchzoo.py " + " ".join(sys.argv[1:])
    lines = [
        "# Issue 13's re-rankers over BM25: the MatchZoo family, TKL, vanilla BERT, CEDR, cascade, PROP",
        "",
        *([args.notes.read_text(encoding="utf-8").strip(), ""] if args.notes else []),
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"Interaction models: `{args.embeddings}` token embeddings at lr {args.lr}, fresh layers at {args.head_lr}, "
        f"{args.epochs} epochs; BERT-based models: all-MiniLM-L6-v2 at lr {args.bert_lr}, fresh heads at "
        f"{args.bert_head_lr}, {args.bert_epochs} epoch(s), queries cut at {args.query_max_length} tokens, CEDR over "
        f"{args.cedr_windows} window(s), PROP pre-trained on {args.prop_docs} documents. All trained by "
        f"`train_reranker` (LCE, {args.negatives} BM25 negatives, batch 16, documents cut at {args.max_length} tokens, "
        f"{args.precision}{attention_dropout(args)}). Test: BM25 top {args.depth} re-ranked; p-values: paired t-test against BM25, "
        "Holm-corrected over the rows. Cascade rows: `keep` is the fraction of candidates kept at each exit "
        "(1.0: the full model).",
        "",
        *sections,
        "## Cost where each model was trained",
        "",
        "Training time per epoch is the whole training run over the epochs (PROP's includes its pre-training; the "
        "cascade's rows share one model). Re-ranking: pairs/s over BM25's top candidates for the test queries.",
        "",
        markdown_table(["collection", "model", "training (s per epoch)", "re-ranking (pairs/s)", "measured on"], timing),
        "",
        *machine_section(["torch", "transformers"]),
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
