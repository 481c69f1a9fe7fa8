"""TKL: local self-attention over overlapping chunks, region kernel pooling with saturation, top-region picks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rankstack.rerank import InteractionReranker
from tests.rerank.test_matchzoo import _batch, make_static_model

torch = pytest.importorskip("torch")
from rankstack.rerank.tkl import NEIGHBOURS, chunk_document  # noqa: E402


@pytest.fixture(scope="module")
def tkl(tmp_path_factory):
    static = make_static_model(tmp_path_factory.mktemp("tkl") / "m")
    reranker = InteractionReranker(static, family="tkl", chunk=6, overlap=2, region=4, region_stride=2, top_regions=2,
                                   feedforward=32)  # fmt: skip
    return reranker.model.eval()


def test_chunks_cover_their_tokens_with_overlap_on_both_sides():
    x = torch.arange(1, 11, dtype=torch.float32)[None, :, None]  # tokens 1..10
    chunks, masks = chunk_document(x, torch.ones(1, 10), chunk=4, overlap=1)
    assert chunks.shape == (1, 3, 6, 1)
    assert chunks[0, :, :, 0].tolist() == [[0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9], [8, 9, 10, 0, 0, 0]]
    assert masks[0].tolist() == [[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]


def test_attention_is_local_to_a_chunk_and_its_overlap(tkl):
    """A token's vector changes when a token within its extended chunk changes, never when a far one does."""
    ids = torch.arange(5, 25)[None]  # 20 tokens: chunks [0,6) [6,12) [12,18) [18,20), overlap 2
    mask = torch.ones(1, 20)
    with torch.no_grad():
        base = tkl._document(tkl.embed(ids, mask), mask)
        near, far = ids.clone(), ids.clone()
        near[0, 7] = 30  # inside token 3's chunk [0, 6) extended to [0, 8)
        far[0, 15] = 30  # outside it
        moved_near = tkl._document(tkl.embed(near, mask), mask)
        moved_far = tkl._document(tkl.embed(far, mask), mask)
    assert not torch.allclose(base[0, 3], moved_near[0, 3])
    torch.testing.assert_close(base[0, 3], moved_far[0, 3])


def test_region_scores_equal_a_plain_loop(tkl, monkeypatch):
    q_ids, q_mask = _batch([[5, 6, 7]], 3)
    d_ids, d_mask = _batch([list(range(5, 18))], 13)
    captured = {}
    real = type(tkl)._top_regions

    def spy(self, scores, valid):
        captured["scores"], captured["valid"] = scores.detach().clone(), valid.clone()
        return real(self, scores, valid)

    monkeypatch.setattr(type(tkl), "_top_regions", spy)
    with torch.no_grad():
        tkl(q_ids, q_mask, d_ids, d_mask)
        q = tkl.contextualise(tkl.embed(q_ids, q_mask), q_mask)[0].double().numpy()
        d = tkl._document(tkl.embed(d_ids, d_mask), d_mask)[0].double().numpy()
    mus, sigmas = tkl.mus.double().numpy(), tkl.sigmas.double().numpy()
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    w_q = tkl.sat_query.weight.detach().double().numpy()[0]
    norm, sat = tkl.sat_norm, tkl.sat
    starts = range(0, 13, 2)  # every start before the end, the last regions running past it
    want = []
    for start in starts:
        feats = np.zeros(len(mus))
        for i in range(3):
            tokens = range(start, min(start + 4, 13))
            x = torch.tensor([[float(w_q @ q[i]), float(len(tokens))]])
            a, b, c = sat(norm(x))[0].detach().double().numpy()
            for k in range(len(mus)):
                tf = sum(math.exp(-((unit(q[i]) @ unit(d[j]) - mus[k]) ** 2) / (2 * sigmas[k] ** 2))
                         for j in tokens)  # fmt: skip
                feats[k] += a * max(tf, 1e-10) ** (1 / max(b, 1.0)) - c
        want.append(float(tkl.kernel_out.weight.detach().double().numpy()[0] @ feats))
    np.testing.assert_allclose(captured["scores"][0].double().numpy(), want, rtol=2e-4, atol=2e-4)
    assert captured["valid"].all()


def test_top_regions_are_picked_greedily_without_overlap(tkl):
    """Region 4 tokens, stride 2: a pick suppresses starts fewer than 4 tokens away (its direct neighbours)."""
    scores = torch.tensor([[0.1, 0.9, 0.8, 0.2, 0.7, 0.3, 0.05]])
    valid = torch.tensor([[True] * 6 + [False]])
    with torch.no_grad():
        got = float(tkl._top_regions(scores, valid))
    s, last, weights = scores[0].tolist(), 5, tkl.region_weights.detach().tolist()
    alive, picks = {i for i in range(7) if valid[0, i]}, []
    for _ in range(2):  # the plain greedy loop
        best = max(alive, key=lambda i: s[i])
        picks.append(best)
        alive -= {i for i in alive if abs(i - best) * 2 < 4}
    assert picks == [1, 4]  # region 2 (0.8) overlaps region 1 and is skipped
    values = [s[min(max(p + o, 0), last)] for o in NEIGHBOURS for p in picks]
    assert got == pytest.approx(sum(v * w for v, w in zip(values, weights, strict=True)), rel=1e-6)


def test_saturation_stays_finite_when_b_is_small(tkl):
    with torch.no_grad():
        old = tkl.sat.bias.clone()
        tkl.sat.bias[1] = 0.01  # b would make tf^(1/b) = tf^100 overflow without the floor
        q_ids, q_mask = _batch([[5, 6], [7]], 2)
        d_ids, d_mask = _batch([[5 + i % 20 for i in range(30)], [7, 7, 7]], 30)
        out = tkl(q_ids, q_mask, d_ids, d_mask)
        tkl.sat.bias.copy_(old)
    assert torch.isfinite(out).all()


def test_long_documents_score_the_same_alone_and_in_a_batch(tkl):
    pairs = [([5, 6], [5 + i % 20 for i in range(40)]), ([9, 10, 11], list(range(8, 20))), ([7], [7, 8])]
    q_ids, q_mask = _batch([p[0] for p in pairs], 3)
    d_ids, d_mask = _batch([p[1] for p in pairs], 40)
    with torch.no_grad():
        batched = tkl(q_ids, q_mask, d_ids, d_mask).numpy()
        alone = [float(tkl(*_batch([q], len(q)), *_batch([d], len(d)))[0]) for q, d in pairs]
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-5)
