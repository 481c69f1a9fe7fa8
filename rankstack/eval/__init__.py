"""Evaluation: trec_eval-exact metrics, experiments over pipelines, significance tests, plots."""

from rankstack.eval.encode import EncodedQrels, encode_qrels
from rankstack.eval.evaluate import DEFAULT_METRICS, evaluate, per_query_values
from rankstack.eval.experiment import Experiment
from rankstack.eval.measure import Measure, UnknownMeasureError, parse_measure, parse_measures
from rankstack.eval.plots import (
    per_query_deltas,
    plot_per_query_delta,
    plot_recall_at_depth,
    recall_at_depth,
    write_experiment_plots,
)
from rankstack.eval.significance import bonferroni, correct, holm, paired_t_test, permutation_test

__all__ = [
    "DEFAULT_METRICS",
    "EncodedQrels",
    "Experiment",
    "Measure",
    "UnknownMeasureError",
    "bonferroni",
    "correct",
    "encode_qrels",
    "evaluate",
    "holm",
    "paired_t_test",
    "parse_measure",
    "parse_measures",
    "per_query_deltas",
    "per_query_values",
    "permutation_test",
    "plot_per_query_delta",
    "plot_recall_at_depth",
    "recall_at_depth",
    "write_experiment_plots",
]
