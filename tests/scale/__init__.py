
def assert_nearly_same_hits(got, want, qids, min_common: int, tolerance: float) -> None:
    """Per query: at least ``min_common`` documents in both rankings, each scored alike within ``tolerance``
    (shards encode their own documents, and an encoder's rounding depends on the batch, so near-ties may swap)."""
    for qid in qids:
        g = dict(zip(got.for_qids([qid]).docid.tolist(), got.for_qids([qid]).score.tolist(), strict=True))
        w = dict(zip(want.for_qids([qid]).docid.tolist(), want.for_qids([qid]).score.tolist(), strict=True))
        common = g.keys() & w.keys()
        assert len(common) >= min_common, (qid, g, w)
        assert all(abs(g[d] - w[d]) < tolerance for d in common), (qid, g, w)
