"""DeepCT / HDCT on a tiny random BERT: targets, word-to-term alignment against a plain loop, DeepCT-Index
(frequencies rewritten, BM25 as usual), and that training learns the targets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rankstack.index import build_term_index
from rankstack.sparse.deepct import DeepCT, query_term_recall
from rankstack.text.analysis import Analyzer
from rankstack.train.deepct import DeepCTTrainer, train_deepct
from rankstack.train.trainer import TrainConfig
from rankstack.types import Document, Qrels, Queries
from tests.helpers import brute_force_bm25
from tests.rerank.conftest import make_tiny_bert_encoder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

DOCS = [
    Document("d0", "Cats sleep on warm mats. The cat's mat is red."),
    Document("d1", "Vitamin D helps bone density in older adults."),
    Document("d2", "Dogs and cats play in the garden all day."),
]
QUERIES = Queries(["q0", "q1", "q2"], ["sleeping cats", "cat mats", "vitamin bone"])
QRELS = Qrels(["q0", "q1", "q2"], ["d0", "d0", "d1"], [1, 1, 2])


@pytest.fixture()
def encoder_dir(tmp_path):
    return make_tiny_bert_encoder(tmp_path / "bert")


def fresh(path, **kw) -> DeepCT:
    with pytest.warns(UserWarning, match="no DeepCT head"):
        return DeepCT(path, device="cpu", **kw)


def test_query_term_recall():
    targets = query_term_recall(QUERIES, QRELS)
    assert targets["d0"] == {"sleep": 0.5, "cat": 1.0, "mat": 0.5}  # analysed: stemmed, stopwords gone
    assert targets["d1"] == {"vitamin": 1.0, "bone": 1.0} and "d2" not in targets


def test_term_weights_are_each_terms_largest_first_subword_prediction(encoder_dir):
    deepct = fresh(encoder_dir)
    got = deepct.term_weights([d.text for d in DOCS])
    tok = deepct.tokenizer
    analyzer = Analyzer()
    for doc, weights in zip(DOCS, got, strict=True):
        enc = tok(doc.text, return_tensors="pt")
        with torch.no_grad():
            pred = deepct.model(**enc).logits[0, :, 0].numpy()
        want: dict[str, float] = {}
        seen = set()
        for pos, wid in enumerate(enc.word_ids(0)):
            if wid is None or wid in seen:
                continue
            seen.add(wid)
            span = enc.word_to_chars(0, wid)
            terms = analyzer(doc.text[span.start : span.end])
            if terms:
                want[terms[0]] = max(want.get(terms[0], -np.inf), float(pred[pos]))
        assert weights.keys() == want.keys()
        np.testing.assert_allclose([weights[t] for t in want], list(want.values()), rtol=1e-5, atol=1e-6)
    hdct = fresh(encoder_dir, passage_words=4).term_weights([DOCS[0].text])[0]
    assert set(hdct) <= set(got[0]) | {"cat"} and all(w >= 0 for w in hdct.values())


def test_deepct_index_is_bm25_over_rewritten_frequencies(encoder_dir, tmp_path):
    deepct = fresh(encoder_dir)
    bags = list(deepct.bags(DOCS, show_progress=False))
    assert all(isinstance(n, int) and n > 0 for _, bag, _ in bags for n in bag.values())
    index = build_term_index(bags, tmp_path / "idx", show_progress=False)
    assert index.docs["d1"].text == DOCS[1].text
    # the same ranking as BM25 over documents written out with each term repeated tf times
    written = [Document(d, " ".join(t for t, n in bag.items() for _ in range(n))) for d, bag, _ in bags]
    run = index.bm25(k=10)(Queries(["x"], ["cat bone garden"]))
    want = brute_force_bm25(written, "cat bone garden", analyzer=Analyzer(stopwords="none", stemmer=None))
    assert dict(zip(run.docid.tolist(), run.score.tolist(), strict=True)) == pytest.approx(want, rel=1e-5)


def test_training_moves_predictions_towards_query_term_recall(encoder_dir, tmp_path):
    deepct = fresh(encoder_dir)
    targets = query_term_recall(QUERIES, QRELS)
    texts = {d.docid: d.text for d in DOCS}

    def error() -> float:
        got = deepct.term_weights([texts[d] for d in targets])
        return float(np.mean([(w - targets[d].get(t, 0.0)) ** 2 for d, ws in zip(targets, got, strict=True) for t, w in ws.items()]))

    before = error()
    config = TrainConfig(epochs=30, batch_size=2, learning_rate=3e-3, log_every=0, seed=1, show_progress=False)
    DeepCTTrainer(deepct, targets, texts, config, tmp_path / "run").train()
    assert error() < before / 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        final = train_deepct(encoder_dir, QUERIES, QRELS, DOCS, tmp_path / "api", config=config.replace(epochs=1))
    assert (final / "model.safetensors").exists()
    DeepCT(final, device="cpu")  # a trained checkpoint: no warning
