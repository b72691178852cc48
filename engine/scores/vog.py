"""Variance of gradients (Agarwal, D'souza, Hooker 2022)."""

from __future__ import annotations

import numpy as np

from engine.scores._moments import RunningMoments
from engine.scores._validation import as_float_array


def vog(input_grads: np.ndarray) -> np.ndarray:
    """Variance of gradients: per-element std over checkpoints of the input gradient.

    The gradient is that of the true-class logit w.r.t. the input; its std over
    checkpoints is averaged over input elements, then over replicas.

    Args:
        input_grads: Float (R, T, N, D): R replicas, T checkpoints (epochs where the
            gradients were recorded, T >= 2), N samples, D input elements.

    Returns:
        Float (N,) >= 0, before the per-class normalisation of
        :func:`normalize_within_groups` (which the scoring pool applies by default).
        Higher = harder.
    """
    grads = as_float_array("input_grads", input_grads, 4, "(R, T, N, D)")
    if grads.shape[1] < 2:
        raise ValueError(f"VoG needs gradients from at least 2 checkpoints, got T={grads.shape[1]}")
    return grads.std(axis=1).mean(axis=-1).mean(axis=0)


class VoGAccumulator:
    """Streaming :func:`vog` over checkpoint chunks (running moments per input element)."""

    def __init__(self) -> None:
        self._moments = RunningMoments()  # over checkpoints, per (replica, sample, element)

    def update(self, input_grads: np.ndarray) -> None:
        """Add a chunk of checkpoints: (R, T_chunk, N, D)."""
        self._moments.update(as_float_array("input_grads", input_grads, 4, "(R, T_chunk, N, D)"))

    def result(self) -> np.ndarray:
        """(N,) VoG. Higher = harder."""
        if self._moments.count < 2:
            raise ValueError(f"VoG needs at least 2 checkpoints, got {self._moments.count}")
        return self._moments.std().mean(axis=-1).mean(axis=0)


def normalize_within_groups(
    values: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """Z-score ``values`` within each class (and group), as Agarwal et al. normalise VoG.

    VoG's scale differs between classes (some digits simply have larger gradients);
    the paper ranks samples within their class by ``(VoG - mean_c) / std_c``. Here the
    mean and standard deviation (ddof=0) are taken over the samples sharing a label
    and, when given, a group (the data split: train and held-out samples have
    different gradient scales). A group of one sample, or of equal values, gets 0.

    Args:
        values: Float (N,) raw scores.
        labels: Int (N,) class of each sample.
        groups: (N,) group of each sample (any hashable dtype), or None.

    Returns:
        Float (N,) z-scores; higher = harder still.
    """
    values = as_float_array("values", values, 1, "(N,)")
    labels = np.asarray(labels)
    if labels.shape != values.shape:
        raise ValueError(f"labels must have shape {values.shape}, got {labels.shape}")
    keys = (
        labels
        if groups is None
        else np.char.add(np.asarray(groups).astype(str), np.char.add("|", labels.astype(str)))
    )
    _, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1)
    count = np.bincount(inverse).astype(np.float64)
    mean = np.bincount(inverse, weights=values) / count
    centred = values - mean[inverse]
    std = np.sqrt(np.bincount(inverse, weights=centred**2) / count)
    return np.where(std[inverse] > 0, centred / np.where(std > 0, std, 1.0)[inverse], 0.0)
