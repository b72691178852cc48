"""Spec sections of the benchmark: the hard split and the score bins, read in the score's direction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.spec.common import FieldError

SPLIT_POOLS = ("heldout", "train", "all")  # which samples hard splits and bins are cut from
# One per hard split. hardest_fraction reads the score's direction; the literal spellings
# (highest/lowest values, thresholds) are accepted only where they pick the hard side.
HARD_RULES = ("hardest_fraction", "top_fraction", "bottom_fraction", "min_score", "max_score")
FRACTION_RULES = ("hardest_fraction", "top_fraction", "bottom_fraction")
EXPORTS = ("parquet", "imagefolder", "hf")  # formats the split builder can write


@dataclass(frozen=True)
class HardSpec:
    """The hard split: exactly one rule, optionally applied per class.

    Rules: ``hardest_fraction`` (the hardest share of the pool by the score's
    direction: highest confusion, lowest AUM; the default, 0.1, when no rule is
    given), or the literal spellings ``top_fraction`` (highest values),
    ``bottom_fraction`` (lowest values), ``min_score`` (score >= value) and
    ``max_score`` (score <= value), each accepted only for a score whose hard side it
    names (``top_fraction``/``min_score`` for higher-is-harder scores,
    ``bottom_fraction``/``max_score`` for lower-is-harder ones; the spec refuses the
    other way round, which would call the easiest samples hard). ``per_class`` applies
    a fraction rule inside each class, taking at least ``min_per_class`` samples of
    every class (or the whole class if smaller).
    """

    hardest_fraction: float | None = None
    top_fraction: float | None = None
    bottom_fraction: float | None = None
    min_score: float | None = None
    max_score: float | None = None
    per_class: bool = False
    min_per_class: int = 0

    def __post_init__(self) -> None:
        rules = [r for r in HARD_RULES if getattr(self, r) is not None]
        if not rules:
            object.__setattr__(self, "hardest_fraction", 0.1)
            rules = ["hardest_fraction"]
        if len(rules) > 1:
            raise FieldError(
                rules[1],
                f"give exactly one of {', '.join(HARD_RULES)}; got {', '.join(rules)} "
                "(set the others to null when overriding an included spec)",
            )
        for name in FRACTION_RULES:
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise FieldError(name, f"must be in (0, 1), got {value}")
        if self.min_per_class < 0:
            raise FieldError("min_per_class", f"must be >= 0, got {self.min_per_class}")
        if self.per_class and rules[0] not in FRACTION_RULES:
            raise FieldError("per_class", f"applies to {', '.join(FRACTION_RULES)}, not {rules[0]}")
        if self.min_per_class and not self.per_class:
            raise FieldError("min_per_class", "needs per_class: true")

    @property
    def rule(self) -> str:
        """The rule in force, e.g. ``"hardest_fraction"``."""
        return next(r for r in HARD_RULES if getattr(self, r) is not None)

    @property
    def value(self) -> float:
        """The rule's fraction or threshold."""
        return getattr(self, self.rule)

    def check_direction(self, score: str, *, higher_is_harder: bool, direction: str) -> None:
        """Refuse a literal rule that would select the easiest samples of ``score``.

        Args:
            score: The score the split is cut from.
            higher_is_harder: Its direction, from the score registry.
            direction: The direction in words (``higher = harder``), for the message.

        Raises:
            FieldError: Naming the rule, which way the score points and the spelling to use.
        """
        rule, value = self.rule, self.value
        easy_side = {
            "top_fraction": not higher_is_harder,
            "min_score": not higher_is_harder,
            "bottom_fraction": higher_is_harder,
            "max_score": higher_is_harder,
        }.get(rule, False)
        if not easy_side:
            return
        if rule in FRACTION_RULES:
            which = "highest" if rule == "top_fraction" else "lowest"
            what = f"selects the {which} {score} values"
            fix = f"use hardest_fraction: {value:g} (the hardest by the score's direction)"
        else:
            what = f"keeps {score} {'>=' if rule == 'min_score' else '<='} {value:g}"
            other = "max_score" if rule == "min_score" else "min_score"
            fix = f"the hard side of a threshold on {score} is {other}"
        raise FieldError(
            rule, f"{what}, which are the easiest samples ({score}: {direction}); {fix}"
        )


@dataclass(frozen=True)
class BinsSpec:
    """Score bins over the pool, numbered from the easiest: bin 0 = easiest, always.

    ``count`` equal-count bins by rank of the score read in its direction, or fixed
    thresholds ``edges`` (ascending, in the score's units): for a higher-is-harder
    score bin b holds ``edges[b-1] <= score < edges[b]`` (the paper's confusion < 5 vs
    >= 5 is ``edges: [5]``); for a lower-is-harder score with B bins the intervals are
    numbered from the top, ``edges[B-2-b] < score <= edges[B-1-b]``, so bin 0 still
    holds the easiest (highest) values. A value on an edge always goes to the harder bin.

    ``width`` (in the score's units; default 1, the paper's 1-nat confusion bins; null
    for none): every evaluation also reports the error in fixed-width bins
    ``[k * width, (k + 1) * width)`` covering the pool's scores (for confusion, 0 to
    ln K nats), beside these bins. They are a reading of the score, not splits.
    """

    count: int | None = None
    edges: list[float] | None = None
    width: float | None = 1.0

    def __post_init__(self) -> None:
        if self.width is not None and not (
            isinstance(self.width, int | float) and math.isfinite(self.width) and self.width > 0
        ):
            raise FieldError("width", f"must be a positive number of score units, got {self.width}")
        if self.edges is not None:
            if not self.edges or any(
                b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)
            ):
                raise FieldError(
                    "edges", f"must be a non-empty strictly ascending list, got {self.edges}"
                )
            if self.count is not None and self.count != len(self.edges) + 1:
                raise FieldError(
                    "count",
                    f"must be len(edges) + 1 = {len(self.edges) + 1} or unset, got {self.count}",
                )
            object.__setattr__(self, "count", len(self.edges) + 1)
        elif self.count is None:
            object.__setattr__(self, "count", 5)
        if self.count < 2:
            raise FieldError("count", f"must be >= 2, got {self.count}")


@dataclass(frozen=True)
class SplitsSpec:
    """How hard splits are cut: which score, from which pool, how, and what is exported.

    ``label_free``: the selection never looks at labels (the score must be label-free,
    no per-class rule) and the exported splits carry no label column.
    ``exports``: any of ``parquet`` (always written), ``imagefolder``
    (``<split>/<class>/<id>.png``), ``hf`` (a ``datasets.DatasetDict`` saved to disk).
    ``keep_leaked``: a held-out sample that duplicates a training sample (an exact or
    near copy, found at ingest) leaks, so it is left out of the hard split by default
    (it stays in the pool and its bin, flagged ``leaked``); true keeps it eligible.
    What the score registry says of ``score`` (its direction, whether it needs labels)
    is checked with the other registered names (:func:`engine.spec.validate.check_registered`).
    """

    score: str = "confusion"
    pool: str = "heldout"
    hard: HardSpec = field(default_factory=HardSpec)
    bins: BinsSpec = field(default_factory=BinsSpec)
    label_free: bool = False
    exports: list[str] = field(default_factory=lambda: ["parquet"])
    keep_leaked: bool = False

    def __post_init__(self) -> None:
        if self.pool not in SPLIT_POOLS:
            raise FieldError("pool", f"must be one of {', '.join(SPLIT_POOLS)}, got {self.pool!r}")
        for i, name in enumerate(self.exports):
            if name not in EXPORTS:
                raise FieldError(
                    f"exports[{i}]", f"must be one of {', '.join(EXPORTS)}, got {name!r}"
                )
        if self.label_free and self.hard.per_class:
            raise FieldError(
                "hard.per_class", "needs labels; it cannot be used with label_free: true"
            )
        if self.label_free and "imagefolder" in self.exports:
            raise FieldError(
                "exports",
                "imagefolder sorts images by class label; it cannot be used with label_free",
            )

    def describe(self, direction: str) -> str:
        """The hard rule in words, e.g. ``hardest 10% by aum (lower = harder)``.

        Args:
            direction: The score's direction in words, from the score registry
                (``get_score(splits.score).direction``).
        """
        hard = self.hard
        if hard.rule in FRACTION_RULES:
            text = f"hardest {100 * hard.value:g}% by {self.score}"
            if hard.per_class:
                text += f" within each class (at least {hard.min_per_class})"
        else:
            text = f"{self.score} {'>=' if hard.rule == 'min_score' else '<='} {hard.value:g}"
        return f"{text} ({direction})"
