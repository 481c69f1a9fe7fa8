"""Evaluation: trec_eval-exact metrics, experiments over pipelines, significance tests, plots."""

from rankstack.eval.encode import EncodedQrels, encode_qrels
from rankstack.eval.evaluate import DEFAULT_METRICS, evaluate, per_query_values
from rankstack.eval.measure import Measure, UnknownMeasureError, parse_measure, parse_measures

__all__ = [
    "DEFAULT_METRICS",
    "EncodedQrels",
    "Measure",
    "UnknownMeasureError",
    "encode_qrels",
    "evaluate",
    "parse_measure",
    "parse_measures",
    "per_query_values",
]
