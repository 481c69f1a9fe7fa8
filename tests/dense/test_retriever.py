from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import rankstack
from rankstack.cli import app
from rankstack.dense import BiEncoder, DenseRetriever, build_dense_index
from rankstack.errors import RankstackError
from rankstack.index import build_inverted_index
from rankstack.types import Corpus, Document, Queries
from tests.dense.conftest import make_tiny_model

DOCS = [
    Document("d1", "Vitamin D supplements reduce fractures in elderly patients.", "Vitamin D"),
    Document("d2", "Deep learning models for protein structure prediction."),
    Document("d3", "The effect of exercise on bone density."),
    Document("d4", "Neural ranking models for information retrieval.", "Ranking"),
    Document("d5", "Coffee consumption and the risk of heart disease."),
    Document("d6", "Sleep deprivation affects memory consolidation."),
]
QUERIES = Queries(["q1", "q2", "q3"], ["bone fractures vitamin", "neural retrieval", "coffee heart"])


@pytest.fixture()
def dense_index(tmp_path, tiny_model):
    return build_dense_index(Corpus.from_documents(DOCS), tiny_model, tmp_path / "dense", show_progress=False)


def test_dense_retriever_equals_brute_force(dense_index, tiny_model):
    encoder = BiEncoder(tiny_model)
    docs = encoder.encode_docs(DOCS)
    queries = encoder.encode_queries(QUERIES.text.tolist())
    run = dense_index.dense(k=4)(QUERIES)
    assert len(run) == 12
    for row, qid in enumerate(QUERIES.qid.tolist()):
        scores = docs @ queries[row]
        want = [DOCS[i].docid for i in np.argsort(-scores, kind="stable")[:4]]
        got = run.docid[run.qid == qid].tolist()
        assert got == want
        np.testing.assert_allclose(run.score[run.qid == qid], np.sort(scores)[::-1][:4], rtol=1e-5)
        assert run.rank[run.qid == qid].tolist() == [1, 2, 3, 4]


def test_model_defaults_to_the_manifest_and_others_are_refused(dense_index, tiny_model, tiny_model_b):
    assert dense_index.model["model"] == str(tiny_model)
    assert isinstance(rankstack.open(dense_index.path).dense(), DenseRetriever)
    with pytest.raises(RankstackError, match="allow_other_model=True"):
        DenseRetriever(dense_index, tiny_model_b)
    with pytest.warns(UserWarning, match="fingerprint"):
        DenseRetriever(dense_index, tiny_model_b, allow_other_model=True)


def test_a_retrained_model_in_the_same_place_is_noticed(tmp_path, tiny_model):
    """The manifest keeps a fingerprint of the weights, not just the path."""
    path = shutil.copytree(tiny_model, tmp_path / "model")
    index = build_dense_index(Corpus.from_documents(DOCS), path, tmp_path / "idx", show_progress=False)
    make_tiny_model(path, seed=42)  # overwritten in place, same path
    with pytest.raises(RankstackError, match="fingerprint"):
        index.dense()


def test_cutoff_is_pushed_into_the_retriever(dense_index):
    retriever = dense_index.dense(k=100)
    pipeline = retriever % 2
    compiled = pipeline.compile()
    assert isinstance(compiled, DenseRetriever) and compiled.k == 2
    assert compiled(QUERIES).docid.tolist() == pipeline(QUERIES).docid.tolist()


def test_hybrid_with_bm25_through_the_operators(tmp_path, dense_index):
    bm25 = build_inverted_index(Corpus.from_documents(DOCS), tmp_path / "bm25", show_progress=False).bm25(k=6)
    dense = dense_index.dense(k=6)
    fused = (bm25 | dense)(QUERIES)
    assert set(fused.qid.tolist()) == set(QUERIES.qid.tolist())
    assert fused.docid[fused.qid == "q2"][0] == "d4"  # both agree enough for the obvious match
    summed = (bm25 + dense)(QUERIES)
    assert len(summed) >= len(bm25(QUERIES))


def test_hnsw_index_through_the_stage(tmp_path, tiny_model):
    pytest.importorskip("faiss")
    index = build_dense_index(Corpus.from_documents(DOCS), tiny_model, tmp_path / "h", ann="hnsw", show_progress=False)
    approx = index.dense(k=3)(QUERIES)
    exact = index.dense(k=3, exact=True)(QUERIES)
    assert approx.docid.tolist() == exact.docid.tolist()  # six documents: HNSW finds them all


def test_cli_index_and_search_dense(tmp_path, tiny_model):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(f'{{"_id": "{d.docid}", "title": "{d.title or ""}", "text": "{d.text}"}}' for d in DOCS),
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(app, ["index", str(corpus), "-i", str(tmp_path / "idx"), "--dense", str(tiny_model)])
    assert result.exit_code == 0, result.output
    assert "encoded 6 documents" in result.output
    result = runner.invoke(app, ["search", str(tmp_path / "idx"), "--query", "neural retrieval", "-k", "2"])
    assert result.exit_code == 0, result.output
    hits = [line.split() for line in result.output.splitlines() if line.strip()[:1].isdigit()]
    assert [h[0] for h in hits] == ["1", "2"]
    result = runner.invoke(app, ["search", str(tmp_path / "idx"), "--query", "x", "--rm3"])
    assert result.exit_code != 0 and "does not apply to a dense index" in result.output


def test_cli_export_onnx_then_index_with_it(tmp_path, tiny_model):
    pytest.importorskip("onnxruntime")
    runner = CliRunner()
    result = runner.invoke(app, ["export-onnx", str(tiny_model), "--out", str(tmp_path / "onnx-model")])
    assert result.exit_code == 0, result.output
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("\n".join(f"{d.docid}\t{d.text}" for d in DOCS), encoding="utf-8")
    args = ["index", str(corpus), "-i", str(tmp_path / "idx"), "--dense", str(tmp_path / "onnx-model")]
    result = runner.invoke(app, [*args, "--backend", "onnx"])
    assert result.exit_code == 0, result.output
    # the index remembers the weights the ONNX export came from: the PyTorch model is accepted for queries
    DenseRetriever(tmp_path / "idx", tiny_model)


def test_cli_experiment_with_a_dense_model(tmp_path, tiny_model):
    from tests.test_cli import write_beir  # the same tiny BEIR folder as the CLI tests

    folder = write_beir(tmp_path / "beir")
    args = [
        "experiment",
        str(folder),
        "--index-dir",
        str(tmp_path / "idx"),
        "-m",
        "nDCG@10",
        "--dense",
        str(tiny_model),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for system in ("Dense", "RRF(BM25, Dense)", "BM25 + Dense"):
        assert system in result.output
    assert (tmp_path / "idx-dense" / "manifest.json").exists()
    again = CliRunner().invoke(app, args)  # the dense index is reused, not re-encoded
    assert again.exit_code == 0 and "using dense index" in again.output
