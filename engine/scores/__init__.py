"""Pure NumPy difficulty scores, their streaming accumulators and the score registry.

Nothing in this package imports torch, Ray or does I/O. Shapes: R replicas, E epochs,
N samples, K classes. Each function's docstring gives its direction.
"""

from engine.scores.classification import (
    ActionAccumulator,
    ConfusionAccumulator,
    action,
    confusion,
    entropy,
    entropy_float32,
)
from engine.scores.dynamics import (
    AUMAccumulator,
    DataMapAccumulator,
    EL2NAccumulator,
    ForgettingAccumulator,
    aum,
    data_map,
    el2n,
    forgetting_events,
    forgetting_from_presentations,
    margins_from_logits,
    replica_scalars,
)
from engine.scores.label_quality import (
    EnsembleAccumulator,
    FinalEpochAccumulator,
    ensemble_margin,
    ensemble_max_prob,
    normalized_margin,
    self_confidence,
)
from engine.scores.registry import (
    HIGHER_IS_HARDER,
    LOWER_IS_HARDER,
    ScoreInfo,
    ScoreOption,
    finalize_scores,
    get_score,
    hardness,
    list_scores,
    register_score,
)
from engine.scores.vog import VoGAccumulator, normalize_within_groups, vog

__all__ = [
    "HIGHER_IS_HARDER",
    "LOWER_IS_HARDER",
    "AUMAccumulator",
    "ActionAccumulator",
    "ConfusionAccumulator",
    "DataMapAccumulator",
    "EL2NAccumulator",
    "EnsembleAccumulator",
    "FinalEpochAccumulator",
    "ForgettingAccumulator",
    "ScoreInfo",
    "ScoreOption",
    "VoGAccumulator",
    "action",
    "aum",
    "confusion",
    "data_map",
    "el2n",
    "ensemble_margin",
    "ensemble_max_prob",
    "entropy",
    "entropy_float32",
    "finalize_scores",
    "forgetting_events",
    "forgetting_from_presentations",
    "get_score",
    "hardness",
    "list_scores",
    "margins_from_logits",
    "normalize_within_groups",
    "normalized_margin",
    "register_score",
    "replica_scalars",
    "self_confidence",
    "vog",
]
