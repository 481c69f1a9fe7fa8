"""Text->image, image->text and image->image search over the vector index; what a text-only index says to an image
query; the text-proxy baseline; the Queries image column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import rankstack
from rankstack import Queries, Ranking, RankstackError
from rankstack.index import build_inverted_index
from rankstack.multimodal import (
    ImageCollection,
    MultimodalRetriever,
    TextProxy,
    build_image_index,
    build_text_index,
)
from rankstack.pipeline import Stage

pytestmark = pytest.mark.collection


@pytest.fixture(scope="module")
def collection(image_collection):
    return ImageCollection(image_collection)


def test_image_collection_views(image_collection):
    everything = ImageCollection(image_collection)
    val = ImageCollection(image_collection, where={"coco_split": "val2017"})
    assert len(everything.images) == 10 and len(val.images) == 4
    assert len(val.captions) == 20 and set(val.caption_image.values()) == set(val.images)
    queries, qrels = val.image_to_text()
    assert queries.image is not None and len(queries) == 4 and not any(queries.text)
    assert len(qrels) == 20 and set(qrels.qid.tolist()) == set(val.images)
    assert len(val.pairs()) == 20
    with pytest.raises(RankstackError, match="no image matches"):
        ImageCollection(image_collection, where={"coco_split": "test2015"})


def test_both_directions_and_image_to_image(collection, composite, tmp_path):
    index = build_image_index(collection, composite, tmp_path / "images", show_progress=False)
    assert index.is_multimodal and index.modality == "image" and index.num_docs == 10
    assert index.model["source"] == str(collection.root)
    retriever = index.dense(composite, k=3)
    assert isinstance(retriever, MultimodalRetriever)
    texts = retriever(collection.captions.subset(list(collection.captions.qid[:2])))
    assert len(texts) == 6 and set(texts.docid.tolist()) <= set(collection.images)
    image_queries, _ = collection.image_to_text()
    same = retriever(image_queries)  # image -> image: each photo finds itself first
    top = same.to_pandas().query("rank == 1")
    assert (top.qid == top.docid).all() and len(top) == 10
    np.testing.assert_allclose(top.score, 1.0, atol=1e-5)
    captions = build_text_index(collection.captions, composite, tmp_path / "captions", show_progress=False)
    assert captions.modality == "text"
    run = captions.dense(composite, k=5)(image_queries)
    assert len(run) == 50 and set(run.docid.tolist()) <= set(collection.captions.qid.tolist())


def test_unreadable_images_are_left_out_of_a_build_and_a_query(collection, composite, tmp_path):
    images = dict(list(collection.images.items())[:3])
    images["ghost"] = tmp_path / "ghost.jpg"
    with pytest.warns(UserWarning, match="ghost"):
        index = build_image_index(images, composite, tmp_path / "images", show_progress=False)
    assert index.num_docs == 3 and "ghost" not in index.docids.tolist()
    queries = Queries(["a", "b", "c"], ["", "", "a red bus"], [str(images["ghost"]), str(next(iter(images.values()))), ""])
    with pytest.warns(UserWarning, match="ghost"):
        run = MultimodalRetriever(index, composite, k=2)(queries)
    assert sorted(set(run.qid.tolist())) == ["b", "c"]  # the unreadable query gets no results, the rest do


def test_an_index_of_an_unsaved_model_asks_for_the_model(collection, composite, tmp_path):
    index = build_image_index(dict(list(collection.images.items())[:2]), composite, tmp_path / "i", show_progress=False)
    with pytest.raises(RankstackError, match="never saved"):
        index.dense()


def test_image_queries_against_text_only_indexes_say_so(collection, tmp_path):
    docs = [rankstack.Document(q, t) for q, t in collection.captions]
    bm25 = build_inverted_index(docs, tmp_path / "bm25", show_progress=False)
    image_query = Queries.from_images({"q": str(next(iter(collection.images.values())))})
    with pytest.raises(RankstackError, match=r"image queries cannot search .*text-only"):
        bm25.bm25()(image_query)
    from rankstack.dense import build_dense_index

    dense = build_dense_index(docs[:4], "minilm", tmp_path / "dense", show_progress=False)
    with pytest.raises(RankstackError, match="image queries cannot search"):
        dense.dense()(image_query)
    with pytest.raises(RankstackError, match="text-only model"):
        MultimodalRetriever(dense)


class _FixedTexts(Stage):
    def __init__(self, ranking: Ranking):
        self.ranking = ranking

    def __call__(self, queries):
        return self.ranking


def test_text_proxy_leaves_out_the_query_caption_and_takes_the_best():
    texts = Ranking(["c1", "c1", "c1", "c1"], ["c1", "c2", "c3", "c4"], [9.0, 3.0, 2.5, 4.0])
    caption_image = {"c1": "A", "c2": "A", "c3": "B", "c4": "B"}
    queries = Queries(["c1"], ["a caption"])
    best = TextProxy(_FixedTexts(texts), caption_image)(queries)
    assert best.docid.tolist() == ["B", "A"] and best.score.tolist() == [4.0, 3.0]  # c1 itself (9.0) left out
    summed = TextProxy(_FixedTexts(texts), caption_image, aggregate="sum", leave_out_query=False)(queries)
    assert summed.docid.tolist() == ["A", "B"] and summed.score.tolist() == [12.0, 6.5]
    assert len(TextProxy(_FixedTexts(texts), caption_image, k=1)(queries)) == 1


def test_queries_image_column():
    q = Queries(["1", "2", "3"], ["", "cat", ""], ["a.jpg", "", "b.jpg"])
    assert q.subset(["3", "1"]).image.tolist() == ["a.jpg", "b.jpg"]
    frame = q.to_pandas()
    assert list(frame.columns) == ["qid", "text", "image"]
    assert Queries.from_pandas(frame) == q and Queries.from_pandas(frame[["qid", "text"]]) != q
    assert Queries.from_pandas(pd.DataFrame({"qid": ["x"], "image": ["c.jpg"]})).text.tolist() == [""]
    with pytest.raises(ValueError, match="qid and image differ"):
        Queries(["1"], ["a"], ["x.jpg", "y.jpg"])
    assert "image queries" in repr(Queries.from_images({"q": "x.jpg"}))
