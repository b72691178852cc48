"""Registry of difficulty scores: what each needs and which direction is harder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine._util import unknown_name_error
from engine.scores.classification import (
    ActionAccumulator,
    ConfusionAccumulator,
    action,
    confusion,
)


@dataclass(frozen=True)
class ScoreInfo:
    """What the engine needs to know about one score.

    Attributes:
        name: Registry name, also the scores-table column.
        fn: The in-memory NumPy function.
        accumulator: Streaming counterpart with ``update``/``result``.
        higher_is_harder: Direction: True when a higher value means a harder sample.
        needs_labels: Whether the score uses the given labels.
        input: Shard column it reads: ``"probs"`` or ``"loss"``.
    """

    name: str
    fn: Callable
    accumulator: type
    higher_is_harder: bool
    needs_labels: bool
    input: str


_SCORES: dict[str, ScoreInfo] = {}


def register_score(info: ScoreInfo) -> ScoreInfo:
    """Add ``info`` to the registry; a second score with the same name is an error."""
    if info.name in _SCORES:
        raise ValueError(f"score {info.name!r} is already registered")
    _SCORES[info.name] = info
    return info


def get_score(name: str) -> ScoreInfo:
    """Return the registered score ``name``.

    Raises:
        ValueError: If no score has that name; the message lists close matches.
    """
    try:
        return _SCORES[name]
    except KeyError:
        raise unknown_name_error("score", name, _SCORES) from None


def list_scores() -> list[str]:
    """Return the names of all registered scores, sorted."""
    return sorted(_SCORES)


register_score(
    ScoreInfo(
        name="confusion",
        fn=confusion,
        accumulator=ConfusionAccumulator,
        higher_is_harder=True,
        needs_labels=False,
        input="probs",
    )
)
register_score(
    ScoreInfo(
        name="action",
        fn=action,
        accumulator=ActionAccumulator,
        higher_is_harder=True,
        needs_labels=True,
        input="loss",
    )
)
