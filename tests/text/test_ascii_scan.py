import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.text.analysis import _ASCII_TOKEN_RE
from rankstack.text.ascii_scan import TokenTable

_ASCII = st.text(alphabet="aZq09_ .,;:'-sS\n\t!", max_size=40)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_ASCII, max_size=8), lower=st.booleans())
def test_scan_finds_the_regex_tokens_text_by_text(texts, lower):
    table = TokenTable(lower=lower)
    buf, los, his, rows, _, longest = table.tokenize(texts)
    raw = buf.tobytes().decode("ascii")
    got = [(int(r), raw[a:b]) for a, b, r in zip(los, his, rows, strict=True)]
    want = [(r, tok) for r, text in enumerate(texts) for tok in _ASCII_TOKEN_RE.findall(text)]
    assert got == want
    assert longest == max((len(t) for _, t in want), default=0)


def test_table_maps_tokens_through_growth_and_case():
    table = TokenTable(lower=True, capacity=4)
    words = [f"w{i}x" for i in range(5000)]
    for i, w in enumerate(words):
        table.add(w, i)
    table.add("W7X", -7)  # the same token once lowered: replaced, not added
    assert len(table) == 5000
    texts = ["W1X w4999x, unseen W7x", "", "w0x"]
    buf, los, his, rows, hashes, _ = table.tokenize(texts)
    assert table.lookup(buf, los, his, hashes, missing=-99).tolist() == [1, 4999, -99, -7, 0]
    assert rows.tolist() == [0, 0, 0, 0, 2]


def test_case_sensitive_table_keeps_case_apart():
    table = TokenTable(lower=False)
    table.add("Dog", 1)
    buf, los, his, _, hashes, _ = table.tokenize(["Dog dog DOG"])
    assert table.lookup(buf, los, his, hashes, missing=-1).tolist() == [1, -1, -1]
    assert np.all(his > los)
