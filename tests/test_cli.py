"""The command line: index, search, rerank, eval and experiment on a tiny BEIR folder, and their error messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.eval import evaluate
from rankstack.types import Document, Qrels, Ranking

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


def test_experiment_plots(beir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    result = invoke("experiment", beir, "--index-dir", tmp_path / "idx", "-m", "P@1", "--plot", plots)
    assert result.exit_code == 0, result.output
    pngs = sorted(plots.glob("*.png"))
    assert len(pngs) == 4  # three systems against BM25, one recall-at-depth chart
    assert (plots / "recall-at-depth.png").exists() and (plots / "delta-P@1-BM25_+_RM3.png").exists()
    assert "4 plots written" in result.stdout
    for png in pngs:
        assert str(png) in result.stdout


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


@pytest.mark.parametrize("command", ["index", "search", "rerank", "eval", "experiment", "train", "export-onnx"])
def test_help_teaches_with_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and "rankstack" in result.output


# ------------------------------------------------------------------------------------------- rerank
# a first-stage run written by hand (no BM25 to compile): q3 has four documents, so -k 3 drops one
RUN = {"q1": ["d2", "d1", "d5"], "q2": ["d4", "d1", "d3"], "q3": ["d5", "d2", "d3", "d1"]}


def write_run(path: Path, run: dict[str, list[str]] = RUN) -> Path:
    path.write_text(
        "".join(f"{q} Q0 {d} {r} {10 - r}.0 first\n" for q, docs in run.items() for r, d in enumerate(docs, 1))
    )
    return path


def cross_encoder_dir(path: Path) -> Path:
    """A tiny random cross-encoder directory (tests/rerank's, whose scores spread)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.rerank.test_cross import make_wide_cross_encoder

    return make_wide_cross_encoder(path)


@pytest.fixture
def rerank_setup(beir: Path, tmp_path: Path) -> dict[str, Path]:
    assert invoke("index", beir, "--index-dir", tmp_path / "idx").exit_code == 0
    return {
        "idx": tmp_path / "idx",
        "run": write_run(tmp_path / "first.trec"),
        "model": cross_encoder_dir(tmp_path / "ce"),
    }


def python_api_rerank(setup: dict[str, Path], depth: int, **options) -> Ranking:
    import rankstack
    from rankstack.rerank import CrossEncoder
    from rankstack.types import Queries

    ranking = Ranking.read_trec(setup["run"], queries=Queries.from_dict(QUERIES)).cutoff(depth)
    return CrossEncoder(setup["model"], docs=rankstack.open(setup["idx"]), **options)(ranking)


def assert_same_run(written: Ranking, expected: Ranking) -> None:
    assert written.qid.tolist() == expected.qid.tolist()
    assert written.docid.tolist() == expected.docid.tolist()
    assert written.rank.tolist() == expected.rank.tolist()
    assert written.score == pytest.approx(expected.score, abs=2e-6)  # written with 6 decimals


def test_rerank_writes_the_run_the_python_api_makes(rerank_setup: dict[str, Path], beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "ce.trec"
    s = rerank_setup
    result = invoke("rerank", s["run"], "--model", s["model"], "--index", s["idx"], "-q", beir, "-o", out, "-k", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("re-ranked 9 documents of 3 queries") and str(out) in result.stdout
    lines = [line.split() for line in out.read_text().splitlines()]
    assert all(len(f) == 6 and f[1] == "Q0" and f[5] == "rankstack" for f in lines)
    written = Ranking.read_trec(out)
    # the first stage's top 3 documents of each query, no others
    assert {(q, d) for q, d in zip(written.qid.tolist(), written.docid.tolist(), strict=True)} == {
        (q, d) for q, docs in RUN.items() for d in docs[:3]
    }
    expected = python_api_rerank(s, 3)
    assert_same_run(written, expected)
    assert written.docid.tolist() != Ranking.read_trec(s["run"]).cutoff(3).docid.tolist()  # the model re-ordered


def test_rerank_prints_the_run_without_output(rerank_setup: dict[str, Path], tmp_path: Path) -> None:
    queries = tmp_path / "queries.tsv"
    queries.write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    s = rerank_setup
    result = invoke("rerank", s["run"], "--model", s["model"], "--index", s["idx"], "-q", queries, "--tag", "ce")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 10 and all(len(line.split()) == 6 and line.endswith(" ce") for line in lines)
    assert "re-ranked 10 documents" in result.stderr
    printed = tmp_path / "printed.trec"
    printed.write_text(result.stdout)
    assert_same_run(Ranking.read_trec(printed), python_api_rerank(s, 100))


def test_rerank_with_onnx_export_from_the_cli(rerank_setup: dict[str, Path], beir: Path, tmp_path: Path) -> None:
    """`rankstack export-onnx` sees the classification head and exports it; fp32 ONNX re-ranks as PyTorch does."""
    pytest.importorskip("onnxruntime")
    s = rerank_setup
    onnx_dir = tmp_path / "ce-onnx"
    result = invoke("export-onnx", s["model"], "--out", onnx_dir, "--no-quantize")
    assert result.exit_code == 0, result.output
    out = tmp_path / "onnx.trec"
    args = ["rerank", s["run"], "--model", onnx_dir, "--index", s["idx"], "-q", beir, "-o", out, "--backend", "onnx"]
    result = invoke(*args)  # int8 by default, and only fp32 was exported
    assert result.exit_code == 2 and "quantized=False" in result.output
    result = invoke(*args, "--fp32", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    written = Ranking.read_trec(out)
    expected = python_api_rerank(s, 100)
    assert written.docid.tolist() == expected.docid.tolist()
    assert written.score == pytest.approx(expected.score, abs=1e-5)


def test_rerank_missing_documents_keep_or_error(rerank_setup: dict[str, Path], beir: Path, tmp_path: Path) -> None:
    s = rerank_setup
    run = write_run(tmp_path / "gaps.trec", {"q1": ["d1", "nope", "d2"]})
    args = ["rerank", run, "--model", s["model"], "--index", s["idx"], "-q", beir]
    result = invoke(*args)
    assert result.exit_code == 2 and "'nope'" in result.output and "--missing keep" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = invoke(*args, "--missing", "keep")
    assert result.exit_code == 0, result.output
    assert [line.split()[2] for line in result.stdout.strip().splitlines()][-1] == "nope"


def test_rerank_reads_queries_of_the_collection_the_index_was_built_from(tmp_path: Path, monkeypatch) -> None:
    write_beir(tmp_path / "data" / "scifact")  # a registered name, found through RANKSTACK_DATA: no download
    monkeypatch.setenv("RANKSTACK_DATA", str(tmp_path / "data"))
    assert invoke("index", "scifact", "--index-dir", tmp_path / "idx").exit_code == 0
    setup = {
        "idx": tmp_path / "idx",
        "run": write_run(tmp_path / "first.trec"),
        "model": cross_encoder_dir(tmp_path / "ce"),
    }
    out = tmp_path / "ce.trec"
    result = invoke("rerank", setup["run"], "--model", setup["model"], "--index", setup["idx"], "-o", out)
    assert result.exit_code == 0, result.output
    assert_same_run(Ranking.read_trec(out), python_api_rerank(setup, 100))
    result = invoke("rerank", setup["run"], "--model", setup["model"], "--index", setup["idx"], "--split", "dev")
    assert result.exit_code == 2 and "dev" in result.output


def _one_line_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("error: ")
    for word in words:
        assert str(word) in result.output, (word, result.output)


def test_rerank_missing_inputs_are_one_line_errors(rerank_setup: dict[str, Path], beir: Path, tmp_path: Path) -> None:
    s = rerank_setup
    model, idx, run = s["model"], s["idx"], s["run"]
    nothing = tmp_path / "nothing"
    _one_line_error(invoke("rerank", nothing / "run.trec", "--model", model, "--index", idx, "-q", beir), "run.trec")
    _one_line_error(invoke("rerank", run, "--model", model, "--index", nothing, "-q", beir), nothing, "rankstack index")
    _one_line_error(invoke("rerank", run, "--model", model, "--index", idx, "-q", nothing / "q.tsv"), "q.tsv")
    _one_line_error(invoke("rerank", run, "--model", nothing, "--index", idx, "-q", beir), nothing)
    # the index records the folder's name, not a known collection: the queries must be given
    _one_line_error(invoke("rerank", run, "--model", model, "--index", idx), "--queries")
    few = tmp_path / "few.tsv"
    few.write_text("q1\tcat on a mat\n")
    result = invoke("rerank", run, "--model", model, "--index", idx, "-q", few)
    _one_line_error(result, "2 queries", "q2", "few.tsv", "--queries")
    assert "split" not in result.output.split(";")[0]  # a queries file has no splits
    _one_line_error(
        invoke("rerank", run, "--model", model, "--index", idx, "-q", beir, "--backend", "tpu"), "--backend"
    )
    _one_line_error(invoke("rerank", run, "--model", model, "--index", idx, "-q", beir, "-k", "0"), "--depth")


def test_experiment_with_rerank_adds_the_reranked_system(beir: Path, tmp_path: Path) -> None:
    import rankstack
    from rankstack.data import load_collection
    from rankstack.rerank import CrossEncoder

    model = cross_encoder_dir(tmp_path / "my-ce")
    runs = tmp_path / "runs"
    args = ["experiment", beir, "--index-dir", tmp_path / "idx", "-m", "nDCG@10", "-m", "P@1", "--runs-dir", runs]
    result = invoke(*args, "--rerank", model, "--rerank-depth", "3")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("BM25 >> my-ce"))
    assert len(row.split()) >= 5  # name, then the metrics
    assert "5 systems run and evaluated" in result.stdout
    written = Ranking.read_trec(runs / "BM25_>>_my-ce.trec")
    idx = rankstack.open(tmp_path / "idx")
    queries = load_collection(beir).queries_for("test")
    expected = (idx.bm25() % 3 >> CrossEncoder(model, docs=idx))(queries)
    assert_same_run(written, expected)
    top = idx.bm25()(queries).cutoff(3)
    pairs = {(q, d) for q, d in zip(top.qid.tolist(), top.docid.tolist(), strict=True)}
    assert {(q, d) for q, d in zip(written.qid.tolist(), written.docid.tolist(), strict=True)} == pairs
    result = invoke(*args, "--rerank", model, "--rerank-depth", "0")
    _one_line_error(result, "--rerank-depth")


@pytest.mark.collection
def test_experiment_on_scifact_matches_pyserini(tmp_path: Path) -> None:
    result = invoke("experiment", "scifact", "--index-dir", tmp_path / "scifact", "-m", "nDCG@10")
    assert result.exit_code == 0, result.output
    bm25_row = next(line for line in result.output.splitlines() if line.strip().startswith("BM25 "))
    assert abs(float(bm25_row.split()[1]) - 0.6789) <= 0.005


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The installed entry point (``main``), which turns file errors into one line; CliRunner skips it."""
    from rankstack.cli import main

    monkeypatch.setattr("sys.argv", ["rankstack", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ("eval", "{tmp}/missing.trec", "--qrels", "{beir}"),
        ("eval", "{tmp}", "--qrels", "{beir}"),  # a directory where a file belongs
        ("search", "{tmp}/idx", "--queries", "{tmp}/missing.tsv"),
        ("index", "{tmp}/missing.jsonl", "--index-dir", "{tmp}/other"),
    ],
)
def test_missing_or_wrong_files_are_one_line_naming_them(beir: Path, tmp_path: Path, monkeypatch, capsys, args) -> None:
    assert invoke("index", str(beir), "--index-dir", str(tmp_path / "idx")).exit_code == 0
    args = tuple(a.format(tmp=tmp_path, beir=beir) for a in args)
    code, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    named = next(a for a in args if a.startswith(str(tmp_path)) and "idx" not in a)
    assert named.rstrip("/") in lines[0] or Path(named).name in lines[0], lines[0]


@pytest.mark.parametrize("k", ["0", "-3"])
def test_a_cutoff_below_one_is_refused_with_the_valid_range(beir: Path, tmp_path: Path, k: str) -> None:
    assert invoke("index", str(beir), "--index-dir", str(tmp_path / "idx")).exit_code == 0
    result = invoke("search", str(tmp_path / "idx"), "--query", "words", "-k", k)
    _one_line_error(result, "-k must be at least 1", k)


def test_index_clean_removes_what_killed_builds_and_updates_left(beir: Path, tmp_path: Path) -> None:
    import rankstack

    idx = tmp_path / "idx"
    assert invoke("index", beir, "--index-dir", idx).exit_code == 0
    dead_build = tmp_path / ".idx.tmp-999999999-deadbeef"  # a build killed half-way (its process is gone)
    dead_build.mkdir()
    live_build = tmp_path / f".idx.tmp-{os.getpid()}-cafecafe"  # a build still running: left alone
    live_build.mkdir()
    with rankstack.open(idx) as reader:
        reader.add([Document("new", "fresh words")]).merge().close()
        orphan = idx / "seg-000099"  # an update killed after writing its segment, before committing it
        orphan.mkdir()
        (orphan / "terms.txt").write_text("x")
        old = {p.name for p in idx.iterdir() if p.name.startswith("seg-")}
        result = invoke("index", "--clean", "--index-dir", idx)
        assert result.exit_code == 0, result.output
        assert "removed .idx.tmp-999999999-deadbeef" in result.output
        assert not dead_build.exists() and live_build.exists() and not orphan.exists()
        assert "seg-000001" in {p.name for p in idx.iterdir()}  # the reader's generation is still pinned
        assert reader.docs["d1"].text == DOCS["d1"]
    result = invoke("index", "--clean", "--index-dir", idx)  # the reader is gone: its generation goes
    assert result.exit_code == 0, result.output
    current = {s["name"] for s in rankstack.open(idx).manifest["segments"]}
    assert {p.name for p in idx.iterdir() if p.name.startswith("seg-")} == current != old
    assert "nothing to clean" in invoke("index", "--clean", "--index-dir", idx).output
    _one_line_error(invoke("index", "--clean", "--index-dir", tmp_path / "nope"), "nope")
    _one_line_error(invoke("index", "--index-dir", tmp_path / "idx2"), "corpus")


def test_index_threads_and_no_store_docs(beir: Path, tmp_path: Path) -> None:
    import rankstack

    one, two = tmp_path / "one", tmp_path / "two"
    assert invoke("index", beir, "--index-dir", one).exit_code == 0
    result = invoke("index", beir, "--index-dir", two, "--threads", "2", "--no-store-docs")
    assert result.exit_code == 0, result.output
    a, b = rankstack.open(one), rankstack.open(two)
    files = lambda idx: {k: v for k, v in idx.manifest["segments"][0]["files"].items() if not k.startswith("docs")}  # noqa: E731
    assert files(a) == files(b)  # two analysis processes build the same postings, byte for byte
    assert b.manifest["store_docs"] is False and "docs.bin" not in b.manifest["segments"][0]["files"]
    assert invoke("index", beir, "--index-dir", tmp_path / "x", "--threads", "-1").exit_code == 2


def test_rerank_steers_a_cascade_and_refuses_keep_for_other_models(rerank_setup: dict[str, Path], beir: Path,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    import rankstack
    from rankstack.rerank import CascadeCrossEncoder
    from rankstack.types import Queries

    s = rerank_setup
    cascade_dir = CascadeCrossEncoder(s["model"], exits=[1, 2]).save(tmp_path / "cascade")
    out = tmp_path / "cascade.trec"
    result = invoke("rerank", s["run"], "--model", cascade_dir, "--index", s["idx"], "-q", beir, "-o", out,
                    "--keep", "0.5", "--protect", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    ranking = Ranking.read_trec(s["run"], queries=Queries.from_dict(QUERIES)).cutoff(100)
    expected = CascadeCrossEncoder(cascade_dir, docs=rankstack.open(s["idx"]), keep=0.5, protect=1)(ranking)
    assert_same_run(Ranking.read_trec(out), expected)
    result = invoke("rerank", s["run"], "--model", s["model"], "--index", s["idx"], "-q", beir, "--protect", "3")
    assert result.exit_code == 2 and "is not a cascade" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_warnings_on_the_command_line_are_one_line(beir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The installed entry point in a process of its own (pytest would record the warning instead of printing it)."""
    import subprocess
    import sys
    import warnings

    assert invoke("index", beir, "--index-dir", tmp_path / "idx").exit_code == 0
    done = subprocess.run([sys.executable, "-m", "rankstack.cli", "search", str(tmp_path / "idx"), "--query", "the of"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: 1 queries have no terms after analysis" in done.stderr
    assert "UserWarning" not in done.stderr and ".py:" not in done.stderr  # no source location, no code line
    before = warnings.formatwarning
    run_main(monkeypatch, capsys, "search", str(tmp_path / "idx"), "--query", "cat")
    assert warnings.formatwarning is before  # in-process callers keep their own format
