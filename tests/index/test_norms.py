import numpy as np

from rankstack.index import decode_norm, encode_norm
from rankstack.index.inverted import encode_norms


def test_lengths_below_24_are_exact():
    assert all(decode_norm(encode_norm(n)) == n for n in range(24))


def test_lucene_smallfloat_values():
    # worked by hand from SmallFloat.intToByte4: 41 - 24 = 17 -> 4 significant bits -> 16 -> 40
    assert encode_norm(40) == 40 and decode_norm(encode_norm(41)) == 40
    assert encode_norm(2**31 - 1) == 255


def test_encoding_is_monotone_and_never_overestimates():
    prev = -1
    for n in range(0, 100_000, 7):
        b = encode_norm(n)
        assert b >= prev and decode_norm(b) <= n
        prev = b


def test_vectorised_encoding_equals_the_scalar_one():
    lengths = np.concatenate([np.arange(70_000), np.random.default_rng(0).integers(0, 2**31, 20_000), [2**31 - 1]])
    assert encode_norms(lengths).tolist() == [encode_norm(int(n)) for n in lengths]
    assert encode_norms(np.zeros(0, np.uint32)).dtype == np.uint8
