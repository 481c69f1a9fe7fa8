"""Cascade Transformer drop rules at depth 100 (SciFact): how much of the full model's nDCG@10 each rule keeps
for how much less layer work.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_cascade_rules.py --workdir W \\
        [--model DIR] [--depth 100] [--max-length 128] [--epochs 2]

A MiniLM cascade (exits after layers 2, 4, 6) is fine-tuned here on SciFact's training judgments (LCE over
``--negatives`` BM25 negatives; skipped with ``--model``, or when ``W/cascade`` holds the finished run). Every
pair of BM25's top ``--depth`` for the 300 test queries is then scored once at *every* exit (kept in
``W/exit-logits-*.npy``); each drop rule is simulated over those logits, which is exactly what
``CascadeCrossEncoder`` computes (``tests/rerank/test_cascade.py`` checks the simulation against the model, and
``--check`` re-ranks a few queries with the model itself and compares). Rules:

- ``keep``: at each intermediate exit the ``keep`` fraction of the query's candidates with the best exit scores
  (rounded up) goes on;
- ``protect``: besides those, the first stage's top ``protect`` always go on (so the full model always sees
  them): an early exit that misjudges one of BM25's best cannot drop it.

Layer work = transformer layers run, summed over the pairs, against every pair through all 6 layers (the exits'
heads are one linear layer each: negligible). Writes ``benchmarks/results/cascade-rules.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bm25_index, experiment_markdown, git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
KEEPS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
PROTECTS = (0, 5, 10, 20)
SHALLOW = (5, 10, 20, 30, 50)


def simulate(logits: np.ndarray, first_rank: np.ndarray, keep: float, protect: int) -> tuple[np.ndarray, np.ndarray]:
    """One query's cascade over precomputed exit logits ``[n, exits]`` (candidates in any order; ``first_rank``:
    each one's rank in the first stage, from 1): the scores ``CascadeCrossEncoder`` gives them and how many
    reached each exit."""
    n, exits = logits.shape
    scores = np.empty(n)
    reached = np.zeros(exits, dtype=np.int64)
    alive = np.arange(n)
    for stage in range(exits):
        reached[stage] = len(alive)
        here = logits[alive, stage]
        scores[alive] = stage + 1.0 / (1.0 + np.exp(-here))
        if stage == exits - 1:
            break
        order = np.argsort(-here, kind="stable")
        survives = np.zeros(len(alive), dtype=bool)
        survives[order[: math.ceil(keep * len(alive))]] = True
        survives |= first_rank[alive] <= protect
        alive = alive[survives]
    return scores, reached


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-cascade")
    parser.add_argument("--model", type=Path, default=None, help="a trained cascade directory (skips training)")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check", type=int, default=10, help="queries re-ranked by the model itself per rule checked")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "cascade-rules.md")
    args = parser.parse_args(argv)

    import torch

    from rankstack.data import load_collection
    from rankstack.eval import Experiment, evaluate
    from rankstack.models.model_dir import packaged_path
    from rankstack.rerank import CascadeCrossEncoder
    from rankstack.rerank.texts import DocumentTexts
    from rankstack.train import RerankConfig, train_reranker
    from rankstack.types import Ranking

    warnings.filterwarnings("ignore", message=r".*(max_length|no sequence-classification head)")
    torch.set_num_threads(args.threads)
    started = time.time()
    col = load_collection(DATA / "scifact")
    args.workdir.mkdir(parents=True, exist_ok=True)
    index = bm25_index(col.corpus, args.workdir / "bm25")
    sizes = {"max_length": args.max_length, "query_max_length": 32}
    trained_s = 0.0
    model = args.model
    if model is None:
        model = args.workdir / "cascade" / "final"
        if not model.exists():
            config = RerankConfig(epochs=args.epochs, num_negatives=args.negatives, max_length=args.max_length,
                                  query_max_length=32, batch_size=8, show_progress=True, save_every=25,
                                  keep_checkpoints=1)  # fmt: skip
            t0 = time.perf_counter()
            model = train_reranker(CascadeCrossEncoder(packaged_path("minilm"), **sizes), col.queries_for("train"),
                                   col.qrels("train"), index, model.parent, config=config, bm25_index=index,
                                   resume=True)  # fmt: skip
            _remember(args.workdir, "train_s", time.perf_counter() - t0)
        trained_s = _recorded(args.workdir, "train_s")
        print(f"cascade trained in {trained_s:.0f}s", flush=True)

    queries, qrels = col.queries_for("test"), col.qrels("test")
    first = index.bm25(k=args.depth)(queries)
    cascade = CascadeCrossEncoder(model, docs=index, keep=1.0, **sizes)
    exits = len(cascade.exits)
    cache = args.workdir / f"exit-logits-{args.depth}-{args.max_length}.npy"
    if cache.exists():
        logits = np.load(cache)
    else:
        t0 = time.perf_counter()
        logits = exit_logits(cascade, first, DocumentTexts(index).texts(first.docid.tolist()))
        np.save(cache, logits)
        _remember(args.workdir, cache.stem, time.perf_counter() - t0)
    score_s = _recorded(args.workdir, cache.stem)
    print(f"exit logits for {len(first)} pairs in {score_s:.0f}s", flush=True)

    full_layers = len(first) * cascade.exits[-1]
    widths = np.diff([0, *cascade.exits])
    runs = {"BM25 (k1=0.9, b=0.4)": first}
    rows: list[list[str]] = []
    base = None
    results = {}
    for keep in (1.0, *KEEPS):
        for protect in (0,) if keep == 1.0 else PROTECTS:
            scores = np.empty(len(first))
            reached = np.zeros(exits, dtype=np.int64)
            for _, span in first.groups():
                s, r = simulate(logits[span], first.rank[span], keep, protect)
                scores[span] = s
                reached += r
            run = Ranking(first.qid, first.docid, scores, queries=queries)
            ndcg = evaluate(run, qrels, ["nDCG@10"])["nDCG@10"]
            base = ndcg if base is None else base
            work = float(reached @ widths) / full_layers
            name = "full model" if keep == 1.0 else f"keep {keep}, protect {protect}"
            results[(keep, protect)] = (ndcg, work, run)
            rows.append([name, "/".join(str(int(c)) for c in reached), f"{work:.3f}", f"{1 / work:.2f}x",
                         f"{ndcg:.4f}", f"{ndcg - base:+.4f}"])  # fmt: skip
            print(rows[-1], flush=True)
    shallow_rows = []
    for top in SHALLOW:  # the plain alternative: the full model over BM25's top N only, the rest in BM25's order
        head = first.rank <= top
        scores = np.where(head, 2.0 + 1.0 / (1.0 + np.exp(-logits[:, -1])), 1.0 / (1.0 + first.rank))
        ndcg = evaluate(Ranking(first.qid, first.docid, scores, queries=queries), qrels, ["nDCG@10"])["nDCG@10"]
        work = float(head.sum()) / len(first)
        shallow_rows.append([f"full model over BM25's top {top} only", f"{int(head.sum())}", f"{work:.3f}",
                             f"{1 / work:.2f}x", f"{ndcg:.4f}", f"{ndcg - base:+.4f}"])  # fmt: skip
        print(shallow_rows[-1], flush=True)
    within = [(w, k, p) for (k, p), (n, w, _) in results.items() if k < 1.0 and n - base >= -0.005]
    best_rule = min(within) if within else None

    check_rows = []
    if args.check:
        part = first.for_qids(queries.qid.tolist()[: args.check])
        full_s = None
        for keep, protect in [(1.0, 0), (0.6, 0), (0.6, 10)] + ([best_rule[1:]] if best_rule else []):
            scorer = CascadeCrossEncoder(model, docs=index, keep=keep, protect=protect, **sizes)
            t0 = time.perf_counter()
            real = scorer(part)
            seconds = time.perf_counter() - t0
            full_s = full_s or seconds
            sim = results[(keep, protect)][2]
            a = real.to_pandas().set_index(["qid", "docid"])["score"]
            b = sim.to_pandas().set_index(["qid", "docid"])["score"].reindex(a.index)
            check_rows.append(["full model" if keep == 1.0 else f"keep {keep}, protect {protect}", f"{len(a)}",
                               f"{np.abs(a - b).max():.2e}", f"{len(a) / seconds:.1f}", f"{full_s / seconds:.2f}x"])  # fmt: skip
            print("check", check_rows[-1], flush=True)

    picked = {"BM25 >> cascade, full model": results[(1.0, 0)][2]}
    for keep, protect in [(0.8, 0), (0.6, 0), (0.8, 10), (0.6, 10)] + ([best_rule[1:]] if best_rule else []):
        picked[f"BM25 >> cascade, keep {keep}, protect {protect}"] = results[(keep, protect)][2]
    runs.update(picked)
    table = Experiment(runs, queries, qrels, ["nDCG@10", "R@10"], baseline=1, correction="holm")
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_cascade_rules.py " + " ".join(sys.argv[1:])
    lines = [
        "# Cascade Transformer drop rules at depth " + str(args.depth) + " (SciFact test)",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"Model: `{model}` (exits after layers {', '.join(map(str, cascade.exits))}; "
        + (f"trained here in {trained_s / 60:.1f} min: all SciFact training judgments, {args.epochs} epochs, LCE over "
           f"{args.negatives} BM25 negatives, batch 8, {args.max_length}-token pairs)" if trained_s > 0 else "given or cached)")
        + f". Every pair of BM25's top {args.depth} for the {len(queries)} test queries scored at every exit once "
        f"({len(first):,} pairs, {score_s / 60:.1f} min); each rule simulated over those logits. Layer work: "
        "layers run over all pairs / (pairs x 6).",
        "",
        markdown_table(["rule", "pairs reaching exits " + "/".join(map(str, cascade.exits)), "layer work",
                        "less work", "nDCG@10", "vs full"], rows),
        "",
        "The plain alternative to a cascade, a shallower re-ranking (work = pairs scored / pairs at depth "
        f"{args.depth}):",
        "",
        markdown_table(["re-ranking", "pairs scored", "layer work", "less work", "nDCG@10", "vs full"], shallow_rows),
        "",
        "Cheapest rule within 0.005 nDCG@10 of the full model: "
        + (f"keep {best_rule[1]}, protect {best_rule[2]} ({1 / best_rule[0]:.2f}x less layer work)." if best_rule else "none."),
        "",
    ]
    if check_rows:
        lines += ["The model itself (`CascadeCrossEncoder(keep=, protect=)`) on the first "
                  f"{args.check} test queries, one after another: largest score difference from the simulation, and "
                  f"wall-clock pairs/s ({args.threads} torch threads; batch {cascade.batch_size})", "",
                  markdown_table(["rule", "pairs", "max abs score difference", "pairs/s", "speed-up vs full"],
                                 check_rows), ""]  # fmt: skip
    lines += ["Against the full cascade (Holm over the rows shown):", "", experiment_markdown(table), "",
              *machine_section(["torch", "transformers"])]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}")


def _remember(workdir: Path, key: str, seconds: float) -> None:
    """Keep how long a step took in ``workdir/timing.json``: a rerun that finds the step's output there reports
    that time, not the cache's."""
    path = workdir / "timing.json"
    path.write_text(json.dumps({**(json.loads(path.read_text()) if path.exists() else {}), key: seconds}, indent=1))


def _recorded(workdir: Path, key: str) -> float:
    path = workdir / "timing.json"
    return float((json.loads(path.read_text()) if path.exists() else {}).get(key, float("nan")))


def exit_logits(cascade, first, texts) -> np.ndarray:
    """Every exit's logit for every (query, document) row of ``first``: ``[rows, exits]``."""
    import torch

    from rankstack.models.batching import longest_first, pad_rows

    qtext = dict(zip(first.queries.qid.tolist(), first.queries.text.tolist(), strict=True))
    queries = [qtext[q] for q in first.qid.tolist()]
    enc = cascade.encode_pairs(queries, [t or "" for t in texts])
    lengths = [len(x) for x in enc["input_ids"]]
    out = np.empty((len(first), len(cascade.exits)), dtype=np.float64)
    done = 0
    with torch.inference_mode():
        for part in longest_first(lengths, 32):
            batch = {k: torch.from_numpy(v) for k, v in pad_rows(part, enc, cascade.tokenizer.pad_token_id).items()}
            out[part] = cascade.exit_logits(batch).double().numpy()
            done += len(part)
            if done // 3200 != (done - len(part)) // 3200:
                print(f"  {done}/{len(first)} pairs", flush=True)
    return out


if __name__ == "__main__":
    main()
