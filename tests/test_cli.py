"""The command line: index, search, eval and experiment on a tiny BEIR folder, and their error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.eval import evaluate
from rankstack.types import Qrels, Ranking

runner = CliRunner()

DOCS = {
    "d1": "The cat sat on the mat with another cat.",
    "d2": "Dogs chase cats around the garden.",
    "d3": "Vitamin D deficiency and bone density in older adults.",
    "d4": "Bone fractures heal faster with vitamin supplements.",
    "d5": "A garden of roses, tulips and other flowers.",
}
QUERIES = {"q1": "cat on a mat", "q2": "vitamin D bone", "q3": "garden flowers"}
QRELS = [("q1", "d1", 1), ("q2", "d3", 2), ("q2", "d4", 1), ("q3", "d5", 1), ("q3", "d2", 0)]


def write_beir(folder: Path) -> Path:
    """A five-document BEIR folder with three judged queries."""
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for docid, text in DOCS.items():
            f.write(json.dumps({"_id": docid, "title": "", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t{r}\n" for q, d, r in QRELS)
    return folder


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny")


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_index_search_eval_round_trip(beir: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    result = invoke("index", beir, "--index-dir", idx)
    assert result.exit_code == 0, result.output
    assert "indexed 5 documents" in result.output
    assert (idx / "manifest.json").exists()

    run_path = tmp_path / "runs" / "bm25.trec"
    result = invoke("search", idx, "--queries", beir, "--output", run_path, "--tag", "mine")
    assert result.exit_code == 0, result.output
    run = Ranking.read_trec(run_path)
    assert set(run.qid.tolist()) == set(QUERIES)
    assert run.for_qids(["q2"]).docid[0] in ("d3", "d4")
    assert run_path.read_text().split("\n")[0].endswith(" mine")

    result = invoke("eval", run_path, "--qrels", beir / "qrels" / "test.tsv", "-m", "nDCG@10", "-m", "AP")
    assert result.exit_code == 0, result.output
    expected = evaluate(run, Qrels.read(beir / "qrels" / "test.tsv"), ["nDCG@10", "AP"])
    printed = dict(line.split() for line in result.output.strip().splitlines())
    assert float(printed["nDCG@10"]) == pytest.approx(expected["nDCG@10"], abs=5e-5)
    assert float(printed["AP"]) == pytest.approx(expected["AP"], abs=5e-5)

    result = invoke("eval", run_path, "--qrels", beir, "-m", "P@1", "--per-query")
    assert result.exit_code == 0, result.output
    assert {line.split("\t")[1] for line in result.output.strip().splitlines()} == set(QUERIES)


def test_search_single_query_prints_hits_with_text(beir: Path, tmp_path: Path) -> None:
    invoke("index", beir, "--index-dir", tmp_path / "idx")
    result = invoke("search", tmp_path / "idx", "--query", "vitamin bone", "-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    rank, _score, docid = lines[0].split()[:3]
    assert rank == "1" and docid in ("d3", "d4")
    assert DOCS[docid][:40] in lines[0]


def test_search_stdout_is_trec_format(beir: Path, tmp_path: Path) -> None:
    invoke("index", beir, "--index-dir", tmp_path / "idx")
    result = runner.invoke(app, ["search", str(tmp_path / "idx"), "--queries", str(beir), "-k", "3"])
    assert result.exit_code == 0, result.output
    trec = [line.split() for line in result.stdout.strip().splitlines() if " Q0 " in line]
    assert trec and all(len(fields) == 6 and fields[1] == "Q0" for fields in trec)


def test_experiment_prints_all_systems(beir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = invoke("experiment", beir, "--index-dir", tmp_path / "idx", "-m", "nDCG@10", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    for system in ("BM25", "BM25 k1=1.2 b=0.75", "BM25 + RM3", "RRF(BM25, BM25 + RM3)"):
        assert system in result.output
    assert len(list(runs.glob("*.trec"))) == 4
    # the second time the index is reused, not rebuilt
    result = invoke("experiment", beir, "--index-dir", tmp_path / "idx", "-m", "nDCG@10", "--full")
    assert result.exit_code == 0, result.output
    assert "using index" in result.output and "nDCG@10 p-value (holm)" in result.output


def test_index_refuses_to_overwrite_without_flag(beir: Path, tmp_path: Path) -> None:
    assert invoke("index", beir, "--index-dir", tmp_path / "idx").exit_code == 0
    result = invoke("index", beir, "--index-dir", tmp_path / "idx")
    assert result.exit_code == 2
    assert "overwrite" in result.output
    assert invoke("index", beir, "--index-dir", tmp_path / "idx", "--overwrite").exit_code == 0


def test_malformed_corpus_line_is_named(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": oops}\n')
    result = invoke("index", corpus, "--index-dir", tmp_path / "idx")
    assert result.exit_code == 2
    assert "bad.jsonl" in result.output and ":2" in result.output
    assert not (tmp_path / "idx").exists()


def test_unknown_collection_lists_known_ones(tmp_path: Path) -> None:
    result = invoke("index", "no-such-collection", "--index-dir", tmp_path / "idx")
    assert result.exit_code == 2
    assert "scifact" in result.output


def test_search_needs_exactly_one_query_source(beir: Path, tmp_path: Path) -> None:
    invoke("index", beir, "--index-dir", tmp_path / "idx")
    assert "exactly one" in invoke("search", tmp_path / "idx").output
    assert invoke("search", tmp_path / "idx", "--query", "x", "--queries", beir).exit_code == 2


def test_search_on_missing_index_says_how_to_build(tmp_path: Path) -> None:
    result = invoke("search", tmp_path / "nothing", "--query", "x")
    assert result.exit_code == 2
    assert "rankstack index" in result.output or "manifest" in result.output


@pytest.mark.parametrize("command", ["index", "search", "eval", "experiment", "train", "export-onnx"])
def test_help_teaches_with_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and "rankstack" in result.output


@pytest.mark.collection
def test_experiment_on_scifact_matches_pyserini(tmp_path: Path) -> None:
    result = invoke("experiment", "scifact", "--index-dir", tmp_path / "scifact", "-m", "nDCG@10")
    assert result.exit_code == 0, result.output
    bm25_row = next(line for line in result.output.splitlines() if line.strip().startswith("BM25 "))
    assert abs(float(bm25_row.split()[1]) - 0.6789) <= 0.005
