import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.text import STOPWORDS, Analyzer, english_analyzer
from rankstack.text.analysis import _ASCII_TOKEN_RE, _TOKEN_RE


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("The U.S.A. economy", ["the", "u.s.a", "economy"]),
        ("3.5% of 1,000 people", ["3.5", "of", "1,000", "people"]),
        ("COVID19 and e.g. foo_bar", ["covid19", "and", "e.g", "foo_bar"]),
        ("don't stop", ["don't", "stop"]),
        ("state-of-the-art", ["state", "of", "the", "art"]),
        ("John's book", ["john", "book"]),
        ("a.1 b", ["a", "1", "b"]),  # '.' joins letter-letter or digit-digit only
        ("中文", ["中", "文"]),
        ("", []),
    ],
)
def test_tokenizer_follows_uax29_word_rules(text, tokens):
    assert Analyzer(stopwords="none", stemmer=None).tokenize(text) == tokens


def test_english_chain_stops_and_stems_like_lucene():
    a = english_analyzer()
    assert a("The runners were running in the races") == ["runner", "were", "run", "race"]
    assert len(STOPWORDS["lucene"]) == 33


def test_long_tokens_are_split_at_255_chars():
    assert [len(t) for t in Analyzer(stemmer=None).tokenize("x" * 600)] == [255, 255, 90]


def test_config_roundtrip_and_validation():
    a = Analyzer(stemmer="english", stopwords="none")
    assert Analyzer.from_config(a.config()) == a
    with pytest.raises(ValueError, match="unknown stemmer"):
        Analyzer(stemmer="klingon")
    with pytest.raises(ValueError, match="unknown stopword list"):
        Analyzer(stopwords="klingon")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="aZ09_ .,;:'-sS\n", max_size=40))
def test_ascii_fast_path_equals_the_unicode_rules(text):
    """ASCII text takes a stdlib-``re`` path: it finds what the full Unicode rules find."""
    assert _ASCII_TOKEN_RE.findall(text.lower()) == [t.lower() for t in _TOKEN_RE.findall(text)]


# ASCII word pieces, joiners and separators mixed with letters, marks, digits, joiners, format and space
# characters from elsewhere in Unicode: the chunked path must equal the Unicode rules over the whole text
_MIXED = st.text(
    alphabet="aZ09_ .,;:'-sS\n\t\u00e9\u00c9\u0301\u0660\u2019\u00b7\u00a0\u2009\u200b\u00ad\u4e2d\u03a3\u0130\U0001F600\u2028",
    max_size=60,
)


@settings(max_examples=600, deadline=None)
@given(_MIXED)
def test_mixed_text_takes_ascii_stretches_fast_and_equals_the_unicode_rules(text):
    _assert_equals_the_unicode_rules(text, Analyzer._mixed_tokens)


def _assert_equals_the_unicode_rules(text, tokenize):
    """``tokenize(analyzer, text)`` finds what ``_TOKEN_RE`` finds over the whole text (up to case when lowercasing)."""
    reference = _TOKEN_RE.findall(text)
    for lowercase in (True, False):
        got = tokenize(Analyzer(stopwords="none", stemmer=None, lowercase=lowercase), text)
        assert [t.lower() for t in got] == [t.lower() for t in reference] if lowercase else got == reference


def test_possessives_without_an_apostrophe_in_sight():
    a = Analyzer(stopwords="none", stemmer=None)
    assert a.tokenize("Johns book, John's book, John\u2019s book") == ["johns", "book", "john", "book", "john", "book"]


# the bulk (index build) path: whole non-ASCII texts through a stdlib ``re`` over Unicode classes, with the
# characters where that is not exact (marks, format characters, astral planes, capital sigma, case changes
# that change a character's class) sent down the exact path
_BULK = st.text(
    alphabet="aZ09_ .,;:'-^sS\n\u00e9\u00c9\u03b2\u03a3\u0394\u00b5\u2013\u00b1\u2265\u00a9\u00ae\u24c2\u0301"
    "\u0660\u066c\u2019\u00b7\u00a0\u00ad\u4e2d\u3042\u0130\u2122\U0001F600\U0001F1EB\u203f",
    max_size=60,
)


@settings(max_examples=800, deadline=None)
@given(_BULK)
def test_bulk_path_for_non_ascii_text_equals_the_unicode_rules(text):
    _assert_equals_the_unicode_rules(text, Analyzer._bulk_surface_tokens)


def test_bulk_path_lowercases_and_keeps_greek_symbols_and_numbers():
    analyzer = Analyzer(stopwords="none", stemmer=None)
    text = "TNF-\u03b1 \u2265 3.5 \u00b5g \u00a9 2019 \u0394CT, IL\u20136 \u2013 R\u00e9sum\u00e9"
    assert analyzer._bulk_surface_tokens(text) == ["tnf", "\u03b1", "3.5", "\u00b5g", "\u00a9", "2019", "\u03b4ct",
                                                   "il", "6", "r\u00e9sum\u00e9"]  # fmt: skip


def test_unicode_classes_are_what_the_generator_writes():
    """``unicode_classes.py`` is generated; regenerating changes nothing unless a newer ``regex`` brings new Unicode data."""
    import regex

    from rankstack.text import _unicode_gen, unicode_classes

    differ = [name for name, ranges in _unicode_gen.classes().items() if getattr(unicode_classes, name) != "".join(ranges)]
    if differ and regex.__version__ != unicode_classes.REGEX_VERSION:
        pytest.skip(f"regex {regex.__version__} (not {unicode_classes.REGEX_VERSION}, which wrote unicode_classes.py) "
                    f"changes {differ}: run `python -m rankstack.text._unicode_gen`")  # fmt: skip
    assert not differ, f"unicode_classes.py is stale in {differ}: run `python -m rankstack.text._unicode_gen`"
