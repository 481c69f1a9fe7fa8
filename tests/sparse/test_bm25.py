import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankstack import Document, Queries
from rankstack.index import build_inverted_index
from rankstack.sparse import BM25, RM3
from tests.helpers import brute_force_bm25, random_docs, random_queries


@pytest.fixture(scope="module")
def corpus():
    return random_docs(300, seed=7)


@pytest.fixture(scope="module")
def index(corpus, tmp_path_factory):
    return build_inverted_index(corpus, tmp_path_factory.mktemp("bm25") / "idx", show_progress=False)


@pytest.mark.parametrize("algorithm", ["maxscore", "exhaustive"])
@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (1.2, 0.75), (0.0, 0.0), (2.0, 1.0)])
def test_scores_equal_a_brute_force_lucene_bm25(corpus, index, algorithm, k1, b):
    queries = random_queries(15)
    run = index.bm25(k1=k1, b=b, k=1000, algorithm=algorithm)(Queries([str(i) for i in range(15)], queries))
    for i, q in enumerate(queries):
        expected = brute_force_bm25(corpus, q, k1, b)
        got = dict(zip(run.for_qids([str(i)]).docid.tolist(), run.for_qids([str(i)]).score.tolist(), strict=True))
        assert got.keys() == expected.keys()
        for docid, score in expected.items():
            assert got[docid] == pytest.approx(score, rel=1e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n_docs=st.integers(1, 150),
    k=st.integers(1, 40),
    queries=st.lists(st.text(alphabet="w0123456789 ", min_size=0, max_size=25), min_size=1, max_size=6),
)
def test_maxscore_returns_exactly_the_exhaustive_top_k(tmp_path_factory, seed, n_docs, k, queries):
    docs = random_docs(n_docs, seed=seed, max_len=12)
    idx = build_inverted_index(docs, tmp_path_factory.mktemp("p") / "i", show_progress=False)
    q = Queries([str(i) for i in range(len(queries))], queries)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned = idx.bm25(k=k, algorithm="maxscore")(q)  # the default is exhaustive
        exact = idx.bm25(k=k, algorithm="exhaustive")(q)
    assert pruned == exact
    assert pruned.score.tolist() == exact.score.tolist()  # bit-identical, not just close


def test_ties_break_by_index_order_and_rankings_are_ordered(tmp_path):
    docs = [Document(str(i), "same words here") for i in range(10)]
    idx = build_inverted_index(docs, tmp_path / "i", show_progress=False)
    r = idx.bm25(k=3)(Queries(["q"], ["words"]))
    assert r.docid.tolist() == ["0", "1", "2"] and r.rank.tolist() == [1, 2, 3]


def test_compiled_cutoff_equals_uncompiled_and_reaches_the_engine(index):
    q = Queries([str(i) for i in range(10)], random_queries(10, seed=3))
    pipeline = index.bm25() % 7
    compiled = pipeline.compile()
    assert isinstance(compiled, BM25) and compiled.k == 7
    assert compiled(q) == pipeline(q)


def test_empty_queries_warn_and_return_nothing(index):
    with pytest.warns(UserWarning, match="1 queries have no terms"):
        r = index.bm25()(Queries(["a", "b"], ["the of and", "w1"]))
    assert set(r.qid.tolist()) == {"b"}


def test_parameter_validation(index):
    with pytest.raises(ValueError, match="0 <= b <= 1"):
        index.bm25(b=2)
    with pytest.raises(ValueError, match="algorithm"):
        index.bm25(algorithm="wand")


def test_rm3_expands_queries_and_keeps_original_terms(index):
    rm3 = RM3(index.bm25(), fb_docs=5, fb_terms=5, max_df_ratio=1.0)
    q = Queries(["1"], ["w12 w13"])
    bag = rm3.expand(q)[0]
    assert {"w12", "w13"} <= bag.keys() and len(bag) <= 7
    assert sum(bag.values()) == pytest.approx(1.0)
    run = rm3(q)
    assert len(run) > 0 and run.qid.tolist()[0] == "1"
    assert rm3.with_cutoff(10).retriever.k == 10


def test_multithreaded_batch_equals_single_thread(index):
    q = Queries([str(i) for i in range(40)], random_queries(40, seed=9))
    assert index.bm25(num_threads=1)(q) == index.bm25()(q)


@pytest.mark.parametrize("algorithm", ["maxscore", "exhaustive"])
def test_one_query_at_a_time_equals_the_batch_on_every_path(index, monkeypatch, algorithm):
    """A few queries run on numpy (a fresh process), then on the compiled kernels on the calling thread;
    a larger batch in parallel chunks: the same rankings, scores bit for bit."""
    from rankstack.sparse import bm25 as bm25_module

    texts = random_queries(12)
    texts[3] = f"{texts[3]} {texts[3]}"  # every term repeated: counts become boosts
    texts[5] = "zzzunknown"  # no term in the index: no results
    qids = [str(i) for i in range(len(texts))]
    stage = index.bm25(k=20, algorithm=algorithm)
    batch = stage(Queries(qids, texts))  # more than FEW_QUERIES: the parallel kernel
    assert len(texts) > bm25_module.FEW_QUERIES
    monkeypatch.setitem(bm25_module._state, "kernels", None)
    monkeypatch.setitem(bm25_module._state, "numpy_calls", 0)
    monkeypatch.setattr(bm25_module, "_NUMPY_CALLS", 6)
    seen = []
    for i in range(len(texts)):  # the first 6 calls on numpy, then the compiled kernels load
        seen.append(bm25_module._state["kernels"] is None)
        one = stage(Queries([qids[i]], [texts[i]]))
        want = batch.for_qids([qids[i]])
        assert one.docid.tolist() == want.docid.tolist()
        assert one.score.tolist() == want.score.tolist()
    assert seen == [True] * 7 + [False] * 5
    pair = stage(Queries(qids[:2], texts[:2]))
    assert pair.score.tolist() == batch.for_qids(qids[:2]).score.tolist()


def test_compiled_paths_skip_deleted_documents_and_their_terms(corpus, tmp_path, monkeypatch):
    """The one-query kernel and batches (on one thread and in parallel) after deletions: terms left only in
    deleted documents drop out (df 0), and rankings equal a fresh build of what is left."""
    from rankstack.sparse import bm25 as bm25_module

    monkeypatch.setattr(bm25_module, "_NUMPY_CALLS", 0)  # straight to the compiled kernels
    index = build_inverted_index(corpus, tmp_path / "i", show_progress=False)
    gone = [d.docid for d in corpus[::3]]
    index = index.delete(gone)
    fresh = build_inverted_index([d for d in corpus if d.docid not in set(gone)], tmp_path / "f", show_progress=False)
    texts = random_queries(12, seed=21)
    texts[4] = "zzzunknown"  # no term: no rows, and the batch's later queries keep theirs
    texts[6] = f"{texts[6]} {texts[6]}"  # counts become boosts
    qids = [str(i) for i in range(len(texts))]
    batches = [index.bm25(k=15, num_threads=t)(Queries(qids, texts)) for t in (1, None)]  # > FEW_QUERIES
    assert batches[0] == batches[1] and "4" not in set(batches[0].qid.tolist())
    for qid, text in zip(qids, texts):
        one = index.bm25(k=15)(Queries([qid], [text]))
        assert one == batches[0].for_qids([qid])
        clean = fresh.bm25(k=15)(Queries([qid], [text]))
        assert one.docid.tolist() == clean.docid.tolist()
