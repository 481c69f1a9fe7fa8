"""Metric families, one module each; ``FAMILIES`` maps each canonical name to its description."""

from rankstack.eval.metrics import ap, bpref, judged, ndcg, precision, recall, rr, success
from rankstack.eval.metrics._base import NONPOOL, UNJUDGED, Family

FAMILIES: dict[str, Family] = {
    m.FAMILY.name: m.FAMILY for m in (ap, ndcg, precision, recall, rr, bpref, judged, success)
}

__all__ = ["FAMILIES", "NONPOOL", "UNJUDGED", "Family"]
