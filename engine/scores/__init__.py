"""Pure NumPy difficulty scores, their streaming accumulators and the score registry.

Nothing in this package imports torch, Ray or does I/O.
"""

from engine.scores.classification import (
    ActionAccumulator,
    ConfusionAccumulator,
    action,
    confusion,
)
from engine.scores.registry import ScoreInfo, get_score, list_scores, register_score

__all__ = [
    "ActionAccumulator",
    "ConfusionAccumulator",
    "ScoreInfo",
    "action",
    "confusion",
    "get_score",
    "list_scores",
    "register_score",
]
