"""Measure names as ir_measures writes them (``nDCG@10``, ``P(rel=2)@10``, ``AP``), parsed into values.

Using ir_measures' spelling means a result table from rankstack and one from ir_measures or PyTerrier name
their columns the same way, and a measure's ``repr`` is the name you would type.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from rankstack.eval.metrics import FAMILIES, Family

_NAME = re.compile(r"^\s*(?P<name>[A-Za-z_]+)\s*(?:\((?P<params>[^)]*)\))?\s*(?:@\s*(?P<cutoff>[^\s]+))?\s*$")
_BY_SPELLING: dict[str, Family] = {}
for _fam in FAMILIES.values():
    for _spelling in (_fam.name, *_fam.aliases):
        _BY_SPELLING[_spelling.lower()] = _fam


class UnknownMeasureError(ValueError):
    """A measure name rankstack cannot parse; the message lists what it can."""


@dataclasses.dataclass(frozen=True)
class Measure:
    """One measure: a family, an optional cut-off ``k`` and the relevance level ``rel`` (label >= rel counts).

    Build one with ``parse_measure("nDCG@10")`` or directly, ``Measure("P", cutoff=10, rel=2)``.
    """

    family: str
    cutoff: int | None = None
    rel: int = 1

    def __post_init__(self) -> None:
        fam = FAMILIES.get(self.family)
        if fam is None:
            raise UnknownMeasureError(f"unknown measure family {self.family!r}; {_supported()}")
        if fam.cutoff == "required" and self.cutoff is None:
            raise UnknownMeasureError(f"{fam.name} needs a cut-off, e.g. {fam.name}@10")
        if fam.cutoff == "none" and self.cutoff is not None:
            raise UnknownMeasureError(f"{fam.name} takes no cut-off; write {fam.name}")
        if self.cutoff is not None and self.cutoff < 1:
            raise UnknownMeasureError(f"cut-off must be a positive integer, got {self.cutoff}")
        if not fam.uses_rel and self.rel != 1:
            raise UnknownMeasureError(f"{fam.name} does not take rel=")
        if self.rel < 1:
            raise UnknownMeasureError(f"rel must be at least 1 (labels of 0 or below are non-relevant), got {self.rel}")

    @property
    def spec(self) -> Family:
        return FAMILIES[self.family]

    def __repr__(self) -> str:
        params = f"(rel={self.rel})" if self.rel != 1 else ""
        at = f"@{self.cutoff}" if self.cutoff is not None else ""
        return f"{self.family}{params}{at}"

    __str__ = __repr__


def _supported() -> str:
    lines = []
    for fam in FAMILIES.values():
        form = {"required": f"{fam.name}@k", "optional": f"{fam.name}[@k]", "none": fam.name}[fam.cutoff]
        if fam.uses_rel:
            form = form.replace(fam.name, f"{fam.name}[(rel=r)]", 1)
        lines.append(f"{form} ({fam.summary})")
    return "supported measures: " + ", ".join(lines)


def parse_measure(name: str | Measure) -> Measure:
    """Parse an ir_measures-style name: ``AP``, ``AP@1000``, ``nDCG@10``, ``P(rel=2)@10``, ``RR@10``, ``Bpref``.

    Family names are case-insensitive and a few common aliases are accepted (``map``, ``mrr``, ``recall``,
    ``precision``). Anything else raises ``UnknownMeasureError`` listing the supported measures.
    """
    if isinstance(name, Measure):
        return name
    text = str(name)  # also accepts ir_measures Measure objects, whose str is their name
    match = _NAME.match(text)
    if not match:
        raise UnknownMeasureError(f"cannot parse measure {text!r}; {_supported()}")
    fam = _BY_SPELLING.get(match["name"].lower())
    if fam is None:
        raise UnknownMeasureError(f"unknown measure {text!r}; {_supported()}")
    rel = 1
    for part in filter(None, (p.strip() for p in (match["params"] or "").split(","))):
        key, _, value = part.partition("=")
        if key.strip() != "rel" or not value.strip().lstrip("-").isdigit():
            raise UnknownMeasureError(f"unsupported parameter {part!r} in {text!r}; only rel=<int> is supported")
        rel = int(value)
    cutoff = None
    if match["cutoff"] is not None:
        if not match["cutoff"].isdigit():
            raise UnknownMeasureError(f"cut-off in {text!r} must be a positive integer")
        cutoff = int(match["cutoff"])
    return Measure(fam.name, cutoff, rel)


def parse_measures(names: Iterable[str | Measure] | str | Measure) -> list[Measure]:
    """Parse one name or many."""
    if isinstance(names, str | Measure):
        names = [names]
    return [parse_measure(n) for n in names]
