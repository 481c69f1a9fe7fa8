"""Index builds are byte-identical to the format's reference output: the same input gives the same files.

The CRC-32s below were recorded from the build code as it was before the build was made faster (rev
d56c7b3); any speed-up (or ``threads``) must keep them. The document store (``docs.bin`` and the offsets of its
compressed blocks, ``docs_offsets.npy``) is left out: its zlib stream differs between zlib builds and levels
(the store went from level 6 to 1 for build speed), and the stored documents are compared by content.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.index import build_inverted_index
from rankstack.types import Document
from tests.data.fuzz_cases import DATA
from tests.helpers import random_docs

SYNTHETIC = {
    "docid_bytes.npy": 714084496,
    "docid_offsets.npy": 2179913892,
    "doclen.npy": 4266292535,
    "fwd_offsets.npy": 763407259,
    "fwd_terms.npy": 4106209463,
    "fwd_tfs.npy": 359429097,
    "norms.npy": 2438305056,
    "post_docs.npy": 3348651194,
    "post_offsets.npy": 180185044,
    "post_tfs.npy": 4206154682,
    "terms.txt": 333041233,
}
SCIFACT_2000 = {
    "docid_bytes.npy": 3680176268,
    "docid_offsets.npy": 3323950802,
    "doclen.npy": 2146073560,
    "fwd_offsets.npy": 3121174379,
    "fwd_terms.npy": 3875002057,
    "fwd_tfs.npy": 3088558303,
    "norms.npy": 1629003745,
    "post_docs.npy": 2389068484,
    "post_offsets.npy": 3627036835,
    "post_tfs.npy": 529283599,
    "terms.txt": 990411914,
}


def golden_docs() -> list[Document]:
    docs = random_docs(300, seed=11, max_len=60)
    extra = [
        Document("u1", "Naïve café — β-blockers reduce 3.5% of U.S.A. risk; the patients' outcomes", title="Über"),
        Document("u2", "中文 text with emoji 😀 and John’s Σίσυφος", title=None),
        Document("u3", "x" * 600 + " foo_bar ____ don't", title="T"),
    ]
    return docs + extra


def _crcs(idx) -> dict[str, int]:
    files = idx.manifest["segments"][0]["files"]
    return {name: rec["crc32"] for name, rec in files.items() if not name.startswith("docs")}


@pytest.fixture(params=["python", "compiled"])
def analysis(request, monkeypatch):
    """Both analysis paths of ``TermMapper``: the per-text Python one and the compiled scan (forced from the
    first character; inherited by the analysis processes of a two-thread build, which fork)."""
    from rankstack.text.analysis import TermMapper

    monkeypatch.setattr(TermMapper, "compiled_after", None if request.param == "python" else 0)
    return request.param


@pytest.mark.parametrize("threads", [1, 2])
def test_synthetic_build_is_byte_identical(tmp_path, threads, analysis):
    idx = build_inverted_index(golden_docs(), tmp_path / "g", show_progress=False, threads=threads)
    assert _crcs(idx) == SYNTHETIC
    assert idx.docs["u2"].text == "中文 text with emoji 😀 and John’s Σίσυφος"


@pytest.mark.collection
@pytest.mark.skipif(not (DATA / "scifact").exists(), reason="needs ../shared/data")
@pytest.mark.parametrize("threads", [1, 2])
def test_scifact_build_is_byte_identical(tmp_path, threads, analysis):
    from rankstack.data import read_corpus

    docs = [d for _, d in zip(range(2000), read_corpus(DATA / "scifact" / "corpus.jsonl.gz"), strict=False)]
    idx = build_inverted_index(docs, tmp_path / "s", show_progress=False, threads=threads)
    assert _crcs(idx) == SCIFACT_2000


_TEXTS = st.text(
    alphabet="aZ09_ .,;:'-sSTHE\n\u00e9\u00c9\u0301\u2019\u2018\u00b7\u00a0\u200b\u4e2d\u03b2\u03a3\u2013\u00a9\u2122\ufe0f\u00b2the of and runs running",
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(_TEXTS, max_size=12),
    stemmer=st.sampled_from(["porter", "english", None]),
    lowercase=st.booleans(),
    possessive=st.booleans(),
    stopwords=st.sampled_from(["lucene", "none"]),
    compiled_after=st.sampled_from([None, 0, 40]),
    split=st.integers(0, 14),
)
def test_batch_analysis_equals_document_by_document(
    tmp_path_factory, texts, stemmer, lowercase, possessive, stopwords, compiled_after, split
):
    """The batched build (one lookup per token, or the compiled scan) gives the terms ``analyzer(text)``
    gives, in the same order and with the same ids as adding each document's bag of terms; the texts go
    in two batches, so the compiled path's table also serves tokens it learnt from the first (and with
    ``compiled_after=40`` the second batch may switch paths)."""
    from rankstack.index.inverted import _SegmentWriter, term_bags
    from rankstack.text import Analyzer
    from rankstack.text.analysis import TermMapper

    analyzer = Analyzer(stemmer=stemmer, lowercase=lowercase, possessive=possessive, stopwords=stopwords)
    # and an over-long token between new terms, mid-batch (that text takes the exact path; ids stay in order)
    middle = len(texts) // 2
    texts = [*texts[:middle], "fresh words " + "x" * 300 + " the end's newterm", *texts[middle:], "x" * 256]
    root = tmp_path_factory.mktemp("w")
    batch, single = _SegmentWriter(root / "a", store_docs=False), _SegmentWriter(root / "b", store_docs=False)
    mapper = TermMapper(analyzer, batch.vocab)
    mapper.compiled_after = compiled_after
    for part in (texts[:split], texts[split:]):
        batch.add_bags([str(i) for i in range(len(part))], term_bags(*mapper.map(part)), None)
    if compiled_after is None or compiled_after == 0:
        assert (mapper._table is not None) == (compiled_after == 0)
    for i, text in enumerate(texts):
        single.add(str(i), analyzer(text), None, None)
    assert dict(batch.vocab) == dict(single.vocab)
    for name in ("fwd_terms", "fwd_tfs", "doc_ends", "doclen"):
        assert getattr(batch, name) == getattr(single, name), name


def test_two_threads_write_the_same_document_store(tmp_path):
    """With threads, the store's blocks are compressed on a helper thread: same bytes, same order."""
    docs = golden_docs() * 1  # several store blocks
    docs += [Document(f"extra{i}", f"text {i} " * (i % 17)) for i in range(3000)]
    one = build_inverted_index(docs, tmp_path / "one", show_progress=False)
    two = build_inverted_index(docs, tmp_path / "two", show_progress=False, threads=2)
    files = lambda idx: idx.manifest["segments"][0]["files"]  # noqa: E731
    assert files(one) == files(two)
    assert two.docs["extra2999"].text == docs[-1].text


@pytest.mark.parametrize("vocab", [1, 300, 1 << 16, (1 << 16) + 1, 5_000_000])
def test_stable_term_order_is_numpys_stable_argsort(vocab):
    import numpy as np

    from rankstack.index.inverted import stable_term_order

    rng = np.random.default_rng(vocab)
    terms = rng.integers(0, vocab, 20_000).astype(np.uint32)  # many ties: stability is what is tested
    terms[:3] = [vocab - 1, 0, vocab - 1]
    assert np.array_equal(stable_term_order(terms, vocab), np.argsort(terms, kind="stable"))
    assert stable_term_order(terms[:0], vocab).size == 0
