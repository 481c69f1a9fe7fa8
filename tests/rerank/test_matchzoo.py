"""The MatchZoo family: formulas against plain-loop references, padding invariance, empty inputs, checkpoints,
the embedding sources, and training through the cross-encoders' trainer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rankstack.models.model_dir import ModelDirectoryError
from rankstack.rerank import InteractionReranker, load_reranker
from rankstack.rerank.kernels import dynamic_max_pool, kernel_mus, kernel_pooling, kernel_sigmas, matching_histogram
from rankstack.rerank.vocabulary import Vocabulary, static_matrix
from tests.rerank.conftest import ANIMALS, PLACES, toy_docs, toy_qrels, toy_queries, toy_ranking

torch = pytest.importorskip("torch")
FAMILIES = ["knrm", "conv-knrm", "drmm", "matchpyramid", "duet", "dssm", "tkl"]


def make_static_model(path: Path, dim: int = 16, seed: int = 0, quantised: bool = False) -> Path:
    """A Model2Vec-layout directory (word-level tokenizer.json, embeddings[, mapping, weights]) over the toy words."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    words = ["[UNK]", "[PAD]", ".", ",", *ANIMALS, *PLACES]
    words += sorted({w.lower() for d in toy_docs() for w in d.text.replace(".", " ").split()} - set(words))
    words += sorted({w for q in toy_queries().text.tolist() for w in q.split()} - set(words))
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    rng = np.random.default_rng(seed)
    if quantised:  # two tokens share each row, scaled per token, as model2vec's vocabulary quantisation does
        parts = {"embeddings": rng.normal(size=(len(words) // 2 + 1, dim)).astype(np.float32),
                 "mapping": (np.arange(len(words)) // 2).astype(np.int64),
                 "weights": rng.uniform(0.5, 2.0, size=len(words)).astype(np.float32)}  # fmt: skip
    else:
        parts = {"embeddings": rng.normal(size=(len(words), dim)).astype(np.float32)}
    save_file(parts, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"normalize": True}))
    return path


@pytest.fixture(scope="module")
def static(tmp_path_factory) -> Path:
    return make_static_model(tmp_path_factory.mktemp("static") / "model")


def _batch(rows, width):
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width))
    for r, x in enumerate(rows):
        ids[r, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[r, : len(x)] = 1.0
    return ids, mask


def _score(model, q, d) -> float:
    with torch.no_grad():
        return float(model(*_batch([q], len(q)), *_batch([d], len(d)))[0])


# ------------------------------------------------------------------------------------ formulas
def test_kernel_centres_and_widths_are_knrms():
    assert kernel_mus(11) == pytest.approx([1.0, 0.9, 0.7, 0.5, 0.3, 0.1, -0.1, -0.3, -0.5, -0.7, -0.9])
    assert kernel_sigmas(11) == [0.001] + [0.1] * 10
    with pytest.raises(ValueError):
        kernel_mus(1)


def test_kernel_pooling_equals_a_plain_loop():
    rng = np.random.default_rng(0)
    sim = rng.uniform(-1, 1, size=(2, 3, 5))
    sim[0, 1, 2] = 1.0  # an exact match
    q_mask = np.array([[1, 1, 1], [1, 1, 0]], dtype=float)
    d_mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=float)
    mus, sigmas = kernel_mus(5), kernel_sigmas(5, 0.2, 0.01)
    transforms = {"knrm": lambda x: 0.01 * math.log(max(x, 1e-10)), "log1p": math.log1p,
                  "cedr": lambda x: math.log(x + 1e-6)}  # fmt: skip
    for soft_tf, transform in transforms.items():
        got = kernel_pooling(torch.tensor(sim), torch.tensor(q_mask), torch.tensor(d_mask),
                             torch.tensor(mus, dtype=torch.float64), torch.tensor(sigmas, dtype=torch.float64),
                             soft_tf=soft_tf).numpy()  # fmt: skip
        want = np.zeros((2, 5))
        for b in range(2):
            for k, (mu, sigma) in enumerate(zip(mus, sigmas, strict=True)):
                for i in range(3):
                    if q_mask[b, i]:
                        soft = sum(math.exp(-((sim[b, i, j] - mu) ** 2) / (2 * sigma**2)) for j in range(5) if d_mask[b, j])
                        want[b, k] += transform(soft)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_matching_histogram_equals_a_plain_loop():
    rng = np.random.default_rng(1)
    sim = rng.uniform(-1, 1, size=(1, 2, 6))
    sim[0, 0, 0] = 1.0
    sim[0, 1, 1] = -1.0
    d_mask = np.array([[1, 1, 1, 1, 1, 0]], dtype=float)
    bins = 5
    got = matching_histogram(torch.tensor(sim), torch.tensor(d_mask), bins).numpy()
    want = np.zeros((1, 2, bins))
    for i in range(2):
        for j in range(5):
            s = sim[0, i, j]
            b = bins - 1 if s >= 1.0 else min(int((s + 1) / 2 * (bins - 1)), bins - 2)
            want[0, i, b] += 1
    np.testing.assert_allclose(got, np.log1p(want))


def test_dynamic_pooling_equals_adaptive_pooling_of_each_pair():
    """The batched pooling against torch's own adaptive max pooling of every pair's extent, values and
    gradients, with extents shorter than, equal to and longer than the grid (bins then overlap or repeat)."""
    rng = np.random.default_rng(3)
    grid = (3, 5)
    rows = torch.tensor([1, 2, 3, 7, 9, 4])
    cols = torch.tensor([1, 4, 5, 11, 13, 13])
    x = torch.tensor(rng.normal(size=(6, 2, 9, 13)), requires_grad=True)
    got = dynamic_max_pool(x, rows, cols, grid)
    want = torch.stack([torch.nn.functional.adaptive_max_pool2d(x[b, :, : rows[b], : cols[b]], grid) for b in range(6)])
    np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
    weights = torch.tensor(rng.normal(size=got.shape))
    (g_got,) = torch.autograd.grad((got * weights).sum(), x)
    (g_want,) = torch.autograd.grad((want * weights).sum(), x)
    np.testing.assert_allclose(g_got.numpy(), g_want.numpy())
    assert not g_got[0, :, 1:].any() and not g_got[0, :, :, 1:].any()  # nothing past a pair's extent


def test_knrm_equals_a_reference_computation(static):
    reranker = InteractionReranker(static, family="knrm", skip_punctuation=False)
    model = reranker.model
    q, d = [5, 6], [6, 7, 8, 5]
    got = _score(model, q, d)
    table = model.embedding.weight.detach().numpy().astype(np.float64)
    norm = lambda v: v / np.linalg.norm(v)  # noqa: E731
    feats = []
    for mu, sigma in zip(kernel_mus(11), kernel_sigmas(11), strict=True):
        total = 0.0
        for i in q:
            soft = sum(math.exp(-((norm(table[i]) @ norm(table[j]) - mu) ** 2) / (2 * sigma**2)) for j in d)
            total += math.log1p(soft)
        feats.append(total)
    want = float((model.out.weight.detach().numpy().astype(np.float64) @ np.array(feats))[0] + float(model.out.bias.detach()))
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_drmm_equals_a_reference_computation(static):
    model = InteractionReranker(static, family="drmm", skip_punctuation=False, bins=7).model
    q, d = [5, 6, 9], [6, 7, 8, 5, 5]
    got = _score(model, q, d)
    table = model.embedding.weight.detach().numpy().astype(np.float64)
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    w1, b1 = model.ffn[0].weight.detach().numpy(), model.ffn[0].bias.detach().numpy()
    w2, b2 = model.ffn[2].weight.detach().numpy(), model.ffn[2].bias.detach().numpy()
    gate = model.gate.weight.detach().numpy()[0]
    logits = np.array([gate @ table[i] for i in q])
    g = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    want = 0.0
    for gi, i in zip(g, q, strict=True):
        hist = np.zeros(7)
        for j in d:
            s = unit[i] @ unit[j]
            hist[6 if s >= 1 - 1e-6 else min(int((s + 1) / 2 * 6), 5)] += 1
        z = w2 @ np.tanh(w1 @ np.log1p(hist) + b1) + b2
        want += gi * float(z[0])
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_dssm_is_the_scaled_cosine_of_two_towers(static):
    model = InteractionReranker(static, family="dssm", skip_punctuation=False, hidden=[8]).model
    q, d = [5, 6], [7, 8, 9]
    got = _score(model, q, d)
    table = model.embedding.weight.detach().numpy().astype(np.float64)
    wq, bq = model.q_tower[0].weight.detach().numpy(), model.q_tower[0].bias.detach().numpy()
    wd, bd = model.d_tower[0].weight.detach().numpy(), model.d_tower[0].bias.detach().numpy()
    a = np.tanh(wq @ table[q].mean(0) + bq)
    b = np.tanh(wd @ table[d].mean(0) + bd)
    assert got == pytest.approx(10.0 * a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_never_changes_a_score(static, family):
    """A pair scores the same alone and in a batch padded to longer texts (masks, not zeros, decide)."""
    model = InteractionReranker(static, family=family, skip_punctuation=False).model.eval()
    pairs = [([5, 6], [6, 7, 8]), ([9, 10, 11, 12], [5, 6, 7, 8, 9, 10, 11]), ([7], [7])]
    q_ids, q_mask = _batch([p[0] for p in pairs], 4)
    d_ids, d_mask = _batch([p[1] for p in pairs], 9)
    with torch.no_grad():
        batched = model(q_ids, q_mask, d_ids, d_mask).numpy()
        alone = [_score(model, q, d) for q, d in pairs]
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_queries_and_documents_score_finitely_with_a_warning(static, family):
    reranker = InteractionReranker(static, family=family)
    with pytest.warns(UserWarning, match="no tokens left"):
        scores = reranker.score_pairs(["", "cat", "...", "dog river"], ["the cat", "", "dog", "the dog river"])
    assert np.isfinite(scores).all()


# ------------------------------------------------------------------------------------ embedding sources
def test_static_vectors_are_model2vecs(tmp_path):
    path = make_static_model(tmp_path / "q", quantised=True)
    matrix = static_matrix(path / "model.safetensors")
    model2vec = pytest.importorskip("model2vec")
    reference = model2vec.StaticModel.from_pretrained(path, normalize=False, force_download=False)
    ids = list(range(len(matrix)))
    np.testing.assert_allclose(matrix, reference._encode_helper(ids), rtol=1e-6)


def test_minilm_vectors_are_its_input_embeddings(minilm):
    import transformers

    vocab = Vocabulary.load(minilm)
    encoder = transformers.AutoModel.from_pretrained(minilm)
    np.testing.assert_array_equal(vocab.matrix, encoder.embeddings.word_embeddings.weight.detach().numpy())
    ids, cut = vocab.ids(["Vitamin D, bone density!", "a b c d e"], limit=3)
    assert cut == 2 and len(ids[1]) == 3
    assert vocab.tokenizer.decode(ids[0]) == "vitamin d bone"  # no [CLS]/[SEP], punctuation dropped


def test_a_tokenizer_larger_than_the_embeddings_is_refused(tmp_path, static):
    from safetensors.numpy import load_file, save_file

    bad = make_static_model(tmp_path / "bad")
    parts = load_file(str(bad / "model.safetensors"))
    save_file({"embeddings": parts["embeddings"][:5]}, str(bad / "model.safetensors"))
    with pytest.raises(ModelDirectoryError, match="belongs to another model"):
        InteractionReranker(bad, family="knrm")


# ------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("family", ["conv-knrm", "matchpyramid"])
def test_a_saved_model_scores_the_same_after_loading(tmp_path, static, family):
    first = InteractionReranker(static, family=family, filters=8) if family == "conv-knrm" else InteractionReranker(
        static, family=family, channels=[4, 4])  # fmt: skip
    queries, docs = ["where does the cat live", "owl"], ["The cat lives near the river.", "An owl of the forest."]
    before = first.score_pairs(queries, docs)
    saved = first.save(tmp_path / "saved")
    again = InteractionReranker(saved)
    assert again.family == family and again.settings == first.settings
    np.testing.assert_allclose(again.score_pairs(queries, docs), before, rtol=1e-6)
    assert load_reranker(saved).family == family
    with pytest.raises(ValueError, match=f"holds a {family} model"):
        InteractionReranker(saved, family="knrm")


def test_bad_checkpoints_are_refused_with_what_to_do(tmp_path, static):
    saved = InteractionReranker(static, family="knrm").save(tmp_path / "m")
    config = json.loads((saved / "interaction_reranker.json").read_text())
    (saved / "tokenizer.json").rename(saved / "t.json")
    with pytest.raises(ModelDirectoryError, match=r"no tokenizer\.json"):
        InteractionReranker(saved)
    (saved / "t.json").rename(saved / "tokenizer.json")
    (saved / "interaction_reranker.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ModelDirectoryError, match="format_version 99"):
        InteractionReranker(saved)
    with pytest.raises(ValueError, match="pass family="):
        InteractionReranker(static)
    with pytest.raises(ValueError, match="family must be one of"):
        InteractionReranker(static, family="bm42")
    with pytest.raises(TypeError, match="no setting"):
        InteractionReranker(static, family="knrm", filters=3)


# ------------------------------------------------------------------------------------ as a stage, trained
def test_reranks_a_ranking_and_long_documents_are_cut_with_one_warning(static):
    docs = {d.docid: d.text for d in toy_docs()}
    reranker = InteractionReranker(static, docs=docs, family="knrm", max_length=4)
    with pytest.warns(UserWarning, match="longer than max_length=4"):
        out = reranker(toy_ranking(3))
    assert len(out) == len(toy_ranking(3)) and np.isfinite(out.score).all()


@pytest.mark.parametrize("family", ["knrm", "duet"])
def test_trains_with_the_rerankers_trainer_and_learns_the_toy_task(tmp_path, static, family):
    from rankstack.eval import evaluate
    from rankstack.train import RerankConfig, train_reranker

    docs = toy_docs()
    config = RerankConfig(epochs=8, batch_size=4, learning_rate=1e-2, head_learning_rate=1e-1, num_negatives=3,
                          negative_depth=6, warmup_ratio=0.0, show_progress=False, seed=3)  # fmt: skip
    start = InteractionReranker(static, family=family)
    final = train_reranker(start, toy_queries(), toy_qrels(), docs, tmp_path / "out", config=config)
    trained = InteractionReranker(final, docs={d.docid: d.text for d in docs})
    ranking = toy_ranking(6)
    mrr = evaluate(trained(ranking), toy_qrels(), ["RR"])["RR"]
    assert mrr > 0.9, mrr
    assert (final / "trainer_state.json").exists()


def test_the_packaged_static_model_gives_model2vecs_vectors():
    pytest.importorskip("static_model")
    model2vec = pytest.importorskip("model2vec")
    from rankstack.models.model_dir import packaged_path

    vocab = Vocabulary.load("static-model")
    reference = model2vec.StaticModel.from_pretrained(packaged_path("static-model"), normalize=False,
                                                      force_download=False)  # fmt: skip
    ids, _ = vocab.ids(["Vitamin D deficiency and bone loss"], limit=32, skip_punctuation=False)
    assert ids[0] == reference.tokenize(["Vitamin D deficiency and bone loss"])[0]
    np.testing.assert_allclose(vocab.matrix[ids[0]], reference._encode_helper(ids[0]), rtol=1e-6)
    scores = InteractionReranker("static-model", family="knrm").score_pairs(["bone loss"], ["vitamin D and bone loss"])
    assert np.isfinite(scores).all()


def test_training_resumes_exactly_from_a_checkpoint(tmp_path, static):
    import shutil

    from rankstack.train import RerankConfig, train_reranker

    config = RerankConfig(epochs=2, batch_size=6, learning_rate=1e-2, head_learning_rate=1e-1, num_negatives=2,
                          negative_depth=4, save_every=2, keep_checkpoints=None, show_progress=False)  # fmt: skip
    whole = train_reranker(InteractionReranker(static, family="tkl", chunk=4, overlap=1, region=4, feedforward=16),
                           toy_queries(), toy_qrels(), toy_docs(), tmp_path / "a", config=config)  # fmt: skip
    run = tmp_path / "b"
    train_reranker(InteractionReranker(static, family="tkl", chunk=4, overlap=1, region=4, feedforward=16),
                   toy_queries(), toy_qrels(), toy_docs(), run, config=config)  # fmt: skip
    shutil.rmtree(run / "final")  # as if killed after checkpoint-2
    resumed = train_reranker(InteractionReranker(static, family="tkl", chunk=4, overlap=1, region=4, feedforward=16),
                             toy_queries(), toy_qrels(), toy_docs(), run, config=config, resume=True)  # fmt: skip
    a, b = InteractionReranker(whole).model.state_dict(), InteractionReranker(resumed).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
