"""Top-k query processing over impact postings, compiled with numba.

A query is a set of terms, each with a weight and a postings list of (doc, impact); a document's score
is ``sum_t weight_t * impact_t(doc)``, summed in float64 in the query's term order and rounded once to
float32, as Lucene returns ``(float)`` of a double sum. Ties in the float32 score break by document
number ascending (Lucene's order too). Each (score, doc) pair is packed into one uint64 *key* whose
ascending order is the ranking order, so selection and sorting compare plain integers:
``key = (~float_bits(score) << 32) | doc`` (scores are positive, so their IEEE bits grow with them).

Two algorithms return the *same* top k (tested bit for bit):

* ``exhaustive``: term-at-a-time accumulation into a dense score array, then an MSD radix *select* of
  the k smallest keys and an LSD radix sort of those: no heap, few unpredictable branches;
* ``maxscore``: document-at-a-time MaxScore (Turtle & Flood, 1995): terms are ordered by their score
  upper bound, and terms whose bounds together cannot lift a document above the current k-th score
  are "non-essential": they are only probed, never used to find candidates. Pays off when k is
  small against the number of matching documents.

Only documents with a positive score are returned. Batches run one query per iteration of a
``prange`` over chunks of queries, each chunk with its own scratch arrays.
"""

from __future__ import annotations

import numba
import numpy as np

from rankstack.jit import njit

_MARGIN = 1e-9  # relative slack on bound comparisons: summation order differs from the bound's
_LOW32 = np.uint64(0xFFFFFFFF)
_HEAP_MAX_K = 64  # up to this k, a heap beats radix selection
_DENSE_BLOCK = 32  # documents per block maximum in the small-k dense scan
_ACC_BLOCK = 1 << 14  # documents per sparse accumulation block: 128 KiB of float64 scores stay in L2


@njit(inline="always")
def _pack(bits, doc):  # pragma: no cover - compiled
    return ((_LOW32 - np.uint64(bits)) << np.uint64(32)) | np.uint64(doc)


# ------------------------------------------------------------------------------------------ radix
@njit()
def _insertion_sort(a, n):  # pragma: no cover - compiled
    for i in range(1, n):
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@njit()
def _varying_bits(a, n):  # pragma: no cover - compiled
    """One past the highest bit that differs among ``a[:n]`` (0 when all are equal)."""
    lo = a[0]
    hi = a[0]
    for i in range(1, n):
        lo = min(lo, a[i])
        hi = max(hi, a[i])
    diff = lo ^ hi
    top = 0
    while top < 64 and (diff >> np.uint64(top)) > np.uint64(0):
        top += 1
    return top


@njit()
def radix_sort(a, n, tmp, low_bit):  # pragma: no cover - compiled
    """Stable LSD radix sort of ``a[:n]`` by bits ``low_bit..63`` (8-bit digits; digits that are the same
    in every key are skipped). With ``low_bit=32`` it sorts by score alone and keeps the input order of
    ties, which is document order when the keys were gathered in document order."""
    if n <= 48 and low_bit == 0:
        _insertion_sort(a, n)
        return
    if n <= 1:
        return
    top = _varying_bits(a, n)
    if top <= low_bit:
        return
    hist = np.empty(256, dtype=np.int64)
    src, dst = a, tmp
    swapped = False
    for shift in range(low_bit, top, 8):
        sh = np.uint64(shift)
        hist[:] = 0
        for i in range(n):
            hist[(src[i] >> sh) & np.uint64(255)] += 1
        if hist[(src[0] >> sh) & np.uint64(255)] == n:
            continue
        total = 0
        for b in range(256):
            c = hist[b]
            hist[b] = total
            total += c
        for i in range(n):
            x = src[i]
            b = (x >> sh) & np.uint64(255)
            dst[hist[b]] = x
            hist[b] += 1
        src, dst = dst, src
        swapped = not swapped
    if swapped:
        a[:n] = src[:n]


@njit()
def radix_select(keys, n, k, out, low_bit):  # pragma: no cover - compiled
    """Write the ``k`` smallest of ``keys[:n]`` by bits ``low_bit..63`` to ``out[:k]``; ``keys`` is scratch
    and ``out`` needs ``n + 1`` slots. Stable (equal keys keep their input order, and the first ones
    win), so ``low_bit=32`` selects by score with ties going to the earlier documents.

    MSD radix selection on 8-bit digits, starting at the highest bit where the keys differ (scores of
    one query share their top bits, so the first digit spreads well); branch-free partitioning.
    """
    top = _varying_bits(keys, n)
    pos = 0
    hist = np.empty(256, dtype=np.int64)
    shift = max(top - 8, low_bit)
    while True:
        sh = np.uint64(shift)
        hist[:] = 0
        for i in range(n):
            hist[(keys[i] >> sh) & np.uint64(255)] += 1
        need = k - pos
        below = 0
        b = 0
        while below + hist[b] < need:
            below += hist[b]
            b += 1
        ub = np.uint64(b)
        m = 0
        for i in range(n):
            x = keys[i]
            digit = (x >> sh) & np.uint64(255)
            out[pos] = x
            pos += digit < ub
            keys[m] = x
            m += digit == ub
        n = m
        if below + hist[b] == need or shift == low_bit:
            for i in range(k - pos):
                out[pos + i] = keys[i]
            return
        shift = max(shift - 8, low_bit)


@njit()
def heap_select(keys, n, k, heap):  # pragma: no cover - compiled
    """The ``k`` smallest of ``keys[:n]`` (distinct) into ``heap[:k]`` (a max-heap): for small k, one
    cheap, well-predicted comparison per key once the heap is full. Returns how many."""
    size = 0
    for i in range(n):
        x = keys[i]
        if size < k or x < heap[0]:
            size = _heap_offer(heap, size, k, x)
    return size


@njit()
def _finish(keys, n, k, sel, tmp, low_bit):  # pragma: no cover - compiled
    """The k best of ``keys[:n]``, sorted, into ``sel[:k]`` (``n + 1`` slots); returns how many."""
    if n > k and k <= _HEAP_MAX_K:
        n = heap_select(keys, n, k, sel)
        low_bit = 0  # a heap is not stable: sort by the whole key (score, then document)
    elif n > k:
        radix_select(keys, n, k, sel, low_bit)
        n = k
    else:
        sel[:n] = keys[:n]
    radix_sort(sel, n, tmp, low_bit)
    return n


# ------------------------------------------------------------------------------------------ algorithms
@njit(fastmath=True)
def _block_maxima(acc, out):  # pragma: no cover - compiled
    """``out[b]`` = max(0, largest of ``acc`` in block b of ``_DENSE_BLOCK`` documents), as float32.
    Fixed-size blocks and four running maxima let the compiler vectorise it (no NaNs here)."""
    n = len(acc)
    full = n // _DENSE_BLOCK
    grid = acc[: full * _DENSE_BLOCK].reshape(full, _DENSE_BLOCK)
    for blk in range(full):
        m0 = m1 = m2 = m3 = 0.0
        for d in range(0, _DENSE_BLOCK, 4):
            m0 = max(m0, grid[blk, d])
            m1 = max(m1, grid[blk, d + 1])
            m2 = max(m2, grid[blk, d + 2])
            m3 = max(m3, grid[blk, d + 3])
        out[blk] = np.float32(max(max(m0, m1), max(m2, m3)))
    if full < len(out):
        m = 0.0
        for d in range(full * _DENSE_BLOCK, n):
            m = max(m, acc[d])
        out[full] = np.float32(m)


@njit()
def _kth_largest(values, k):  # pragma: no cover - compiled
    """The k-th largest of ``values`` (k <= len(values)) by insertion into a sorted top k: for small k,
    one comparison per value."""
    top = np.full(k, -np.inf, dtype=values.dtype)  # descending
    for x in values:
        if x > top[k - 1]:
            i = k - 1
            while i > 0 and top[i - 1] < x:
                top[i] = top[i - 1]
                i -= 1
            top[i] = x
    return top[k - 1]


@njit()
def _dense_top(acc, k, cand, score32, keys, sel, tmp):  # pragma: no cover - compiled
    """Top k of a dense accumulator into ``sel`` (resetting it), reading most of it once, vectorised.

    The maxima of blocks of ``_DENSE_BLOCK`` documents come first. At least k documents score at least
    the k-th largest block maximum (the floor), so only blocks reaching it can hold a top-k document,
    and in them only documents reaching it; typically about k candidates remain, gathered without
    branches and then sorted. The floor is compared in float32, the precision scores are ranked in
    (rounding is monotonic), so ties at the cut come out exactly as a full sort orders them."""
    n = len(acc)
    nb = (n + _DENSE_BLOCK - 1) // _DENSE_BLOCK
    bmax = np.empty(nb, dtype=np.float32)
    _block_maxima(acc, bmax)
    floor = _kth_largest(bmax, k) if nb >= k else np.float32(0.0)
    m = 0
    for blk in range(nb):
        if bmax[blk] >= floor and bmax[blk] > np.float32(0.0):
            for d in range(blk * _DENSE_BLOCK, min(n, (blk + 1) * _DENSE_BLOCK)):
                s = np.float32(acc[d])
                cand[m] = d
                score32[m] = s
                m += (s >= floor) & (s > np.float32(0.0))
    acc[:] = 0.0
    bits = score32.view(np.uint32)
    for i in range(m):
        keys[i] = _pack(bits[i], cand[i])
    return _finish(keys, m, k, sel, tmp, 0)


@njit()
def _accumulate_block(docs, imps, pos, ends, weights, base, acc, cand, n):  # pragma: no cover - compiled
    """Add every term's postings for documents ``base .. base + len(acc) - 1`` into ``acc[d - base]``, in
    the query's term order, moving the cursors ``pos`` past them; each document is appended to ``cand``
    when it first gets a positive contribution. Returns the new candidate count."""
    end = base + len(acc)
    for t in range(len(pos)):
        w = weights[t]
        p = pos[t]
        stop = p + np.searchsorted(docs[p : ends[t]], end)
        for i in range(p, stop):
            d = np.int64(docs[i])
            imp = imps[i]
            cand[n] = d
            n += (acc[d - base] == 0.0) & (imp > 0.0)
            acc[d - base] += w * imp
        pos[t] = stop
    return n


@njit()
def exhaustive_one(docs, imps, starts, ends, weights, k, acc, cand, score32, keys, sel, tmp):  # pragma: no cover
    """Term-at-a-time top k into ``sel[:k]`` (sorted keys). ``acc`` (float64, all zero) and ``cand``,
    ``score32``, ``keys``, ``sel``, ``tmp`` have one slot per document plus one; ``acc`` is left all zero."""
    num_docs = len(acc)
    postings = 0
    for t in range(len(starts)):
        postings += ends[t] - starts[t]
    n = 0
    if 4 * postings >= num_docs:  # dense enough: accumulate, then scan every document in order
        low_bit = 32  # candidates are in document order: select and sort by score alone, stably
        for t in range(len(starts)):
            w = weights[t]
            for p in range(starts[t], ends[t]):
                acc[docs[p]] += w * imps[p]
        if k <= _HEAP_MAX_K:  # small k: block maxima leave about k candidates
            return _dense_top(acc, k, cand, score32, keys, sel, tmp)
        for d in range(num_docs):
            cand[n] = d
            n += acc[d] > 0.0
        for i in range(n):
            d = cand[i]
            score32[i] = acc[d]
            acc[d] = 0.0
    else:
        # sparse: remember each document when it first gets a positive contribution. Documents go in
        # blocks of _ACC_BLOCK through one small accumulator that stays in cache: scattered into a
        # collection-sized array, nearly every posting of a large collection is a cache (and TLB) miss
        low_bit = 0
        block = acc[: min(num_docs, _ACC_BLOCK)]
        pos = starts.copy()
        for base in range(0, num_docs, _ACC_BLOCK):
            first = n
            n = _accumulate_block(docs, imps, pos, ends, weights, base, block, cand, n)
            for i in range(first, n):
                j = cand[i] - base
                score32[i] = block[j]
                block[j] = 0.0
    bits = score32.view(np.uint32)
    for i in range(n):
        keys[i] = _pack(bits[i], cand[i])
    return _finish(keys, n, k, sel, tmp, low_bit)


@njit()
def _heap_sift_down(h, size, i):  # pragma: no cover - compiled
    """Max-heap of keys (root = the worst of the k best)."""
    x = h[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and h[child + 1] > h[child]:
            child += 1
        if h[child] > x:
            h[i] = h[child]
            i = child
        else:
            break
    h[i] = x


@njit()
def _heap_offer(h, size, k, key):  # pragma: no cover - compiled
    if size < k:
        i = size
        while i > 0:
            parent = (i - 1) >> 1
            if h[parent] < key:
                h[i] = h[parent]
                i = parent
            else:
                break
        h[i] = key
        return size + 1
    if key < h[0]:
        h[0] = key
        _heap_sift_down(h, size, 0)
    return size


@njit()
def maxscore_one(docs, imps, starts, ends, weights, ubs, k, heap, tmp, out):  # pragma: no cover
    one = np.empty(1, dtype=np.float32)  # to read a float32's bits and back
    one_bits = one.view(np.uint32)
    m = len(starts)
    order = np.argsort(ubs)  # ascending upper bound
    cum = np.empty(m, dtype=np.float64)  # cum[i] = sum of the i+1 smallest bounds
    running = 0.0
    for i in range(m):
        running += ubs[order[i]]
        cum[i] = running
    pos = starts.copy()
    contrib = np.zeros(m, dtype=np.float64)
    size = 0
    threshold = 0.0  # float32 score of the k-th best so far, once there are k
    first_ess = 0
    big = np.iinfo(np.int64).max
    while first_ess < m:
        cand = big
        for i in range(first_ess, m):
            t = order[i]
            if pos[t] < ends[t]:
                d = np.int64(docs[pos[t]])
                if d < cand:
                    cand = d
        if cand == big:
            break
        partial = 0.0
        for i in range(first_ess, m):
            t = order[i]
            if pos[t] < ends[t] and docs[pos[t]] == cand:
                c = weights[t] * imps[pos[t]]
                contrib[t] = c
                partial += c
                pos[t] += 1
        alive = True
        for i in range(first_ess - 1, -1, -1):
            # a score below the threshold rounds to at most it, and ties lose to the earlier documents
            if size == k and (partial + cum[i]) * (1.0 + _MARGIN) < threshold:
                alive = False
                break
            t = order[i]
            if pos[t] < ends[t] and docs[pos[t]] < cand:
                pos[t] += np.searchsorted(docs[pos[t] : ends[t]], cand)
            if pos[t] < ends[t] and docs[pos[t]] == cand:
                c = weights[t] * imps[pos[t]]
                contrib[t] = c
                partial += c
        if alive:
            score = 0.0
            for t in range(m):  # the query's own term order: the same sum as exhaustive_one
                score += contrib[t]
            if score > 0.0:
                one[0] = score
                key = _pack(one_bits[0], cand)
                if size < k or key < heap[0]:
                    size = _heap_offer(heap, size, k, key)
                    if size == k:
                        one_bits[0] = np.uint32(_LOW32 - (heap[0] >> np.uint64(32)))
                        threshold = np.float64(one[0])
                        while first_ess < m and cum[first_ess] * (1.0 + _MARGIN) < threshold:
                            first_ess += 1
        contrib[:] = 0.0
    out[:size] = heap[:size]
    radix_sort(out, size, tmp, 0)
    return size


# ------------------------------------------------------------------------------------------ batches
@njit()
def _run_queries(
    lo, hi, docs, imps, q_offsets, starts, ends, weights, ubs, k, use_maxscore, keys_out, counts,
    acc, cand, score32, keys, sel, tmp,
):  # pragma: no cover - compiled
    """Queries ``lo..hi-1`` into ``keys_out``/``counts`` with one set of scratch arrays: ``acc`` (float64,
    all zero; left so) and ``cand``, ``score32``, ``keys``, ``sel``, ``tmp`` with one slot per document
    plus one (MaxScore uses the first ``k`` of ``sel`` and ``tmp`` only)."""
    for q in range(lo, hi):
        a, b = q_offsets[q], q_offsets[q + 1]
        if b <= a:
            continue
        if use_maxscore:
            counts[q] = maxscore_one(
                docs, imps, starts[a:b], ends[a:b], weights[a:b], ubs[a:b], k, sel[:k], tmp[:k], keys_out[q]
            )
        else:
            n = exhaustive_one(
                docs, imps, starts[a:b], ends[a:b], weights[a:b], k, acc, cand, score32, keys, sel, tmp
            )
            keys_out[q, :n] = sel[:n]
            counts[q] = n


@njit()
def _flatten(keys_out, counts):  # pragma: no cover - compiled
    """Packed keys per query to flat ``(docs int64, scores float32, counts)``."""
    total = 0
    for q in range(len(counts)):
        total += counts[q]
    out_docs = np.empty(total, dtype=np.int64)
    out_bits = np.empty(total, dtype=np.uint32)
    pos = 0
    for q in range(len(counts)):
        for i in range(counts[q]):
            key = keys_out[q, i]
            out_docs[pos] = np.int64(key & _LOW32)
            out_bits[pos] = np.uint32(_LOW32 - (key >> np.uint64(32)))
            pos += 1
    return out_docs, out_bits.view(np.float32), counts


@njit()
def scratch(num_docs, k, use_maxscore):  # pragma: no cover - compiled
    """The scratch arrays ``_run_queries`` needs: (acc, cand, score32, keys, sel, tmp)."""
    n = k + 1 if use_maxscore else num_docs + 1
    return (
        np.zeros(num_docs if not use_maxscore else 1, dtype=np.float64),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.float32),
        np.empty(n, dtype=np.uint64),
        np.empty(n, dtype=np.uint64),
        np.empty(n, dtype=np.uint64),
    )


@njit()
def serial_topk(
    docs, imps, q_offsets, starts, ends, weights, ubs, k, use_maxscore, acc, cand, score32, keys, sel, tmp
):  # pragma: no cover - compiled
    """``batch_topk`` on the calling thread with the caller's scratch (``scratch``): no thread pool to wake
    and nothing collection-sized to allocate, which is most of the cost of one short query."""
    nq = len(q_offsets) - 1
    keys_out = np.empty((nq, k), dtype=np.uint64)
    counts = np.zeros(nq, dtype=np.int64)
    _run_queries(
        0, nq, docs, imps, q_offsets, starts, ends, weights, ubs, k, use_maxscore, keys_out, counts,
        acc, cand, score32, keys, sel, tmp,
    )  # fmt: skip
    return _flatten(keys_out, counts)


@njit()
def serial_topk_terms(docs, imps, offsets, max_impact, q_offsets, terms, weights, k, use_maxscore, work):  # pragma: no cover
    """``serial_topk`` given term ids: the postings ranges and upper bounds are gathered here, not by
    numpy calls before the kernel, and the scratch comes as one tuple (fewer arguments to dispatch)."""
    n = len(terms)
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    ubs = np.empty(n, dtype=np.float64)
    for i in range(n):
        t = terms[i]
        starts[i] = offsets[t]
        ends[i] = offsets[t + 1]
        ubs[i] = weights[i] * max_impact[t]
    acc, cand, score32, keys, sel, tmp = work
    return serial_topk(
        docs, imps, q_offsets, starts, ends, weights, ubs, k, use_maxscore, acc, cand, score32, keys, sel, tmp
    )


@njit()
def batch_terms(rows, gids, nq, idf, df, to_local, offsets, max_impact):  # pragma: no cover - compiled
    """A batch's analysed terms (text ``rows``, sorted, and global term ids, repeats kept) to what the top-k
    kernels take, in one call instead of a dozen numpy calls: per query a bag of words in term-id order
    (a repeated term counts once, weight = float32(count) * idf, widened), terms only in deleted documents
    (``df`` 0) or not in the segment (``to_local`` -1; empty ``to_local``: ids are the segment's) dropped.
    Returns ``(q_offsets, starts, ends, weights, ubs)``."""
    key = np.sort(rows * (np.int64(1) << np.int64(32)) + gids)
    n = len(key)
    q_offsets = np.zeros(nq + 1, dtype=np.int64)
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    weights = np.empty(n, dtype=np.float64)
    ubs = np.empty(n, dtype=np.float64)
    m = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and key[j] == key[i]:
            j += 1
        row = key[i] >> np.int64(32)
        g = key[i] & np.int64(0xFFFFFFFF)
        local = g if len(to_local) == 0 else to_local[g]
        if df[g] > 0 and local >= 0:
            w = np.float64(np.float32(j - i) * idf[g])
            starts[m] = offsets[local]
            ends[m] = offsets[local + 1]
            weights[m] = w
            ubs[m] = w * max_impact[local]
            m += 1
            q_offsets[row + 1] = m
        i = j
    for q in range(nq):  # queries left without terms end where the previous one did
        q_offsets[q + 1] = max(q_offsets[q + 1], q_offsets[q])
    return q_offsets, starts[:m], ends[:m], weights[:m], ubs[:m]


@njit()
def ranked_rows(counts):  # pragma: no cover - compiled
    """For the kernels' flat results: each row's query (index into the batch) and rank."""
    total = 0
    for q in range(len(counts)):
        total += counts[q]
    query = np.empty(total, dtype=np.int64)
    rank = np.empty(total, dtype=np.int64)
    pos = 0
    for q in range(len(counts)):
        for r in range(counts[q]):
            query[pos] = q
            rank[pos] = r + 1
            pos += 1
    return query, rank


@njit()
def one_query_topk(docs, imps, offsets, max_impact, idf, df, to_local, gids, k, use_maxscore, work):  # pragma: no cover
    """One analysed query, from its term ids (``gids``, global, repeats kept) to its ranking's columns, in one
    call: at one query per call (a server's load) every numpy call between analysis and the kernel costs
    about what the search does. The bag of words is ``batch_terms``' for a batch of one. Returns
    ``(docs, scores float64, ranks)``, best first."""
    rows = np.zeros(len(gids), dtype=np.int64)
    q_offsets, starts, ends, weights, ubs = batch_terms(rows, gids, 1, idf, df, to_local, offsets, max_impact)
    acc, cand, score32, keys, sel, tmp = work
    top_docs, top_scores, _ = serial_topk(
        docs, imps, q_offsets, starts, ends, weights, ubs, k, use_maxscore, acc, cand, score32, keys, sel, tmp
    )
    m = len(top_docs)
    scores = np.empty(m, dtype=np.float64)
    ranks = np.empty(m, dtype=np.int64)
    for r in range(m):
        scores[r] = top_scores[r]
        ranks[r] = r + 1
    return top_docs, scores, ranks


@njit(parallel=True)
def batch_topk(
    docs, imps, q_offsets, starts, ends, weights, ubs, k, use_maxscore, num_chunks, work
):  # pragma: no cover
    """Top k for many queries; query q's terms are rows ``q_offsets[q]:q_offsets[q+1]``. ``work``: one row
    of scratch per thread (``thread_scratch``), so chunks allocate nothing.

    Returns flat ``(docs int64, scores float32, counts)``: query q's results, best first, are the
    ``counts[q]`` rows after the first ``counts[:q].sum()``.
    """
    nq = len(q_offsets) - 1
    keys_out = np.empty((nq, k), dtype=np.uint64)
    counts = np.zeros(nq, dtype=np.int64)
    chunks = max(1, min(num_chunks, nq))
    acc, cand, score32, keys, sel, tmp = work
    for c in numba.prange(chunks):
        t = numba.get_thread_id()
        _run_queries(
            c * nq // chunks, (c + 1) * nq // chunks, docs, imps, q_offsets, starts, ends, weights, ubs, k,
            use_maxscore, keys_out, counts, acc[t], cand[t], score32[t], keys[t], sel[t], tmp[t],
        )  # fmt: skip
    return _flatten(keys_out, counts)


@njit()
def thread_scratch(threads, num_docs, k, use_maxscore):  # pragma: no cover - compiled
    """``scratch`` for each of ``threads`` threads, as rows of 2-d arrays (``batch_topk``'s ``work``)."""
    n = k + 1 if use_maxscore else num_docs + 1
    return (
        np.zeros((threads, num_docs if not use_maxscore else 1), dtype=np.float64),
        np.empty((threads, n), dtype=np.int64),
        np.empty((threads, n), dtype=np.float32),
        np.empty((threads, n), dtype=np.uint64),
        np.empty((threads, n), dtype=np.uint64),
        np.empty((threads, n), dtype=np.uint64),
    )
