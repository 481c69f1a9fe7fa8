import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.text.analysis import _MID_LETTER, _MID_NUM, _MID_NUM_LET, Analyzer
from rankstack.text.query_scan import COMPLEX, LETTER, PICTOGRAPH, SEPARATOR, TokenTable, char_tables

# simple letters (Greek, accented Latin), separators (dashes, quotes, ≥, other numerics), non-ASCII joiners,
# pictographs of the Basic Multilingual Plane, and complex characters: Han, an emoji beyond that plane, a
# combining mark (the emoji variation selector is one), a non-ASCII digit, Σ, a format character (ZWJ too)
_TEXT = st.text(alphabet="aZq09_ .,;:'-sS\n!αβγΓéÉßñ–“”≥²½₂’‘·©®™漢🙂\u0301\ufe0f\u200d٣ΣΟ\u00ad", max_size=40)


def _want(text: str, analyzer: Analyzer) -> list[str]:
    return analyzer.tokenize(text)


@settings(max_examples=400, deadline=None)
@given(texts=st.lists(_TEXT, max_size=8), lower=st.booleans())
def test_scan_finds_the_general_tokenizers_tokens(texts, lower):
    """Every text not flagged complex gets exactly the general tokeniser's tokens; a text is flagged
    only when it holds a character the simple classes leave out."""
    analyzer = Analyzer(lowercase=lower, possessive=False)
    table = TokenTable(lower=lower)
    batch = table.tokenize(texts)
    cls = char_tables()[0]
    for row, text in enumerate(texts):
        complex_chars = [c for c in text if ord(c) >= len(cls) or cls[ord(c)] == COMPLEX]
        assert bool(batch.complex_rows[row]) == bool(complex_chars), text
        got = [batch.token(i) for i in np.flatnonzero(batch.rows == row)]
        if batch.complex_rows[row]:
            assert got == []
        else:
            assert [t.lower() if lower else t for t in got] == analyzer.tokenize(text), text


def test_character_classes():
    cls, join, lower = char_tables()
    assert cls[ord("é")] == LETTER and lower[ord("É")] == ord("é")
    for c in "–≥²½₂’·":
        assert cls[ord(c)] == SEPARATOR, c
    assert cls[ord("©")] == cls[ord("™")] == PICTOGRAPH
    for c in "漢〇🙂\u0301\ufe0f\u200d٣Σ\u00ad":
        assert ord(c) >= len(cls) or cls[ord(c)] == COMPLEX, c
    assert join[ord(".")] == 3 and join[ord(":")] == 1 and join[ord(",")] == 2
    assert join[ord("’")] == 3 and join[ord("·")] == 1 and join[ord("²")] == 0
    # every joiner of the tokeniser's rules is a separator with its bits (none is also a letter or digit)
    for chars, bits in ((_MID_LETTER, 1), (_MID_NUM, 2), (_MID_NUM_LET, 3)):
        for c in chars:
            assert cls[ord(c)] == SEPARATOR and join[ord(c)] == bits, c


def test_pictographs_are_tokens_of_their_own():
    batch = TokenTable(lower=True).tokenize(["a©b ™x", "©\ufe0f x"])
    assert [batch.token(i) for i in range(len(batch.rows))] == ["a", "©", "b", "™", "x"]
    assert batch.complex_rows.tolist() == [False, True]  # an emoji with its variation selector takes the exact path


def test_long_tokens_and_connector_runs():
    batch = TokenTable(lower=True).tokenize(["a" * 256, "a" * 255 + " b", "___ x_y _"])
    assert batch.complex_rows.tolist() == [True, False, False]
    assert [batch.token(i) for i in range(len(batch.rows))] == ["a" * 255, "b", "x_y"]


def test_table_maps_tokens_through_growth_and_case():
    table = TokenTable(lower=True, capacity=4)
    for i in range(5000):
        table.add(f"w{i}x", i)
    table.add("W7X", -7)  # the same token once lowered: replaced, not added
    table.add("Αβγ", 42)
    assert len(table) == 5001
    batch = table.tokenize(["W1X w4999x, unseen W7x", "", "w0x ΑΒΓ"])
    assert table.lookup(batch, missing=-99).tolist() == [1, 4999, -99, -7, 0, 42]
    assert batch.rows.tolist() == [0, 0, 0, 0, 2, 2]
    fused = table.tokenize(["W1X w4999x, unseen W7x", "", "w0x ΑΒΓ"], lookup=True, missing=-99)  # one call
    assert fused.values.tolist() == [1, 4999, -99, -7, 0, 42] and fused.rows.tolist() == batch.rows.tolist()
    assert fused.starts.tolist() == batch.starts.tolist() and fused.ends.tolist() == batch.ends.tolist()


def test_kept_terms_drop_unknown_and_stopwords_and_flag_rows_with_a_term():
    from rankstack.text.query_scan import kept_terms

    rows = np.array([0, 0, 1, 2, 2, 2], dtype=np.int64)
    values = np.array([-1, 5, -2, -1, -2, 9], dtype=np.int64)  # -1: unknown word, -2: stopword
    kept_rows, kept, has_term = kept_terms(rows, values, 4, -2)
    assert kept_rows.tolist() == [0, 2] and kept.tolist() == [5, 9]
    assert has_term.tolist() == [True, False, True, False]  # row 1: a stopword alone; row 3: no tokens


def test_case_sensitive_table_keeps_case_apart():
    table = TokenTable(lower=False)
    table.add("Dog", 1)
    batch = table.tokenize(["Dog dog DOG"])
    assert table.lookup(batch, missing=-1).tolist() == [1, -1, -1]
