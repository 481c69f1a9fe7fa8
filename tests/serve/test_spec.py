from __future__ import annotations

import pytest

from rankstack.serve import SpecError, load_spec
from tests.rerank.conftest import toy_queries
from tests.serve.conftest import write_spec

FULL = """
title = "Toy"

[retrievers.bm25]
index = "toy"
k = 8

[retrievers.flat]
index = "toy-nostore"
k1 = 1.2
b = 0.75
k = 8

[fusion]
method = "combsum"
norm = "zscore"
k = 6

[[rerankers]]
model = "mono"
depth = 4
name = "mono"
"""


def test_a_bare_index_serves_bm25_with_its_documents(served):
    pipeline = load_spec(served / "toy")
    assert [name for name, _ in pipeline.retrievers] == ["toy"] and pipeline.docs is not None
    queries = toy_queries()
    ranking, timings = pipeline.run(queries, 3)
    assert ranking == pipeline.stage(queries).cutoff(3) and set(timings) == {"toy"}
    assert pipeline.docs["d0"].title == "cat story"


def test_steps_run_the_same_pipeline_as_the_composed_stage(served):
    pipeline = load_spec(write_spec(served, FULL))
    stage = pipeline.stage
    assert "Fuse(" in repr(stage) and "% 6" in repr(stage) and "% 4" in repr(stage)
    queries = toy_queries()
    ranking, timings = pipeline.run(queries, 4)
    assert list(timings) == ["bm25", "flat", "fusion", "mono"]
    want = stage(queries)
    assert ranking.docid.tolist() == want.docid.tolist() and ranking.score.tolist() == pytest.approx(want.score.tolist())
    assert pipeline.title == "Toy" and pipeline.depth == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[retrievers.a]\nindex = 'toy'\nkk = 3\n", r"spec.toml line 3: retriever 'a' \(bm25 index\) has no option 'kk'; it takes index, k, k1"),
        ("[retriever.a]\nindex = 'toy'\n", r"line 1: unknown section or key 'retriever'"),
        ("title = 'x'\n", "no retrievers"),
        ("[retrievers.a]\nindex = 'nowhere'\n", r"line 2: retriever 'a': cannot open .*nowhere"),
        ("[retrievers.a]\nindex = 'toy'\n[fusion]\nmethod = 'borda'\n", "unknown fusion method 'borda'; use one of rrf"),
        ("[retrievers.a]\nindex = 'toy'\n[limits]\nmax_k = 0\n", r"line 4: \[limits\] max_k must be a positive integer"),
        ("[retrievers.a]\nindex = 'toy-nostore'\n[[rerankers]]\nmodel = 'mono'\n",
         "needs document texts: docs = one of the retrievers with a document store \\(none has one"),
        ("[retrievers.a]\nindex = 'toy'\n[[rerankers]]\nmodel = 'mono'\ndepth = -1\n", "line 5: re-ranker #1: depth must be"),
        ("[retrievers.a\nindex = 'toy'\n", "not valid TOML"),
        ("[retrievers.a]\nindex = 'toy'\n[[rerankers]]\nmodel = 'mono'\nfamily = 'fancy'\n",
         r"line 4: re-ranker #1: cannot load 'mono': family must be one of monoBERT, duoBERT"),
    ],
)
def test_bad_specs_name_the_file_the_line_and_the_fix(served, text, message):
    with pytest.raises(SpecError, match=message):
        load_spec(write_spec(served, text))


def test_a_missing_spec_and_a_binary_file_are_refused(served):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(served / "absent.toml")
    (served / "binary.toml").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(served / "binary.toml")
