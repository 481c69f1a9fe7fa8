"""Turn a ``Ranking`` and ``Qrels`` (string ids) into the int arrays the metric kernels read.

This is where trec_eval's conventions are applied, once, for every metric:

* evaluation order is score descending, ties broken by docid *descending* (trec_eval's ``comp_sim_docno``
  compares ``strcmp(docno2, docno1)``); the ``rank`` column of the run is ignored, as trec_eval ignores it;
* a retrieved document absent from the qrels is ``NONPOOL``; one with a negative label is ``UNJUDGED``
  (trec_eval's "in the pool but not judged"); neither is ever relevant;
* the queries evaluated are the queries of the qrels: run queries without judgments are dropped, and judged
  queries the run does not answer stay in with empty rankings (they score 0, as in ir_measures);
* a document listed twice for one query is an error, as in trec_eval.

Ids are encoded with hash tables (pandas ``factorize``, Arrow ``index_in``) rather than Python dicts, and
the judged labels are looked up by binary search in numba, so encoding costs tens of milliseconds for a
250k-row run. Encode the qrels once with ``encode_qrels`` when evaluating many runs against them.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import prange

from rankstack.eval.metrics import NONPOOL, UNJUDGED
from rankstack.jit import njit
from rankstack.types import Qrels, Ranking


@dataclasses.dataclass(frozen=True, eq=False)
class EncodedQrels:
    """Qrels as arrays: query ``q``'s judgments are ``docs[offsets[q]:offsets[q+1]]`` (sorted doc codes)
    with labels ``labels[...]``; ``qids[q]`` is its id and ``doc_ids[code]`` a document's id."""

    qids: np.ndarray
    offsets: np.ndarray
    docs: np.ndarray
    labels: np.ndarray
    doc_ids: pa.Array
    qid_codes: dict[str, int]

    @property
    def n_queries(self) -> int:
        return len(self.qids)


@dataclasses.dataclass(frozen=True, eq=False)
class EncodedRun:
    """A run in evaluation order: query ``q`` (a qrels query code) reads ``ranked[start[q]:end[q]]``."""

    ranked: np.ndarray
    start: np.ndarray
    end: np.ndarray


def encode_qrels(qrels: Qrels | EncodedQrels) -> EncodedQrels:
    """Encode qrels once; pass the result to ``evaluate`` to skip this step for every further run.

    A (query, document) pair judged twice keeps its last label, as ``Qrels.to_dict()`` and ir_measures do
    (trec_eval would refuse the file); a warning says so.
    """
    if isinstance(qrels, EncodedQrels):
        return qrels
    qcode, qids = pd.factorize(qrels.qid)
    dcode, doc_ids = pd.factorize(qrels.docid)
    order = np.lexsort((dcode, qcode))  # stable: repeated pairs keep file order, so the last one ends up last
    qs, ds, labels = qcode[order], dcode[order], qrels.relevance[order]
    repeated = (qs[1:] == qs[:-1]) & (ds[1:] == ds[:-1])
    if repeated.any():
        warnings.warn(
            f"qrels judge {int(repeated.sum())} (query, document) pairs more than once; keeping the last label",
            stacklevel=2,
        )
        keep = np.append(~repeated, True)
        qs, ds, labels = qs[keep], ds[keep], labels[keep]
    qids = np.asarray(qids, dtype=object)
    offsets = np.searchsorted(qs, np.arange(len(qids) + 1)).astype(np.int64)
    return EncodedQrels(
        qids=qids,
        offsets=offsets,
        docs=ds.astype(np.int64),
        labels=labels.astype(np.int64),
        doc_ids=pa.array(np.asarray(doc_ids, dtype=object), pa.string()),
        qid_codes={q: i for i, q in enumerate(qids.tolist())},
    )


def encode_run(run: Ranking, qrels: EncodedQrels, ties: Literal["trec_eval", "msmarco"] = "trec_eval") -> EncodedRun:
    """Order the run, keep judged queries, and replace each document by its label.

    Equal scores are ordered by docid descending as trec_eval does, or with ``ties="msmarco"`` ascending as
    the MS MARCO evaluation script does (ir_measures computes RR@k with the latter).
    """
    nq = qrels.n_queries
    start = np.zeros(nq, dtype=np.int64)
    end = np.zeros(nq, dtype=np.int64)
    if len(run) == 0:
        return EncodedRun(np.zeros(0, dtype=np.int64), start, end)

    run_qcode, run_qids = pd.factorize(run.qid)  # first-seen order: codes never decrease iff blocks are contiguous
    to_qrels = np.array([qrels.qid_codes.get(q, -1) for q in run_qids.tolist()], dtype=np.int64)
    dcode, doc_ids = pd.factorize(run.docid)
    order = _evaluation_order(run_qcode, run.score, dcode, np.asarray(doc_ids, dtype=object), ties == "trec_eval")
    order = order[to_qrels[run_qcode[order]] >= 0]
    if len(order) == 0:
        return EncodedRun(np.zeros(0, dtype=np.int64), start, end)

    row_query = to_qrels[run_qcode[order]]
    row_doc = dcode[order].astype(np.int64)
    dup = _first_duplicate(run_qcode[order].astype(np.int64), row_doc, len(doc_ids))
    if dup >= 0:
        raise ValueError(
            f"the run lists document {run.docid[order[dup]]!r} more than once for query {run.qid[order[dup]]!r}; "
            "trec_eval refuses such runs, and every metric would depend on which copy counts"
        )
    # qrels code of each distinct run document (-1: never judged for any query)
    in_qrels = pc.index_in(pa.array(np.asarray(doc_ids, dtype=object), pa.string()), value_set=qrels.doc_ids)
    doc_to_qrels = in_qrels.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    ranked = _lookup_labels(row_query, doc_to_qrels[row_doc], qrels.offsets, qrels.docs, qrels.labels)

    bounds = np.flatnonzero(row_query[1:] != row_query[:-1]) + 1
    first = np.concatenate([[0], bounds])
    last = np.concatenate([bounds, [len(row_query)]])
    start[row_query[first]] = first
    end[row_query[first]] = last
    return EncodedRun(ranked, start, end)


def _evaluation_order(
    qcode: np.ndarray, score: np.ndarray, dcode: np.ndarray, doc_ids: np.ndarray, descending: bool = True
) -> np.ndarray:
    """Row order: query blocks as they come, then score descending, ties by docid descending (trec_eval)
    or ascending."""
    n = len(qcode)
    same_query = qcode[1:] == qcode[:-1]
    if np.all(qcode[1:] >= qcode[:-1]) and np.all(~same_query | (score[1:] <= score[:-1])):
        order = np.arange(n)  # already grouped and sorted, the usual case for a Ranking: skip the sort
    else:
        order = np.lexsort((-score, qcode))
    q, s = qcode[order], score[order]
    tied = (q[1:] == q[:-1]) & (s[1:] == s[:-1])
    if not tied.any():
        return order
    # Re-order only the rows inside groups of equal (query, score), by docid descending.
    in_tie = np.zeros(n, dtype=bool)
    in_tie[:-1] |= tied
    in_tie[1:] |= tied
    group = np.cumsum(np.concatenate([[True], ~tied]))
    pos = np.flatnonzero(in_tie)
    rows = order[pos]
    tied_docs = np.unique(dcode[rows])
    lexical = np.empty(len(doc_ids), dtype=np.int64)
    lexical[tied_docs[np.argsort(doc_ids[tied_docs], kind="stable")]] = np.arange(len(tied_docs))
    rank = -lexical[dcode[rows]] if descending else lexical[dcode[rows]]
    order[pos] = rows[np.lexsort((rank, group[pos]))]
    return order


@njit()
def _first_duplicate(block, doc, n_docs):
    """Index of the first row repeating a document already seen in its query block, or -1."""
    seen_in = np.full(n_docs, -1, dtype=np.int64)
    for i in range(len(doc)):
        if seen_in[doc[i]] == block[i]:
            return i
        seen_in[doc[i]] = block[i]
    return -1


@njit(parallel=True)
def _lookup_labels(row_query, row_doc, offsets, docs, labels):
    """Label of each ranked document by binary search in its query's sorted judgments."""
    out = np.empty(len(row_query), dtype=np.int64)
    for i in prange(len(row_query)):
        d = row_doc[i]
        out[i] = NONPOOL
        if d < 0:
            continue
        lo = offsets[row_query[i]]
        hi = offsets[row_query[i] + 1]
        j = lo + np.searchsorted(docs[lo:hi], d)
        if j < hi and docs[j] == d:
            out[i] = labels[j] if labels[j] >= 0 else UNJUDGED
    return out
