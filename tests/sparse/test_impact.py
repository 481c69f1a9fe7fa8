"""The impact index and ``Impact`` retrieval: exact top k against brute force over the same quantised
vectors, updates, JsonVectorCollection files, and the errors a user meets."""

from __future__ import annotations

import gzip
import json
import math
import random
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankstack import Queries
from rankstack.data.vectors import SparseVector, read_json_vectors, write_json_vectors
from rankstack.errors import InputFormatError, RankstackError
from rankstack.index import build_impact_index, build_inverted_index, open_index
from rankstack.index.inverted import quantize_impacts
from rankstack.sparse.impact import Impact, pretokenized
from tests.helpers import random_docs

TOKENS = [f"t{i}" for i in range(30)]


def random_vectors(n: int, seed: int, prefix: str = "d") -> list[SparseVector]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        size = rng.randint(0, 8)
        weights = {rng.choice(TOKENS): round(rng.uniform(0.0, 3.0), rng.choice([1, 3, 6])) for _ in range(size)}
        out.append(SparseVector(f"{prefix}{i}", weights, f"text of {prefix}{i}"))
    return out


def random_bags(n: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    bags = []
    for _ in range(n):
        bag = {rng.choice([*TOKENS, "unseen"]): rng.choice([1.0, 0.5, rng.uniform(0.0, 2.0)]) for _ in range(rng.randint(0, 6))}
        bags.append(bag)
    return bags


def brute_force(segments: list[list[SparseVector]], deleted: set[tuple[int, str]], bits, bag, k):
    """Score every live document the slow way over the vectors quantised as each segment stores them:
    float64 sum in the query's token order of weight x impact / scale, rounded once to float32; ties by
    segment, then position."""
    rows = []
    for si, seg in enumerate(segments):
        flat = np.array([w for v in seg for w in v.weights.values()], dtype=np.float32)
        impacts, scale = quantize_impacts(flat, bits)
        pos = 0
        for local, v in enumerate(seg):
            imp = dict(zip(v.weights, impacts[pos : pos + len(v.weights)].tolist(), strict=True))
            pos += len(v.weights)
            if (si, v.docid) in deleted:
                continue
            total = 0.0
            for token, w in bag.items():
                if w > 0 and imp.get(token, 0) > 0:
                    total += (w / scale) * float(np.float32(imp[token]))
            score = float(np.float32(total))
            if score > 0:
                rows.append((-score, si, local, v.docid, score))
    rows.sort()
    return [(docid, score) for _, _, _, docid, score in rows[:k]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n_docs=st.integers(1, 80),
    k=st.integers(1, 30),
    bits=st.sampled_from([8, 4, 16, None]),
    algorithm=st.sampled_from(["exhaustive", "maxscore"]),
    n_queries=st.sampled_from([1, 3, 12]),  # one query, the few-queries path, a batch
    updates=st.booleans(),
)
def test_top_k_equals_brute_force_over_the_quantised_vectors(
    tmp_path_factory, seed, n_docs, k, bits, algorithm, n_queries, updates
):
    first = random_vectors(n_docs, seed)
    path = tmp_path_factory.mktemp("imp") / "idx"
    index = build_impact_index(first, path, bits=bits, show_progress=False)
    segments, deleted = [first], set()
    if updates:  # a second segment that replaces some documents, and deletions
        second = random_vectors(max(1, n_docs // 2), seed + 1)[::2]
        index = index.add_vectors(second)
        gone = [v.docid for v in first[1::3]]
        index = index.delete(gone)
        segments.append(second)
        replaced = {v.docid for v in second}
        deleted = {(0, d) for d in replaced | set(gone)} | {(1, d) for d in gone}
    bags = random_bags(n_queries, seed + 2)
    qids = [f"q{i}" for i in range(n_queries)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = Impact(index, k=k, algorithm=algorithm).search_weighted(qids, bags)
    for qid, bag in zip(qids, bags, strict=True):
        got = run.for_qids([qid])
        expected = brute_force(segments, deleted, bits, bag, k)
        assert list(zip(got.docid.tolist(), got.score.tolist(), strict=True)) == expected


def test_quantisation_puts_the_largest_weight_at_the_top_of_the_range():
    impacts, scale = quantize_impacts(np.array([0.0, 0.5, 1.0, 2.0, 0.001], np.float32), 8)
    assert impacts.dtype == np.uint8 and impacts.tolist() == [0, 64, 128, 255, 0]
    assert scale == pytest.approx(127.5)
    wide, _ = quantize_impacts(np.array([1.0, 3.0], np.float32), 12)
    assert wide.dtype == np.uint16 and wide.tolist() == [1365, 4095]
    exact, one = quantize_impacts(np.array([0.25, 7.5], np.float32), None)
    assert exact.dtype == np.float32 and exact.tolist() == [0.25, 7.5] and one == 1.0
    with pytest.raises(ValueError, match=r"1\.\.16"):
        quantize_impacts(np.ones(2, np.float32), 17)


def test_unquantised_scores_are_the_weight_products(tmp_path):
    vectors = [SparseVector("a", {"x": 0.5, "y": 2.0}), SparseVector("b", {"y": 1.25})]
    index = build_impact_index(vectors, tmp_path / "i", bits=None, show_progress=False)
    run = Impact(index).search_weighted(["q"], [{"y": 2.0, "x": 1.0}])
    assert run.docid.tolist() == ["a", "b"] and run.score.tolist() == [4.5, 2.5]


def test_merge_gives_what_a_fresh_build_of_the_live_documents_gives(tmp_path):
    a, b = random_vectors(40, 3), random_vectors(20, 4, prefix="e")
    index = build_impact_index(a, tmp_path / "i", show_progress=False).add_vectors(b).delete(["d1", "e2"])
    merged = index.merge()
    assert len(merged.segments) == 1
    live = [v for v in a + b if v.docid not in ("d1", "e2")]
    fresh = build_impact_index(live, tmp_path / "fresh", show_progress=False)
    bags = random_bags(10, 5)
    qids = [str(i) for i in range(10)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Impact(merged).search_weighted(qids, bags) == Impact(fresh).search_weighted(qids, bags)


def test_a_pipeline_stage_with_stored_texts_and_pretokenized_queries(tmp_path):
    vectors = [SparseVector("a", {"cat": 1.0, "sat": 0.5}, "The cat sat."), SparseVector("b", {"dog": 2.0}, "A dog.")]
    index = build_impact_index(vectors, tmp_path / "i", show_progress=False)
    assert pretokenized("cat cat dog") == {"cat": 2.0, "dog": 1.0}
    run = (Impact(index) % 1)(Queries(["1", "2"], ["cat sat", "dog"]))
    assert run.docid.tolist() == ["a", "b"]
    assert index.docs["a"].text == "The cat sat."
    reopened = open_index(tmp_path / "i")
    assert reopened.impact == {"bits": 8, "encoder": None}
    with pytest.warns(UserWarning, match="no terms"):
        assert len(Impact(reopened)(Queries(["3"], ["unknown words"]))) == 0


class FakeEncoder:
    def __init__(self, name: str):
        self.name = name

    def encode_queries(self, texts):
        return [pretokenized(t.lower()) for t in texts]

    def describe(self):
        return {"model": f"/some/path/{self.name}", "fingerprint": self.name}


def test_the_index_knows_its_encoder_and_kind(tmp_path):
    vectors = random_vectors(10, 1)
    recorded = {"model": "splade", "fingerprint": "splade"}  # the same weights loaded from another path match
    index = build_impact_index(vectors, tmp_path / "i", encoder=recorded, show_progress=False)
    assert len(Impact(index, FakeEncoder("splade"))(Queries(["1"], ["T1 T2"]))) >= 0
    with pytest.raises(RankstackError, match="built with encoder"):
        Impact(index, FakeEncoder("other"))
    Impact(index, FakeEncoder("other"), check_encoder=False)
    with pytest.raises(RankstackError, match="impact index"):
        index.bm25()
    with pytest.raises(RankstackError, match="add_vectors"):
        index.add(random_docs(2))
    text = build_inverted_index(random_docs(5), tmp_path / "bm25", show_progress=False)
    with pytest.raises(RankstackError, match="not an impact index"):
        Impact(text)
    with pytest.raises(RankstackError, match="BM25 index"):
        text.add_vectors(vectors)
    with pytest.raises(ValueError, match="bits"):
        build_impact_index(vectors, tmp_path / "x", bits=0, show_progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("weights", "message"),
    [({"a": -1.0}, ">= 0"), ({"a": math.nan}, "finite"), ({"a": math.inf}, "finite"), ({"a b": 1.0}, "whitespace"),
     ({"": 1.0}, "whitespace"), ({"a": "1"}, "numbers"), ({"a": True}, "numbers")],
)  # fmt: skip
def test_bad_weights_are_refused_naming_the_document(tmp_path, weights, message):
    with pytest.raises(RankstackError, match=message) as err:
        build_impact_index([SparseVector("doc7", weights)], tmp_path / "i", show_progress=False)
    assert "doc7" in str(err.value) and not (tmp_path / "i").exists()
    with pytest.raises(ValueError, match="finite"):
        Impact(build_impact_index(random_vectors(3, 0), tmp_path / "ok", show_progress=False)).search_weighted(
            ["q"], [{"t1": math.nan}]
        )


@pytest.mark.parametrize("weight", [-0.5, math.nan, math.inf, "heavy", None])
def test_bad_query_weights_are_refused_naming_query_and_token(tmp_path, weight):
    stage = Impact(build_impact_index(random_vectors(3, 0), tmp_path / "ok", show_progress=False))
    with pytest.raises(ValueError, match=r"query 'q2': token 't1' has weight .*finite numbers >= 0"):
        stage.search_weighted(["q1", "q2"], [{"t0": 1.0}, {"t0": 2.0, "t1": weight}])


def test_json_vector_collection_files(tmp_path):
    vectors = random_vectors(25, 9)
    path = write_json_vectors(vectors, tmp_path / "vectors.jsonl.gz")
    with gzip.open(path, "rt") as fh:
        first = json.loads(fh.readline())
    assert set(first) == {"id", "contents", "vector"}
    back = list(read_json_vectors(path))
    assert [(v.docid, v.contents) for v in back] == [(v.docid, v.contents) for v in vectors]
    assert [v.weights for v in back] == [{t: w for t, w in v.weights.items() if w > 0} for v in vectors]
    from_file = build_impact_index(path, tmp_path / "a", show_progress=False)
    from_python = build_impact_index(vectors, tmp_path / "b", show_progress=False)
    bags, qids = random_bags(8, 1), [str(i) for i in range(8)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Impact(from_file).search_weighted(qids, bags) == Impact(from_python).search_weighted(qids, bags)
    assert from_file.manifest["built_from"] == str(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [('{"id": "x", "vector": {"a": -2}}', ">= 0"), ('{"id": "x", "vector": {"a": NaN}}', "finite"),
     ('{"id": "x"}', "no 'vector'"), ('{"vector": {"a": 1}}', "id"), ('{"id": "x", "vector": [1, 2]}', "mapping"),
     ('{"id": "x", "vector": {"a": 1}', "invalid JSON"), ('["x"]', "JSON object"),
     ('{"id": "x", "contents": 5, "vector": {}}', "contents")],
)  # fmt: skip
def test_malformed_vector_files_name_the_line(tmp_path, line, message):
    path = tmp_path / "v.jsonl"
    path.write_text('{"id": "ok", "vector": {"a": 1.5}}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match=message) as err:
        list(read_json_vectors(path))
    assert err.value.line == 3 and str(path) in str(err.value)


def test_an_index_whose_postings_contradict_its_quantisation_is_refused(tmp_path):
    from rankstack.errors import IndexFormatError

    index = build_impact_index(random_vectors(10, 2), tmp_path / "i", bits=8, show_progress=False)
    index.manifest["impact"] = {**index.manifest["impact"], "bits": 12}  # as if the manifest said 12 bits
    with pytest.raises(IndexFormatError, match="bits=12"):
        Impact(index)
    index.manifest["impact"]["bits"] = 8
    index.segments[0].entry["impact_scale"] = 0.0
    with pytest.raises(IndexFormatError, match="inconsistent"):
        Impact(index)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 7), algorithm=st.sampled_from(["exhaustive", "maxscore"]))
def test_query_term_pruning_searches_the_heaviest_tokens(tmp_path_factory, seed, n, algorithm):
    """``max_query_terms=n`` is the exact search of each query cut to its n heaviest tokens (ties to the earlier
    token, kept in the query's order), whether or not the index holds them."""
    vectors = random_vectors(60, seed)
    index = build_impact_index(vectors, tmp_path_factory.mktemp("prune") / "idx", bits=8, show_progress=False)
    rng = random.Random(seed)
    bags = [{t: rng.choice([0.0, 0.5, 1.0, rng.uniform(0.1, 2.0)]) for t in rng.sample([*TOKENS, "unseen"], 9)}
            for _ in range(4)]  # fmt: skip
    qids = [f"q{i}" for i in range(len(bags))]

    def heaviest(bag: dict[str, float]) -> dict[str, float]:
        positive = [(t, w) for t, w in bag.items() if w > 0]
        kept = {t for t, _ in sorted(positive, key=lambda tw: -tw[1])[:n]}  # sorted is stable: ties to the earlier
        return {t: w for t, w in bag.items() if t in kept}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned = Impact(index, k=20, algorithm=algorithm, max_query_terms=n).search_weighted(qids, bags)
        by_hand = Impact(index, k=20, algorithm=algorithm).search_weighted(qids, [heaviest(b) for b in bags])
        one = [Impact(index, k=20, max_query_terms=n).search_weighted([q], [b]) for q, b in zip(qids, bags, strict=True)]
    assert pruned == by_hand and pruned.score.tolist() == by_hand.score.tolist()
    for q, r in zip(qids, one, strict=True):
        assert r.score.tolist() == by_hand.for_qids([q]).score.tolist()


def test_query_term_pruning_settings(tmp_path):
    vectors = [SparseVector("a", {"t1": 1.0, "t2": 0.5, "t3": 2.0}), SparseVector("b", {"t2": 1.0})]
    index = build_impact_index(vectors, tmp_path / "idx", show_progress=False)
    for bad in (0, -3, True):
        with pytest.raises(ValueError, match="max_query_terms must be at least 1"):
            Impact(index, max_query_terms=bad)
    stage = Impact(index, k=50, max_query_terms=5)
    assert stage.with_cutoff(10).max_query_terms == 5 and "max_query_terms=5" in repr(stage)
    bag = {"t1": 1.0, "t2": 3.0, "t3": 2.0}
    assert Impact(index, max_query_terms=2)._vector("q", bag)[1].tolist() == [3.0, 2.0]  # the query's order
