"""The multi-label counterparts of registered scores: same spellings, same directions.

A multi-label run's spec names its scores as every run does (``confusion``,
``action``, ``confidence``, ``variability``, ``correctness``, ``forgetting``); the
scoring pool resolves them here when the shards it reads are multi-label
(:attr:`engine.shards.EpochBlock.multilabel`), so a softmax score is never computed on
sigmoid probabilities. Each entry's direction, and what it measures (``variability``:
ambiguity, which cuts no hard split), is the one registered for the name in
:mod:`engine.scores.registry` (what :func:`engine.scores.hardness` reads for every
run), its function the in-memory one of :mod:`engine.scores.multilabel`, and its
accumulator is fed the block's per-replica probabilities ``probs`` (R, N_b, L) and its
``label_sets`` (N_b, L), so the pool's scores equal the in-memory functions on the
shards' probabilities.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine._util import unknown_name_error
from engine.scores.multilabel import (
    MultilabelActionAccumulator,
    MultilabelConfusionAccumulator,
    MultilabelDataMapAccumulator,
    MultilabelForgettingAccumulator,
    multilabel_action,
    multilabel_confusion,
    multilabel_data_map,
    multilabel_forgetting,
)
from engine.scores.registry import ScoreInfo, get_score

LABEL_FREE_NEEDS = ("probs",)  # block attributes a label-free multi-label score reads
LABELLED_NEEDS = ("probs", "label_sets")  # ... and a label-aware one


def _epoch(block: object) -> np.ndarray:
    """One epoch of a block as the multi-label accumulators take it: (R, 1, N_b, L) float64."""
    return np.asarray(block.probs, dtype=np.float64)[:, None]


def _data_map_field(name: str) -> tuple[Callable, Callable]:
    """The in-memory function and result of one data-map coordinate."""
    return (lambda labels, probs: multilabel_data_map(labels, probs)[name],
            lambda acc: acc.result()[name])  # fmt: skip


def _info(name: str, fn: Callable, accumulator: Callable, feed: Callable, *, labelled: bool,
          description: str, result: Callable | None = None) -> ScoreInfo:  # fmt: skip
    extra = {"result": result} if result is not None else {}
    base = get_score(name)  # its direction and what it measures (variability: ambiguity)
    return ScoreInfo(
        name=name, fn=fn, accumulator=accumulator, feed=feed,
        higher_is_harder=base.higher_is_harder, needs_labels=labelled,
        needs=LABELLED_NEEDS if labelled else LABEL_FREE_NEEDS, description=description,
        measures=base.measures, not_hardness=base.not_hardness, **extra,
    )  # fmt: skip


def _labelled_feed(acc: object, block: object) -> None:
    acc.update(block.label_sets, _epoch(block))


_MULTILABEL: dict[str, ScoreInfo] = {
    "confusion": _info(
        "confusion",
        multilabel_confusion,
        MultilabelConfusionAccumulator,
        lambda acc, b: acc.update(_epoch(b)),
        labelled=False,
        description="binary entropy of the replica-mean probability, mean over labels and "
        "epochs (label-free; in [0, ln 2])",
    ),
    "action": _info(
        "action",
        multilabel_action,
        MultilabelActionAccumulator,
        _labelled_feed,
        labelled=True,
        description="binary cross-entropy summed over labels and epochs, mean over replicas",
    ),
    "forgetting": _info(
        "forgetting",
        multilabel_forgetting,
        MultilabelForgettingAccumulator,
        _labelled_feed,
        labelled=True,
        description="forgetting events per label, averaged over labels",
    ),
}
for _name in ("confidence", "variability", "correctness"):
    _fn, _result = _data_map_field(_name)
    _MULTILABEL[_name] = _info(
        _name, _fn, MultilabelDataMapAccumulator, _labelled_feed, labelled=True,
        description=f"data-map {_name} per label, averaged over labels", result=_result,
    )  # fmt: skip


def get_multilabel_score(name: str) -> ScoreInfo:
    """The multi-label entry of the registered score ``name``.

    Raises:
        ValueError: For a score without a multi-label counterpart; the message lists
            the ones there are.
    """
    if name not in _MULTILABEL:
        raise unknown_name_error("multi-label score", name, _MULTILABEL)
    return _MULTILABEL[name]


def list_multilabel_scores() -> list[str]:
    """Names of the scores a multi-label run can compute, sorted."""
    return sorted(_MULTILABEL)
