"""Label-quality scores on one (N, K) probability matrix, and label-free ensemble scores.

``self_confidence`` and ``normalized_margin`` equal cleanlab's
``rank.get_label_quality_scores(labels, pred_probs, method=...)``; they are meant for
out-of-fold probabilities. In a run, the scoring pool applies them to the replicas'
mean probabilities at the last epoch.
"""

from __future__ import annotations

import numpy as np

from engine.scores._validation import add_per_sample, as_float_array, as_labels, check_probabilities
from engine.scores.dynamics import margins_from_logits


def _matrix(labels: object, pred_probs: object) -> tuple[np.ndarray, np.ndarray]:
    probs = as_float_array("pred_probs", pred_probs, 2, "(N, K)")
    check_probabilities("pred_probs", probs)
    return as_labels(labels, probs.shape[0], probs.shape[1]), probs


def self_confidence(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Predicted probability of the given label (cleanlab's ``self_confidence``).

    Args:
        labels: Int (N,) in [0, K).
        pred_probs: Float (N, K), rows summing to 1.

    Returns:
        Float (N,) in [0, 1]. Lower = more likely mislabeled.
    """
    labels, probs = _matrix(labels, pred_probs)
    return _compute_self_confidence(labels, probs)


def normalized_margin(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """``(p(given label) - max p(other label) + 1) / 2`` (cleanlab's ``normalized_margin``).

    Args:
        labels: Int (N,) in [0, K).
        pred_probs: Float (N, K), rows summing to 1.

    Returns:
        Float (N,) in [0, 1]. Lower = more likely mislabeled.
    """
    labels, probs = _matrix(labels, pred_probs)
    return _compute_normalized_margin(labels, probs)


def _compute_self_confidence(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return probs[np.arange(len(labels)), labels]


def _compute_normalized_margin(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return (margins_from_logits(labels, probs) + 1.0) / 2.0


class FinalEpochAccumulator:
    """Applies an (N, K) label-quality function to the replica-mean probabilities of the last epoch.

    ``update_mean`` may also take the replica mean of p(given label) computed from each
    replica's exact loss, which then replaces ``mean_probs[label]``: top-k shards hold
    the label's probability exactly only that way (their rebuilt tail is an estimate).
    """

    def __init__(self, fn: str) -> None:
        if fn not in _FINAL_EPOCH_FNS:
            raise ValueError(f"fn must be one of {sorted(_FINAL_EPOCH_FNS)}, got {fn!r}")
        self.fn = fn
        self._labels: np.ndarray | None = None
        self._last: np.ndarray | None = None
        self._p_true: np.ndarray | None = None

    def update(self, labels: np.ndarray, pred_probs: np.ndarray) -> None:
        """Add a chunk: labels (N,), pred_probs (R, E_chunk, N, K)."""
        probs = as_float_array("pred_probs", pred_probs, 4, "(R, E_chunk, N, K)")
        check_probabilities("pred_probs", probs)
        labels = as_labels(labels, probs.shape[2], probs.shape[3])
        self.update_mean(labels, probs.mean(axis=0))

    def update_mean(
        self, labels: np.ndarray, mean_probs: np.ndarray | None, *, p_true: np.ndarray | None = None
    ) -> None:
        """Add replica-mean probabilities (E_chunk, N, K) and/or p(given label) (E_chunk, N).

        ``self_confidence`` needs only ``p_true`` (or ``mean_probs``);
        ``normalized_margin`` needs ``mean_probs`` for the largest other class.
        """
        self._labels = labels
        self._last = None if mean_probs is None else np.asarray(mean_probs, dtype=np.float64)[-1]
        self._p_true = None if p_true is None else np.asarray(p_true, dtype=np.float64)[-1]

    def result(self) -> np.ndarray:
        """(N,) score of the last epoch seen. Lower = more likely mislabeled."""
        if self._last is None and self._p_true is None:
            raise ValueError("FinalEpochAccumulator.result() called before any update()")
        if self._p_true is None:
            return _FINAL_EPOCH_FNS[self.fn](self._labels, self._last)
        if self.fn == "self_confidence":
            return self._p_true
        if self._last is None:
            raise ValueError("normalized_margin needs the replica-mean probabilities")
        others = self._last.copy()
        others[np.arange(len(self._labels)), self._labels] = -np.inf
        return (self._p_true - others.max(axis=1) + 1.0) / 2.0


_FINAL_EPOCH_FNS = {
    "self_confidence": _compute_self_confidence,
    "normalized_margin": _compute_normalized_margin,
}


# ---------------------------------------------------------------- label-free


def _top2(mean_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    part = np.partition(mean_probs, -2, axis=-1) if mean_probs.shape[-1] > 1 else None
    if part is None:
        top = mean_probs[..., 0]
        return top, np.zeros_like(top)
    return part[..., -1], part[..., -2]


def ensemble_max_prob(pred_probs: np.ndarray) -> np.ndarray:
    """Largest class probability of the replica-mean distribution, averaged over epochs.

    Label-free.

    Args:
        pred_probs: Float (R, E, N, K).

    Returns:
        Float (N,) in [1/K, 1]. Lower = harder.
    """
    probs = as_float_array("pred_probs", pred_probs, 4, "(R, E, N, K)")
    check_probabilities("pred_probs", probs)
    return _top2(probs.mean(axis=0))[0].mean(axis=0)


def ensemble_margin(pred_probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of the replica-mean distribution, averaged over epochs.

    Label-free.

    Args:
        pred_probs: Float (R, E, N, K).

    Returns:
        Float (N,) in [0, 1]. Lower = harder.
    """
    probs = as_float_array("pred_probs", pred_probs, 4, "(R, E, N, K)")
    check_probabilities("pred_probs", probs)
    top1, top2 = _top2(probs.mean(axis=0))
    return (top1 - top2).mean(axis=0)


class EnsembleAccumulator:
    """Streaming :func:`ensemble_max_prob` (``kind="max_prob"``) or :func:`ensemble_margin`."""

    def __init__(self, kind: str) -> None:
        if kind not in ("max_prob", "margin"):
            raise ValueError(f"kind must be 'max_prob' or 'margin', got {kind!r}")
        self.kind = kind
        self._sum: np.ndarray | None = None
        self._epochs = 0

    def update(self, pred_probs: np.ndarray) -> None:
        """Add a chunk: pred_probs (R, E_chunk, N, K)."""
        probs = as_float_array("pred_probs", pred_probs, 4, "(R, E_chunk, N, K)")
        check_probabilities("pred_probs", probs)
        self.update_mean(probs.mean(axis=0))

    def update_mean(self, mean_probs: np.ndarray) -> None:
        """Add replica-mean probabilities of shape (E_chunk, N, K)."""
        top1, top2 = _top2(np.asarray(mean_probs, dtype=np.float64))
        values = top1 if self.kind == "max_prob" else top1 - top2
        self._sum = add_per_sample(self._sum, values.sum(axis=0))
        self._epochs += values.shape[0]

    def result(self) -> np.ndarray:
        """(N,) mean over epochs. Lower = harder."""
        if self._sum is None:
            raise ValueError("EnsembleAccumulator.result() called before any update()")
        return self._sum / self._epochs
