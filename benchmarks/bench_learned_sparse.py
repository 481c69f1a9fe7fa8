"""Learned sparse models trained here, against BM25 and zero-shot SPLADE-tiny (issue #11's effectiveness table).

Usage::

    RANKSTACK_DATA=../shared/data nice -n 5 .venv/bin/python benchmarks/bench_learned_sparse.py \\
        --workdir /work/bench/sparse          # SciFact, ~45 min on 2 cores
    .venv/bin/python benchmarks/bench_learned_sparse.py --quick   # minutes: tiny budgets, to check the script

Systems, each trained on the collection's train split (SciFact: 809 queries, 919 judgments) and searched with
the test queries (nDCG@10 and R@100 by ``rankstack.eval.Experiment``, Holm-corrected paired t-tests against BM25):

- BM25 (k1=0.9, b=0.4, Pyserini's BEIR setting);
- SPLADE-tiny zero-shot (the packaged checkpoint) and fine-tuned here (``train_splade``: in-batch + one BM25
  negative, FLOPS), both over 8-bit impact indexes; ``splade-kd``: the same fine-tuning with MarginMSE to the
  ``--cross-encoder``'s score margins instead of the judgments' softmax (``--splade-train-queries``: SPLADE's own
  training sample);
- uniCOIL: the packaged all-MiniLM-L6-v2 with a fresh one-weight-per-token head, trained by ``train_splade``
  without FLOPS, on the plain documents;
- DeepCT: MiniLM regressing query term recall (``train_deepct``), its weights x 100 as term frequencies in a
  BM25 index;
- doc2query: a BERT2BERT warm-started from MiniLM (``seq2seq_from_encoder``, ``--decoder-layers``) and trained
  to write each judged document's query (``train_doc2query``); ``--d2q-queries`` sampled queries (top-10) appended
  to every document, then BM25.

With ``--cross-encoder DIR`` (a cross-encoder trained by the re-ranking issue, e.g. ``bench_rerank.py``'s
``model-mono/final``), each system is also a first stage under it: its top ``--rerank-depth`` re-ranked (ONNX
int8, exported on first use), one scorer for all systems so a pair two systems retrieve is
scored once. Re-ranked runs are kept in ``--workdir`` as TREC files.

Every model, encoding and expansion is kept in ``--workdir``; a re-run computes only what is missing. Writes
``benchmarks/results/learned-sparse.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index, experiment_markdown, git_revision, machine_section

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")


class Bench:
    def __init__(self, args: argparse.Namespace):
        from rankstack.data import load_collection

        self.args = args
        self.col = load_collection(DATA / args.collection)
        self.work = args.workdir / (args.collection + ("-quick" if args.quick else ""))
        self.work.mkdir(parents=True, exist_ok=True)
        self.docs = list(self.col.corpus)
        self.queries, self.qrels = self.col.queries_for("test"), self.col.qrels("test")
        self.train_q, self.train_qrels = self.col.queries_for("train"), self.col.qrels("train")
        if args.quick:  # a smoke run: 16 training queries, 30 test queries, their judged documents + 300 others
            train = sorted(set(self.train_qrels.qid.tolist()))[:16]
            test = sorted(set(self.qrels.qid.tolist()))[:30]
            self.train_q, self.queries = self.train_q.subset(train), self.queries.subset(test)
            self.train_qrels = self.train_qrels.subset(train)
            judged = set(self.train_qrels.docid.tolist())
            judged |= {d for q, d in zip(self.qrels.qid, self.qrels.docid, strict=True) if q in set(test)}
            self.docs = [d for i, d in enumerate(self.docs) if i < 300 or d.docid in judged]
        all_q, all_qrels = self.train_q, self.train_qrels
        if args.train_queries:  # a training budget: a seeded sample of queries, each with every one of its judgments
            self.train_q, self.train_qrels = sample_training_queries(self.train_q, self.train_qrels, args.train_queries, args)
        self.splade_q, self.splade_qrels = self.train_q, self.train_qrels  # SPLADE fine-tuning's own budget
        if args.splade_train_queries:
            self.splade_q, self.splade_qrels = sample_training_queries(all_q, all_qrels, args.splade_train_queries, args)
        self.index = bm25_index(self.docs, self.work / "bm25")
        self.timings: dict[str, float] = {}
        self.examples: list[tuple[str, str, Any]] = []
        self._cross: Any = None

    def cross_encoder(self):
        """The ``--cross-encoder`` (ONNX int8, exported on first use): the re-ranker of every system, and the
        teacher SPLADE distils in the ``splade-kd`` row."""
        from rankstack.rerank import CrossEncoder

        if self._cross is None:
            model = self.args.cross_encoder
            if model is None:
                raise SystemExit("splade-kd distils --cross-encoder: give one")
            if not (model / "onnx" / "model_qint8.onnx").exists():
                CrossEncoder(model).export_onnx()  # int8 ONNX Runtime, as bench_rerank.py's mono-int8 row
            self._cross = CrossEncoder(model, docs=self.index, max_length=self.args.rerank_max_length, backend="onnx",
                                       show_progress=True)  # fmt: skip
        return self._cross

    def timed(self, name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        self.timings[name] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {self.timings[name]:.0f}s", flush=True)
        return out

    # ------------------------------------------------------------------------------------ impact indexes
    def impact_index(self, name: str, encoder: Any):
        from rankstack.index import build_impact_index, open_index
        from rankstack.sparse.impact import encode_corpus

        path = self.work / f"impact-{name}"
        if (path / "manifest.json").exists():
            return open_index(path)
        vectors = encode_corpus(encoder, self.docs, show_progress=True)
        return self.timed(f"encode + index {name}", lambda: build_impact_index(
            vectors, path, bits=8, encoder=encoder.describe(), show_progress=False))  # fmt: skip

    def splade(self, fine_tuned: bool, distilled: bool = False):
        """SPLADE-tiny zero-shot, fine-tuned on the judgments (in-batch + a BM25 negative), or ``distilled``: the
        same recipe with MarginMSE to the ``--cross-encoder``'s margins on each query's positives and BM25 pool."""
        from rankstack.sparse import Impact
        from rankstack.sparse.splade import load_splade
        from rankstack.train import SpladeConfig, train_splade

        model, name = "splade-tiny", "splade-tiny"
        if fine_tuned:
            name = "splade-kd" if distilled else "splade-ft"
            out = self.work / ("model-splade-kd" if distilled else "model-splade")
            a = self.args
            config = SpladeConfig(epochs=a.splade_epochs or a.epochs, batch_size=32, learning_rate=a.splade_lr,
                                  num_negatives=1, negative_depth=30, doc_max_length=a.splade_train_max_length,
                                  save_every=10, flops_query=a.splade_flops[0], flops_doc=a.splade_flops[1],
                                  show_progress=True, loss="margin_mse" if distilled else "contrastive")  # fmt: skip
            model = out / "final"
            if not (model / "model.safetensors").exists():  # trained already: no teacher scores needed again
                teacher = self.cross_encoder() if distilled else None
                self.timed(f"train {name}", lambda: train_splade(
                    load_splade("splade-tiny"), self.splade_q, self.splade_qrels, self.index, out, config=config,
                    bm25_index=self.index, teacher=teacher, resume=True))  # fmt: skip
        encoder = load_splade(model, max_length=self.args.max_length)
        return Impact(self.impact_index(name, encoder), encoder, k=1000)

    def splade_free(self, trained: bool):
        """Inference-free SPLADE: documents by SPLADE-tiny, queries as their tokens. Untrained: SPLADE-tiny's own
        document vectors (its index) and every query token at weight 1; trained: the document encoder and the
        query token table trained together (``query_mode="tokens"``), as the fine-tuned row is."""
        from rankstack.sparse import Impact
        from rankstack.sparse.splade import load_splade
        from rankstack.train import SpladeConfig, train_splade

        a = self.args
        if not trained:
            index = self.impact_index("splade-tiny", load_splade("splade-tiny", max_length=a.max_length))
            return Impact(index, load_splade("splade-tiny", query_mode="tokens"), k=1000, check_encoder=False)
        out = self.work / "model-splade-free"
        config = SpladeConfig(epochs=a.epochs, batch_size=32, learning_rate=a.splade_lr, num_negatives=1,
                              negative_depth=30, doc_max_length=a.max_length, save_every=10, show_progress=True,
                              precision=a.precision)  # fmt: skip
        model = self.timed("train inference-free SPLADE", lambda: train_splade(
            load_splade("splade-tiny", query_mode="tokens"), self.train_q, self.train_qrels, self.index, out,
            config=config, bm25_index=self.index, resume=True))  # fmt: skip
        encoder = load_splade(model, max_length=a.max_length)  # its idf.json: token queries
        return Impact(self.impact_index("splade-free", encoder), encoder, k=1000)

    def unicoil(self):
        from rankstack.sparse import Impact, UniCoil
        from rankstack.train import SpladeConfig, train_splade

        a = self.args
        out = self.work / "model-unicoil"
        config = SpladeConfig(epochs=a.epochs, batch_size=16, learning_rate=a.lr, num_negatives=1, negative_depth=30,
                              doc_max_length=a.train_max_length, flops_doc=0.0, flops_query=0.0, save_every=10)  # fmt: skip
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*no uniCOIL head")
            fresh = UniCoil("minilm", max_length=a.max_length)
        final = self.timed("train uniCOIL", lambda: train_splade(
            fresh, self.train_q, self.train_qrels, self.index, out, config=config, bm25_index=self.index, resume=True))  # fmt: skip
        encoder = UniCoil(final, max_length=a.max_length)
        return Impact(self.impact_index("unicoil", encoder), encoder, k=1000)

    def deepct(self):
        from rankstack.index import build_term_index, open_index
        from rankstack.sparse.deepct import DeepCT
        from rankstack.train import TrainConfig, train_deepct

        a = self.args
        path = self.work / "bm25-deepct"
        if not (path / "manifest.json").exists():
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*no DeepCT head")
                fresh = DeepCT("minilm", analyzer=self.index.analyzer, max_length=a.train_max_length)
            config = TrainConfig(epochs=a.epochs, batch_size=16, learning_rate=a.lr, save_every=10)
            final = self.timed("train DeepCT", lambda: train_deepct(
                fresh, self.train_q, self.train_qrels, self.index, self.work / "model-deepct", config=config,
                analyzer=self.index.analyzer, resume=True))  # fmt: skip
            model = DeepCT(final, analyzer=self.index.analyzer, max_length=a.max_length)
            self.timed("DeepCT weights + index", lambda: build_term_index(
                model.bags(self.docs), path, self.index.analyzer, show_progress=False))  # fmt: skip
        return open_index(path).bm25(k=1000)

    def doc2query(self):
        from rankstack.index import build_inverted_index, open_index
        from rankstack.sparse.doc2query import Doc2Query
        from rankstack.train import seq2seq_from_encoder
        from rankstack.train.doc2query import Doc2QueryConfig, train_doc2query

        a = self.args
        path = self.work / "bm25-d2q"
        init = self.work / "model-d2q-init"
        if not (init / "config.json").exists():
            seq2seq_from_encoder("minilm", init, decoder_layers=a.decoder_layers)
        config = Doc2QueryConfig(epochs=a.d2q_epochs, batch_size=16, learning_rate=1e-4, max_length=a.train_max_length,
                                 save_every=10)  # fmt: skip
        final = self.timed("train doc2query", lambda: train_doc2query(
            str(init), self.train_q, self.train_qrels, self.index, self.work / "model-d2q", config=config, resume=True))  # fmt: skip
        expander = Doc2Query(final, num_queries=a.d2q_queries, top_k=10, max_new_tokens=24, max_length=a.train_max_length,
                             cache_dir=self.work / "d2q-cache")  # fmt: skip
        if not (path / "manifest.json").exists():
            self.timed("doc2query expansion + index", lambda: build_inverted_index(
                expander.expand(self.docs), path, show_progress=False))  # fmt: skip
        texts = [d.contents() for d in self.docs[:3]]  # what the model writes, for the report (from the cache)
        self.examples = [(d.docid, d.contents()[:80], qs) for d, qs in zip(self.docs[:3], expander.generate(texts), strict=True)]
        return open_index(path).bm25(k=1000)


def sample_training_queries(queries: Any, qrels: Any, n: int, args: argparse.Namespace) -> tuple[Any, Any]:
    """``n`` training queries drawn with a fixed seed among those with at most
    ``--train-max-judgments`` judgments, and all their judgments: none of a query's positives is dropped (so none
    can come back as a BM25 negative), and NFCorpus' broad topic queries (hundreds of judgments) do not dominate."""
    qids, counts = np.unique(qrels.qid, return_counts=True)
    eligible = sorted(str(q) for q, c in zip(qids, counts, strict=True) if c <= args.train_max_judgments)
    rng = np.random.default_rng(42)
    chosen = sorted(rng.choice(eligible, size=min(n, len(eligible)), replace=False).tolist())
    qrels = qrels.subset(chosen)
    print(f"training on {len(chosen)} queries, {len(qrels)} judgments", flush=True)
    return queries.subset(chosen), qrels


def reranked(bench: Bench, runs: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Every first stage's top ``--rerank-depth`` under one cross-encoder (a shared score cache), each run kept
    in the work directory as a TREC file so an interrupted benchmark resumes where it stopped."""
    import re

    from rankstack.types import Ranking

    scorer = bench.cross_encoder()
    out = {}
    for label, run in runs.items():
        name = f"{label.split(' (')[0]} >> cross-encoder (ONNX int8)"
        cached = bench.work / f"rerank-{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}-{args.rerank_depth}.trec"
        if cached.exists():
            out[name] = Ranking.read_trec(cached)
            continue
        out[name] = bench.timed(f"re-rank {label}", lambda run=run: scorer(run.cutoff(args.rerank_depth)))
        out[name].write_trec(cached, tag="rerank")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", default="scifact")
    parser.add_argument("--systems", nargs="+", default=["splade-tiny", "splade-ft", "unicoil", "deepct", "doc2query"])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-sparse")
    parser.add_argument("--epochs", type=int, default=2, help="SPLADE, uniCOIL and DeepCT epochs")
    parser.add_argument("--lr", type=float, default=5e-5, help="uniCOIL and DeepCT (MiniLM) learning rate")
    parser.add_argument("--splade-lr", type=float, default=2e-5)
    parser.add_argument("--splade-epochs", type=int, default=None, help="SPLADE fine-tuning epochs (default: --epochs)")
    parser.add_argument("--splade-flops", type=float, nargs=2, default=[3e-4, 1e-4], metavar=("QUERY", "DOC"),
                        help="FLOPS regulariser weights when fine-tuning SPLADE (0 0: none)")
    parser.add_argument("--max-length", type=int, default=256, help="document tokens when encoding the corpus")
    parser.add_argument("--splade-train-max-length", type=int, default=None,
                        help="document tokens in SPLADE fine-tuning (default: --max-length)")
    parser.add_argument("--train-max-length", type=int, default=128, help="document tokens in training")
    parser.add_argument("--decoder-layers", type=int, default=2)
    parser.add_argument("--d2q-epochs", type=int, default=3)
    parser.add_argument("--d2q-queries", type=int, default=5, help="queries sampled per document")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="inference-free training")
    parser.add_argument("--cross-encoder", type=Path, default=None, help="re-rank every system's top with this model")
    parser.add_argument("--rerank-depth", type=int, default=100)
    parser.add_argument("--rerank-max-length", type=int, default=256, help="tokens per (query, document) pair")
    parser.add_argument("--train-queries", type=int, default=None, help="train on a seeded sample of this many queries")
    parser.add_argument("--train-max-judgments", type=int, default=40, help="... among those with at most this many")
    parser.add_argument("--splade-train-queries", type=int, default=None,
                        help="SPLADE fine-tuning (splade-ft, splade-kd) on its own seeded sample of this many queries")
    parser.add_argument("--quick", action="store_true", help="16 training queries, 30 test queries: a smoke run")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "learned-sparse.md")
    args = parser.parse_args(argv)
    args.splade_train_max_length = args.splade_train_max_length or args.max_length
    if args.quick:
        args.epochs, args.d2q_epochs, args.d2q_queries = 1, 1, 1

    import torch

    from rankstack.eval import Experiment

    warnings.filterwarnings("ignore", message=r".*(longer than max_length|no tokens left|texts are empty)")
    torch.set_num_threads(args.threads)
    started = time.time()
    bench = Bench(args)
    stages = {"BM25 (k1=0.9, b=0.4)": lambda: bench.index.bm25(k=1000)}
    names = {
        "splade-tiny": ("SPLADE-tiny, zero-shot (8-bit)", lambda: bench.splade(False)),
        "splade-ft": ("SPLADE-tiny, fine-tuned here (8-bit)", lambda: bench.splade(True)),
        "splade-kd": ("SPLADE-tiny, distilled from the cross-encoder here (MarginMSE, 8-bit)",
                      lambda: bench.splade(True, distilled=True)),
        "splade-free-untrained": ("SPLADE-tiny documents, token queries at weight 1 (8-bit)",
                                  lambda: bench.splade_free(False)),
        "splade-free": ("inference-free SPLADE-tiny, documents and query table trained here (8-bit)",
                        lambda: bench.splade_free(True)),
        "unicoil": ("uniCOIL (MiniLM, trained here, 8-bit)", bench.unicoil),
        "deepct": ("DeepCT-weighted BM25 (MiniLM, trained here)", bench.deepct),
        "doc2query": (f"BM25 over doc2query expansions ({args.d2q_queries} per document)", bench.doc2query),
    }
    for system in args.systems:
        label, make = names[system]
        stages[label] = make
    runs = {}
    for label, make in stages.items():
        stage = make()
        runs[label] = bench.timed(f"search {label}", lambda stage=stage: stage(bench.queries))
    if args.cross_encoder:
        runs.update(reranked(bench, runs, args))
    table = Experiment(runs, bench.queries, bench.qrels, ["nDCG@10", "R@100"], baseline=0, correction="holm")
    print(table.to_string(), flush=True)
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_learned_sparse.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Learned sparse retrieval trained here ({args.collection})",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"Trained on {args.collection} train ({len(set(bench.train_qrels.qid.tolist()))} queries with judgments"
        f"{', first 16 (--quick)' if args.quick else ''}"
        f"{f', a seeded sample among those with at most {args.train_max_judgments} judgments; {len(bench.train_qrels)} judgments' if args.train_queries else ''}"
        f"); {len(bench.queries)} test queries. SPLADE, uniCOIL, "
        f"DeepCT: {args.epochs} epoch(s), documents cut at {args.train_max_length} tokens in training (uniCOIL, "
        f"DeepCT, doc2query) and {args.max_length} when encoding the corpus; doc2query: {args.d2q_epochs} epoch(s), "
        f"a {args.decoder_layers}-layer decoder. SPLADE fine-tuning: {args.splade_epochs or args.epochs} epoch(s) at lr "
        f"{args.splade_lr:g}, documents cut at {args.splade_train_max_length} tokens, FLOPS weights "
        f"{args.splade_flops[0]:g} (queries) / {args.splade_flops[1]:g} (documents)"
        f"{f', on its own seeded sample of {args.splade_train_queries} queries ({len(bench.splade_qrels)} judgments)' if args.splade_train_queries else ''}"
        f"{'; the distilled row (splade-kd): MarginMSE to the cross-encoder below' if 'splade-kd' in args.systems else ''}. "
        "Holm-corrected paired t-tests against BM25.",
        *(["", f"Re-ranked rows: each system's top {args.rerank_depth} re-scored by the cross-encoder `{args.cross_encoder}` "
           f"({args.rerank_max_length}-token pairs); R@100 of a re-ranked row is its first stage's."]
          if args.cross_encoder else []),
        "",
        experiment_markdown(table),
        "",
        "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in bench.timings.items()),
        "",
        *(["doc2query's expansions of the first documents:", "", *[f"- {d} ({t}...): {q}" for d, t, q in bench.examples],
           ""] if bench.examples else []),
        *machine_section(["torch", "transformers"]),
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
