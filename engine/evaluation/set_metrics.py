"""Per-sample quality of a multi-label prediction: F1 of the predicted label set, exact match, Hamming.

A label is predicted present when its probability is strictly above the decision
threshold (0.5, as :mod:`engine.scores.multilabel` says). For a sample with true set
T and predicted set P: ``F1 = 2 |P & T| / (|P| + |T|)``; an empty predicted set
scores 0 against a non-empty true set (no label found: precision is taken as 0, not
undefined), and 1 when both are empty (nothing to find, nothing claimed). A miss is
any label wrong (P != T).
"""

from __future__ import annotations

import numpy as np

from engine.scores.multilabel import DECISION_THRESHOLD


def multilabel_quality(
    name: str, label_sets: np.ndarray, probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A multi-label model's per-sample quality (set F1), misses, and exact match and Hamming.

    Args:
        name: Model label, for the error message.
        label_sets: Uint8 (P, L) multi-hot truth of the pool.
        probs: Float (P, L) per-label probabilities (sigmoids, or the ensemble's mean).

    Returns:
        ``(f1 float64 (P,) in [0, 1] (higher = better), miss bool (P,), {"exact_match":
        float64 (P,) 1.0 where every label is right, "hamming": float64 (P,) share of
        labels wrong (lower = better)})`` for
        :func:`engine.evaluation.evaluate.evaluate_predictions`.

    Raises:
        ValueError: If the shapes differ or ``label_sets`` is not 2-D.
    """
    truth = np.asarray(label_sets) > 0
    if truth.ndim != 2 or np.shape(probs) != truth.shape:
        raise ValueError(
            f"{name}: probabilities of shape {np.shape(probs)} for label sets of shape "
            f"{truth.shape}; both must be (P, L)"
        )
    pred = np.asarray(probs) > DECISION_THRESHOLD
    both = (pred & truth).sum(axis=1)
    sizes = pred.sum(axis=1) + truth.sum(axis=1)
    f1 = np.where(sizes > 0, 2 * both / np.maximum(sizes, 1), 1.0)
    wrong = (pred != truth).sum(axis=1)
    extra = {"exact_match": (wrong == 0).astype(np.float64),
             "hamming": wrong / truth.shape[1]}  # fmt: skip
    return f1.astype(np.float64), wrong > 0, extra
