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
        Float (N,) >= 0. Higher = harder.
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
