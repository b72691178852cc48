"""Confusion and action scores for classification, with streaming accumulators.

Notation: R seed replicas, E epochs, N samples, K classes.
"""

from __future__ import annotations

import numpy as np

from engine.scores._validation import (
    add_per_sample,
    as_float_array,
    check_nonnegative,
    check_probabilities,
)


def confusion(pred_probs: np.ndarray) -> np.ndarray:
    """Confusion score: entropy of the replica-mean distribution, averaged over epochs.

    ``p_t = mean_r f_t^r(x)``, ``s_t = -sum_k p_t^k log p_t^k`` (natural log),
    ``s = mean_t s_t``. Label-free (Simsek, Hall, Sagun 2022).

    Args:
        pred_probs: Class probabilities of shape (R, E, N, K); every row sums to 1.

    Returns:
        Array of shape (N,) with values in [0, log K]. Higher = harder.

    Raises:
        ValueError: If ``pred_probs`` is not 4-D, holds NaN/inf, negative entries,
            or rows that do not sum to 1.
    """
    probs = as_float_array("pred_probs", pred_probs, 4, "(R, E, N, K)")
    check_probabilities("pred_probs", probs)
    return _compute_confusion(probs)


def action(losses: np.ndarray) -> np.ndarray:
    """Action score: per-sample loss summed over epochs, averaged over replicas.

    The area under each sample's loss curve (Arriaga et al., CVPR-W 2023).

    Args:
        losses: Per-sample losses of shape (R, E, N), each >= 0.

    Returns:
        Array of shape (N,). Higher = harder.

    Raises:
        ValueError: If ``losses`` is not 3-D, holds NaN/inf or negative values.
    """
    arr = as_float_array("losses", losses, 3, "(R, E, N)")
    check_nonnegative("losses", arr)
    return _compute_action(arr)


def entropy_native(probs: np.ndarray) -> np.ndarray:
    """Natural-log entropy over the last axis in the input's float type, with 0 log 0 = 0.

    Args:
        probs: Probabilities of shape (..., K), float32 or float64 (kept as given).

    Returns:
        Entropies of shape (...) in the input's float type, in [0, ln K]; higher =
        more uncertain.

    One log per element, computed in place; the sum over classes is a matrix-vector
    product, which for small K is several times faster than ``sum(axis=-1)``.
    """
    k = probs.shape[-1]
    terms = np.log(probs, out=np.zeros_like(probs), where=probs > 0)
    terms *= probs
    sums = terms.reshape(-1, k) @ np.ones(k, dtype=terms.dtype)
    # -0.0 would print oddly for one-hot rows; clip tiny negatives from rounding.
    return np.maximum(-sums.reshape(probs.shape[:-1]), 0.0)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Natural-log entropy of distributions over the last axis, in float64, 0 log 0 = 0.

    Args:
        probs: Probabilities of shape (..., K).

    Returns:
        Entropies of shape (...), in [0, ln K]; higher = more uncertain.
    """
    return entropy_native(np.ascontiguousarray(probs, dtype=np.float64))


def entropy_float32(probs: np.ndarray) -> np.ndarray:
    """:func:`entropy` computed in float32, returned as float64: the scoring fast path.

    For probabilities read from float16/float32 shards; the absolute error against
    the float64 computation stays below about 1e-6 * ln K, far under float16 storage
    rounding (about 5e-4 per probability).

    Args:
        probs: Probabilities of shape (..., K).

    Returns:
        Float64 entropies of shape (...), in [0, ln K]; higher = more uncertain.
    """
    return entropy_native(np.ascontiguousarray(probs, dtype=np.float32)).astype(np.float64)


def _compute_confusion(probs: np.ndarray) -> np.ndarray:
    mean_over_replicas = probs.mean(axis=0)  # (E, N, K)
    return entropy_native(mean_over_replicas).mean(axis=0)


def _compute_action(losses: np.ndarray) -> np.ndarray:
    return losses.sum(axis=1).mean(axis=0)


class ConfusionAccumulator:
    """Streaming confusion score over chunks of epochs.

    Each ``update`` takes all R replicas for one or more epochs of the same N
    samples, so a scorer holds one (replica set, epoch chunk, sample block) at a
    time. ``result()`` equals ``confusion`` on the concatenation of the chunks
    along the epoch axis.
    """

    def __init__(self) -> None:
        self._entropy_sum: np.ndarray | None = None
        self._epochs = 0

    def update(self, pred_probs: np.ndarray) -> None:
        """Add a chunk of epochs.

        Args:
            pred_probs: Shape (R, N, K) for one epoch or (R, E_chunk, N, K).
        """
        arr = np.asarray(pred_probs)
        if arr.ndim == 3:
            arr = arr[:, None]
        probs = as_float_array("pred_probs", arr, 4, "(R, N, K) or (R, E_chunk, N, K)")
        check_probabilities("pred_probs", probs)
        self.update_mean(probs.mean(axis=0))

    def update_mean(self, mean_probs: np.ndarray) -> None:
        """Add replica-mean probabilities of shape (E_chunk, N, K) (already validated)."""
        self.update_entropy(entropy_native(np.asarray(mean_probs, dtype=np.float64)))

    def update_entropy(self, entropies: np.ndarray) -> None:
        """Add precomputed entropies of the replica-mean distribution, shape (E_chunk, N)."""
        entropies = np.asarray(entropies, dtype=np.float64)
        self._entropy_sum = add_per_sample(self._entropy_sum, entropies.sum(axis=0))
        self._epochs += entropies.shape[0]

    def result(self) -> np.ndarray:
        """Return the (N,) confusion scores of all epochs seen. Higher = harder."""
        if self._entropy_sum is None:
            raise ValueError("ConfusionAccumulator.result() called before any update()")
        return self._entropy_sum / self._epochs


class ActionAccumulator:
    """Streaming action score over chunks of epochs and/or replicas.

    ``update`` takes a (R, E_chunk, N) chunk; chunks may split the epoch axis
    freely, and the replica axis as long as every replica sees the same number of
    epochs in the end. ``result()`` equals ``action`` on the whole array.
    """

    def __init__(self) -> None:
        self._loss_sum: np.ndarray | None = None
        self._replica_epochs: dict[int, int] = {}

    def update(self, losses: np.ndarray, *, replica_ids: list[int] | None = None) -> None:
        """Add a chunk of losses.

        Args:
            losses: Shape (R_chunk, E_chunk, N), each >= 0.
            replica_ids: Which replicas the first axis holds; defaults to 0..R_chunk-1.
        """
        arr = as_float_array("losses", losses, 3, "(R_chunk, E_chunk, N)")
        check_nonnegative("losses", arr)
        ids = list(range(arr.shape[0])) if replica_ids is None else list(replica_ids)
        if len(ids) != arr.shape[0]:
            raise ValueError(f"replica_ids has {len(ids)} entries for {arr.shape[0]} replicas")
        self._loss_sum = add_per_sample(self._loss_sum, arr.sum(axis=(0, 1)))
        for rid in ids:
            self._replica_epochs[rid] = self._replica_epochs.get(rid, 0) + arr.shape[1]

    def result(self) -> np.ndarray:
        """Return the (N,) action scores. Higher = harder."""
        if self._loss_sum is None:
            raise ValueError("ActionAccumulator.result() called before any update()")
        epochs = set(self._replica_epochs.values())
        if len(epochs) != 1:
            raise ValueError(
                f"replicas saw different numbers of epochs: {dict(sorted(self._replica_epochs.items()))}"
            )
        return self._loss_sum / len(self._replica_epochs)
