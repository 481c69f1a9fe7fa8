"""The stage protocol: every retrieval component maps queries (or a ranking) to a ranking.

Stages compose with operators so an experiment reads like its diagram::

    bm25 % 100 >> reranker          # retrieve 100, then re-rank
    bm25 | dense                    # reciprocal-rank fusion
    bm25 * 0.3 + dense * 0.7        # weighted sum of min-max normalised scores
    Fuse(bm25, dense, method="combmnz", norm="zscore")   # any fusion method and normalisation

A pipeline is itself a Stage and its ``repr`` is the code that builds it. ``compile()`` rewrites a
pipeline into a faster equivalent: a cut-off right after a retriever becomes the retriever's ``k`` so
dynamic pruning can use the bound.
"""

from __future__ import annotations

import inspect
from typing import Any

from rankstack import fusion
from rankstack.types import Queries, Ranking


class Stage:
    """Base class: subclasses implement ``__call__(Queries | Ranking) -> Ranking``."""

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        raise NotImplementedError

    def search(self, query: str, k: int | None = None) -> Ranking:
        """Convenience: run one query string through the stage."""
        out = self(Queries(["1"], [query]))
        return out.cutoff(k) if k is not None else out

    def compile(self) -> Stage:
        """Return an equivalent, possibly faster, stage (default: itself)."""
        return self

    def with_cutoff(self, k: int) -> Stage | None:
        """A copy that returns at most ``k`` rows per query by itself, or None if the stage cannot."""
        return None

    def _capped(self, k: int) -> Stage:
        """``with_cutoff`` for a stage whose depth is its ``k`` attribute: a shallow copy with ``k`` lowered."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.k = min(self.k, k)  # type: ignore[attr-defined]
        return clone

    # ---- operators
    def __rshift__(self, other: Stage) -> Stage:
        return Then(self, other)

    def __mod__(self, k: int) -> Stage:
        return Cutoff(self, k)

    def __or__(self, other: Stage) -> Stage:
        return RRF(self, other)

    def __add__(self, other: Stage) -> Stage:
        return ScoreSum(self, other)

    def __mul__(self, weight: float) -> Stage:
        return Weighted(self, weight)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        """``ClassName(arg=value, ...)`` for constructor arguments that differ from their defaults."""
        parts = []
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or not hasattr(self, name):
                continue
            value = getattr(self, name)
            if param.default is not inspect.Parameter.empty and _same(value, param.default):
                continue
            parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _operand(stage: Stage) -> str:
    """repr of a stage used as an operand of a tighter-binding operator (``%``, ``*``)."""
    return f"({stage!r})" if isinstance(stage, Then) else repr(stage)


def as_queries(inp: Queries | Ranking) -> Queries:
    """The queries behind a stage's input: a Queries as is, or the texts a Ranking carries."""
    if isinstance(inp, Queries):
        return inp
    if inp.queries is None:
        raise ValueError(
            "this stage needs query texts, but the ranking it was given carries none; "
            "pass Queries, or build the Ranking with queries=..."
        )
    return inp.queries.subset(inp.qids()) if len(inp) else inp.queries


def refuse_image_queries(queries: Queries, searched: str) -> None:
    """A text-only stage given image queries says so (instead of searching with their empty texts)."""
    if queries.image is not None and any(queries.image.tolist()):
        from rankstack.errors import RankstackError

        raise RankstackError(
            f"image queries cannot search {searched}: it is text-only. Search an index built with a text-image dual "
            "encoder (rankstack index COLL --images --model M, or a caption index of the same dual encoder)."
        )


class Then(Stage):
    """Run stages in sequence: each gets the previous one's ranking."""

    def __init__(self, *stages: Stage):
        flat: list[Stage] = []
        for s in stages:
            flat.extend(s.stages if isinstance(s, Then) else [s])
        self.stages = flat

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        queries = inp if isinstance(inp, Queries) else inp.queries
        out: Queries | Ranking = inp
        for stage in self.stages:
            out = stage(out)
            if out.queries is None and queries is not None:
                out = out.with_queries(queries)
        assert isinstance(out, Ranking)
        return out

    def compile(self) -> Stage:
        return Then(*[s.compile() for s in self.stages])

    def __repr__(self) -> str:
        return " >> ".join(repr(s) for s in self.stages)


class Cutoff(Stage):
    """Keep the top ``k`` documents of each query (``stage % k``)."""

    def __init__(self, stage: Stage, k: int):
        if int(k) < 1:
            raise ValueError(f"cut-off must be a positive integer, got {k!r}")
        self.stage, self.k = stage, int(k)

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        return self.stage(inp).cutoff(self.k)

    def compile(self) -> Stage:
        inner = self.stage.compile()
        pushed = inner.with_cutoff(self.k)
        return pushed if pushed is not None else Cutoff(inner, self.k)

    def with_cutoff(self, k: int) -> Stage | None:
        return Cutoff(self.stage, min(k, self.k))

    def __repr__(self) -> str:
        return f"({_operand(self.stage)} % {self.k})"


class Weighted(Stage):
    """Multiply a stage's scores by ``weight``; inside ``+`` or ``|`` it weights that branch."""

    def __init__(self, stage: Stage, weight: float):
        self.stage, self.weight = stage, float(weight)

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        r = self.stage(inp)
        return Ranking(r.qid, r.docid, r.score * self.weight, r.rank, queries=r.queries, presorted=self.weight > 0)

    def compile(self) -> Stage:
        return Weighted(self.stage.compile(), self.weight)

    def __repr__(self) -> str:
        return f"({_operand(self.stage)} * {self.weight!r})"


class _Fusion(Stage):
    """Shared shape of the fusion operators: a flat list of (stage, weight) branches."""

    symbol = "?"

    def __init__(self, *stages: Stage):
        branches: list[tuple[Stage, float]] = []
        for s in stages:
            if self._absorbs(s):
                branches.extend(s.branches)  # type: ignore[attr-defined]
            elif isinstance(s, Weighted):
                branches.append((s.stage, s.weight))
            else:
                branches.append((s, 1.0))
        self.branches = branches

    def _absorbs(self, stage: Stage) -> bool:
        """Whether a nested fusion is the same operation, so its branches can join this one's."""
        return type(stage) is type(self)

    def _run(self, inp: Queries | Ranking) -> tuple[list[Ranking], list[float]]:
        return [s(inp) for s, _ in self.branches], [w for _, w in self.branches]

    def _rebuild(self, stages: list[Stage]) -> Stage:
        return type(self)(*stages)

    def compile(self) -> Stage:
        return self._rebuild([Weighted(s.compile(), w) if w != 1.0 else s.compile() for s, w in self.branches])

    def _terms(self) -> list[str]:
        return [repr(s) if w == 1.0 else f"{_operand(s)} * {w!r}" for s, w in self.branches]

    def __repr__(self) -> str:
        return "(" + f" {self.symbol} ".join(self._terms()) + ")"


class RRF(_Fusion):
    """Reciprocal-rank fusion of the branches (``a | b``), k=60."""

    symbol = "|"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        rankings, weights = self._run(inp)
        return fusion.rrf(rankings, weights=weights)


class ScoreSum(_Fusion):
    """Sum of per-query min-max normalised scores (``a + b``; weights via ``a * 0.3 + b * 0.7``)."""

    symbol = "+"

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        rankings, weights = self._run(inp)
        return fusion.combsum(rankings, weights=weights, norm="minmax")


class Fuse(_Fusion):
    """Fusion with a chosen method and per-query normalisation; weights come from ``stage * w`` branches.

    ``Fuse(bm25, dense * 2, method="combmnz", norm="zscore")``. ``method="rrf"`` is ``|`` (and uses ``k``),
    ``method="combsum", norm="minmax"`` is ``+``.
    """

    def __init__(self, *stages: Stage, method: fusion.Method = "rrf", norm: fusion.Norm = "minmax", k: int = 60):
        if not stages:
            raise ValueError("Fuse needs at least one stage: Fuse(bm25, dense, method=...)")
        fusion.check_options(method, norm, k)
        self.method, self.norm, self.k = method, norm, int(k)
        super().__init__(*stages)

    def _absorbs(self, stage: Stage) -> bool:
        # an explicit Fuse inside another is a nested fusion: fusing its output is not fusing its inputs
        return False

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        rankings, weights = self._run(inp)
        return fusion.fuse(rankings, self.method, weights=weights, norm=self.norm, k=self.k)

    def _rebuild(self, stages: list[Stage]) -> Stage:
        return Fuse(*stages, method=self.method, norm=self.norm, k=self.k)

    def __repr__(self) -> str:
        # the method is always written out: Fuse(a, b) reading as RRF would surprise a reader
        options = [f"method={self.method!r}"]
        if self.method == "rrf":
            options += [f"k={self.k!r}"] if self.k != 60 else []
        else:
            options += [f"norm={self.norm!r}"] if self.norm != "minmax" else []
        return f"Fuse({', '.join([*self._terms(), *options])})"


class Lambda(Stage):
    """Wrap a plain function ``Ranking -> Ranking`` (or ``Queries -> Ranking``) as a stage."""

    def __init__(self, fn, name: str | None = None):
        self.fn, self.name = fn, name or getattr(fn, "__name__", "fn")

    def __call__(self, inp: Queries | Ranking) -> Ranking:
        return self.fn(inp)

    def __repr__(self) -> str:
        return f"Lambda({self.name})"
