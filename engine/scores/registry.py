"""Registry of difficulty scores: inputs, direction, and how the scoring pool feeds each one.

The pool hands every accumulator one epoch of one sample block at a time as an
object with these attributes (all per-replica arrays are (R, N_b), mean
probabilities (N_b, K)): ``labels``, ``mean_probs`` (None in the reduced shard
form), ``mean_entropy`` (N_b,), ``loss``, ``margin``, ``p_true``, ``correct``,
``el2n``, ``input_grad`` ((R, N_b, D), or None on epochs without gradients). A
score's ``needs`` names the attributes it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from engine._util import unknown_name_error
from engine.scores.classification import ActionAccumulator, ConfusionAccumulator, action, confusion
from engine.scores.dynamics import (
    AUMAccumulator,
    DataMapAccumulator,
    EL2NAccumulator,
    ForgettingAccumulator,
    aum,
    data_map,
    el2n,
    forgetting_events,
)
from engine.scores.label_quality import (
    EnsembleAccumulator,
    FinalEpochAccumulator,
    ensemble_margin,
    ensemble_max_prob,
    normalized_margin,
    self_confidence,
)
from engine.scores.vog import VoGAccumulator, vog


@dataclass(frozen=True)
class ScoreInfo:
    """What the engine needs to know about one score.

    Attributes:
        name: Registry name, also the scores-table column.
        fn: The in-memory NumPy function.
        accumulator: Makes a fresh streaming accumulator.
        feed: ``feed(acc, block)`` adds one epoch of one sample block.
        higher_is_harder: Direction: True when a higher value means a harder sample.
        needs_labels: Whether the score uses the given labels.
        needs: Block attributes it reads (see the module docstring).
        description: One line for ``hardbench scores``.
        result: ``result(acc) -> (N,)``; defaults to ``acc.result()``.
    """

    name: str
    fn: Callable
    accumulator: Callable[[], object]
    feed: Callable[[object, object], None]
    higher_is_harder: bool
    needs_labels: bool
    needs: tuple[str, ...]
    description: str
    result: Callable[[object], np.ndarray] = lambda acc: acc.result()


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


def _per_replica(attr: str, method: str) -> Callable[[object, object], None]:
    """Feed that passes ``block.<attr>`` (R, N) as a one-epoch chunk (R, 1, N)."""

    def feed(acc: object, block: object) -> None:
        getattr(acc, method)(getattr(block, attr)[:, None])

    return feed


def _feed_vog(acc: VoGAccumulator, block: object) -> None:
    if block.input_grad is not None:
        acc.update(block.input_grad[:, None])


for _name, _fn, _acc, _feed, _harder, _labels, _needs, _desc in [
    (
        "confusion", confusion, ConfusionAccumulator,
        lambda acc, b: acc.update_entropy(b.mean_entropy[None]),
        True, False, ("mean_entropy",),
        "entropy of the replica-mean distribution, averaged over epochs",
    ),
    (
        "action", action, ActionAccumulator, _per_replica("loss", "update"),
        True, True, ("loss",), "per-sample loss summed over epochs, averaged over replicas",
    ),
    (
        "aum", aum, AUMAccumulator, _per_replica("margin", "update_margins"),
        False, True, ("margin",), "area under the margin (given logit - largest other)",
    ),
    (
        "forgetting", forgetting_events, ForgettingAccumulator, _per_replica("correct", "update_correct"),
        True, True, ("correct",), "correct-to-incorrect transitions, E per never-learning replica",
    ),
    (
        "el2n", el2n, EL2NAccumulator, _per_replica("el2n", "update_el2n"),
        True, True, ("el2n",), "L2 norm of probabilities minus one-hot at the last epoch",
    ),
    (
        "self_confidence", self_confidence, partial(FinalEpochAccumulator, "self_confidence"),
        lambda acc, b: acc.update_mean(b.labels, b.mean_probs[None]),
        False, True, ("mean_probs",), "p(given label) of the last epoch's replica mean",
    ),
    (
        "normalized_margin", normalized_margin, partial(FinalEpochAccumulator, "normalized_margin"),
        lambda acc, b: acc.update_mean(b.labels, b.mean_probs[None]),
        False, True, ("mean_probs",), "(p(given) - max p(other) + 1) / 2 of the last epoch's mean",
    ),
    (
        "ensemble_max_prob", ensemble_max_prob, partial(EnsembleAccumulator, "max_prob"),
        lambda acc, b: acc.update_mean(b.mean_probs[None]),
        False, False, ("mean_probs",), "max probability of the replica mean, averaged over epochs",
    ),
    (
        "ensemble_margin", ensemble_margin, partial(EnsembleAccumulator, "margin"),
        lambda acc, b: acc.update_mean(b.mean_probs[None]),
        False, False, ("mean_probs",), "top-1 minus top-2 of the replica mean, averaged over epochs",
    ),
    (
        "vog", vog, VoGAccumulator, _feed_vog,
        True, True, ("input_grad",), "std over checkpoints of the true-class input gradient",
    ),
]:  # fmt: skip
    register_score(ScoreInfo(_name, _fn, _acc, _feed, _harder, _labels, _needs, _desc))


def _data_map_field(field: str, acc: DataMapAccumulator) -> np.ndarray:
    return acc.result()[field]


for _field, _harder, _desc in [
    ("confidence", False, "data map: mean over epochs of p(given label)"),
    ("variability", True, "data map: std over epochs of p(given label)"),
    ("correctness", False, "data map: fraction of epochs classified correctly"),
]:
    register_score(
        ScoreInfo(
            name=_field,
            fn=lambda labels, pred_probs, _f=_field: data_map(labels, pred_probs)[_f],
            accumulator=DataMapAccumulator,
            feed=lambda acc, b: acc.update_scalars(b.p_true[:, None], b.correct[:, None]),
            higher_is_harder=_harder,
            needs_labels=True,
            needs=("p_true", "correct"),
            description=_desc,
            result=partial(_data_map_field, _field),
        )
    )
