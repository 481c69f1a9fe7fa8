"""The token index format: residual codec, k-means, build, add, delete, checksums, atomic builds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import rankstack
from rankstack.errors import IndexFormatError
from rankstack.index.arrays import concat_ranges
from rankstack.index.kmeans import spherical_kmeans
from rankstack.index.residual import ResidualCodec
from rankstack.index.tokens import TokenIndex, build_token_index, default_centroids

DIM = 16
MODEL = {"model": "toy", "fingerprint": "abc", "dim": DIM}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def toy_docs(n: int = 40, seed: int = 0) -> tuple[list[str], list[np.ndarray]]:
    """Documents whose tokens cluster around a few topic directions (as real token vectors do)."""
    rng = np.random.default_rng(seed)
    topics = unit(rng.normal(size=(8, DIM)))
    ids, mats = [], []
    for i in range(n):
        length = int(rng.integers(3, 12))
        picks = rng.integers(0, 8, size=length)
        mats.append(unit(topics[picks] + 0.3 * rng.normal(size=(length, DIM))))
        ids.append(f"d{i}")
    return ids, mats


def build(tmp_path, bits=2, n=40, name="idx", **kw) -> tuple[TokenIndex, list[str], list[np.ndarray]]:
    ids, mats = toy_docs(n)
    blocks = [(ids[lo : lo + 7], mats[lo : lo + 7]) for lo in range(0, n, 7)]
    return build_token_index(tmp_path / name, blocks, MODEL, bits=bits, **kw), ids, mats


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_the_codec_round_trips_bucket_ids_and_gets_closer_with_more_bits(bits):
    rng = np.random.default_rng(bits)
    vectors = unit(rng.normal(size=(500, DIM)))
    centroids = unit(vectors + 0.2 * rng.normal(size=vectors.shape))
    codec = ResidualCodec.fit(vectors - centroids, bits)
    packed = codec.encode(vectors - centroids)
    assert packed.shape == (500, DIM * bits // 8) and packed.dtype == np.uint8
    decoded = codec.decode(packed, centroids, DIM)
    buckets = np.searchsorted(codec.cutoffs, vectors - centroids, side="right")
    expect = unit(centroids + codec.weights[buckets])  # an independent decode of the same buckets
    np.testing.assert_allclose(decoded, expect, atol=1e-6)
    cosine = (decoded * vectors).sum(axis=1).mean()
    assert cosine > {1: 0.8, 2: 0.9, 4: 0.98, 8: 0.999}[bits]


def test_codec_refuses_other_bit_widths():
    with pytest.raises(ValueError, match="bits must be one of"):
        ResidualCodec.fit(np.zeros((4, 8)), 3)


def test_kmeans_is_deterministic_unit_length_and_uses_every_cell():
    sample = unit(np.random.default_rng(0).normal(size=(300, DIM)))
    a, b = spherical_kmeans(sample, 16, seed=3), spherical_kmeans(sample, 16, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    codes = (sample @ a.T).argmax(axis=1)
    assert len(np.unique(codes)) == 16
    with pytest.raises(ValueError, match="k-means needs"):
        spherical_kmeans(sample[:3], 5)


def test_default_centroids_follow_plaid():
    assert default_centroids(930_000) == 8192 and default_centroids(10) == 10 and default_centroids(0) == 0


def test_concat_ranges():
    starts, stops = np.array([5, 0, 9, 9, 2]), np.array([8, 0, 11, 9, 4])
    np.testing.assert_array_equal(concat_ranges(starts, stops), [5, 6, 7, 9, 10, 2, 3])
    assert len(concat_ranges(np.array([1]), np.array([1]))) == 0


def test_uncompressed_index_keeps_the_vectors_and_opens_by_manifest(tmp_path):
    _index, _ids, mats = build(tmp_path, bits=0, num_centroids=8)
    opened = rankstack.open(tmp_path / "idx")
    assert isinstance(opened, TokenIndex) and opened.num_docs == 40 and opened.bits == 0
    vectors, offsets = opened.doc_vectors([3, 0])
    np.testing.assert_allclose(vectors[offsets[0] : offsets[1]], mats[3], atol=1e-3)  # float16
    np.testing.assert_allclose(vectors[offsets[1] : offsets[2]], mats[0], atol=1e-3)
    assert opened.bytes_per_token() == DIM * 2 + 4
    assert opened.manifest["num_tokens"] == sum(len(m) for m in mats)


def test_compressed_index_decodes_close_to_the_originals(tmp_path):
    index, _ids, mats = build(tmp_path, bits=4, num_centroids=8)
    vectors, _offsets = index.doc_vectors(np.arange(40))
    original = np.concatenate(mats)
    assert (vectors * original).sum(axis=1).mean() > 0.97
    assert index.bytes_per_token() == DIM * 4 / 8 + 4
    # the inverted file lists each document under every centroid its tokens fall in, once
    for cell in range(8):
        docs = index.ivf[index.ivf_offsets[cell] : index.ivf_offsets[cell + 1]]
        assert list(docs) == sorted(set(docs.tolist()))
        for d in docs:
            assert cell in index.codes[index.doc_offsets[d] : index.doc_offsets[d + 1]]


def test_add_replace_and_delete(tmp_path):
    index, _ids, _mats = build(tmp_path, bits=2, num_centroids=8)
    more_ids, more = toy_docs(5, seed=9)
    more_ids = ["new0", "new1", "d3", "new3", "new4"]  # d3 is replaced
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # replacing a document is what add does, not a repeated docid
        index = index.add([(more_ids, more)])
    assert index.num_docs == 44 and index.position("d3") == 42
    vectors, _ = index.doc_vectors([index.position("new1")])
    assert (vectors * more[1]).sum(axis=1).mean() > 0.85
    index = index.delete(["d0"])
    assert index.num_docs == 43
    with pytest.raises(KeyError):
        index.position("d0")
    reopened = TokenIndex(tmp_path / "idx")
    assert reopened.num_docs == 43 and reopened.deleted.sum() == 2
    with pytest.warns(UserWarning, match="not in the index"):
        reopened.delete(["ghost"])
    with pytest.raises(rankstack.RankstackError, match="same model"):
        reopened.add([(["x"], [more[0]])], model={"model": "other", "fingerprint": "zzz"})


def test_repeated_docids_keep_the_last(tmp_path):
    ids, mats = toy_docs(6)
    with pytest.warns(UserWarning, match="repeated docids"):
        index = build_token_index(tmp_path / "idx", [([*ids, "d1"], [*mats, mats[5]])], MODEL, num_centroids=4)
    assert index.num_docs == 6 and index.position("d1") == 6


def test_a_corrupt_residual_file_is_refused(tmp_path):
    build(tmp_path, bits=2, num_centroids=8)
    path = tmp_path / "idx" / "residuals.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=r"residuals\.npy failed its checksum"):
        TokenIndex(tmp_path / "idx")


def test_bad_input_is_refused_and_a_failed_build_leaves_nothing(tmp_path):
    ids, mats = toy_docs(4)
    with pytest.raises(ValueError, match="expected \\[tokens, 16\\]"):
        build_token_index(tmp_path / "a", [(ids, [m[:, :8] for m in mats])], MODEL)
    bad = [m.copy() for m in mats]
    bad[2][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"d2.*NaN"):
        build_token_index(tmp_path / "b", [(ids, bad)], MODEL)
    with pytest.raises(ValueError, match="bits must be"):
        build_token_index(tmp_path / "c", [(ids, mats)], MODEL, bits=3)

    def dies():
        yield ids, mats
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError):
        build_token_index(tmp_path / "d", dies(), MODEL)
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob(".d.tmp*"))
    with pytest.raises(ValueError, match="empty"):
        build_token_index(tmp_path / "e", [([], [])], MODEL)


def test_given_centroids_are_used_as_they_are(tmp_path):
    first, ids, mats = build(tmp_path, bits=0, num_centroids=8)
    again = build_token_index(tmp_path / "again", [(ids, mats)], MODEL, bits=2, centroids=first.centroids)
    np.testing.assert_array_equal(again.centroids, first.centroids)
    np.testing.assert_array_equal(np.asarray(again.codes), np.asarray(first.codes))
    with pytest.raises(ValueError, match="do not fit"):
        build_token_index(tmp_path / "bad", [(ids, mats)], MODEL, centroids=first.centroids[:, :4])
