"""Variance of gradients (Agarwal, D'souza, Hooker 2022)."""

from __future__ import annotations

import numpy as np

from engine.scores._moments import RunningMoments
from engine.scores._validation import as_float_array


def vog(input_grads: np.ndarray) -> np.ndarray:
    """Variance of gradients: per-element std over checkpoints of the input gradient.

    The gradient is that of the true-class logit w.r.t. the input (images, tables), or
    of the true-class log-likelihood w.r.t. the embedded tokens (text; see
    :func:`engine.training.classification.input_gradients`). Its std over checkpoints
    is averaged over input elements, then over replicas.

    NaN marks an element the sample does not have (a padding position of a text): it
    must be NaN at every checkpoint, and the mean over elements skips it (it counts
    in neither the sum nor the count).

    Args:
        input_grads: Float (R, T, N, D): R replicas, T checkpoints (epochs where the
            gradients were recorded, T >= 2), N samples, D input elements.

    Returns:
        Float (N,) >= 0, before the per-class normalisation of
        :func:`normalize_within_groups` (which the scoring pool applies by default).
        Higher = harder.

    Raises:
        ValueError: For T < 2, NaN at some checkpoints of an element but not all, or a
            sample with no element that is not NaN.
    """
    grads = _as_gradients(input_grads, "(R, T, N, D)")
    if grads.shape[1] < 2:
        raise ValueError(f"VoG needs gradients from at least 2 checkpoints, got T={grads.shape[1]}")
    missing = np.isnan(grads)
    absent = missing.all(axis=1)
    _check_missing(missing.any(axis=1) & ~absent, absent)
    return _mean_over_elements(grads.std(axis=1), absent).mean(axis=0)


class VoGAccumulator:
    """Streaming :func:`vog` over checkpoint chunks (running moments per input element)."""

    def __init__(self) -> None:
        self._moments = RunningMoments()  # over checkpoints, per (replica, sample, element)
        self._absent: np.ndarray | None = None  # (R, N, D): NaN in the first chunk (padding)
        self._mixed: np.ndarray | None = None  # (R, N, D): NaN in some chunks but not others

    def update(self, input_grads: np.ndarray) -> None:
        """Add a chunk of checkpoints: (R, T_chunk, N, D); NaN marks padding."""
        grads = _as_gradients(input_grads, "(R, T_chunk, N, D)")
        self._moments.update(grads)  # refuses a chunk of another shape
        missing = np.isnan(grads)
        absent = missing.all(axis=1)
        mixed = missing.any(axis=1) & ~absent
        if self._absent is None:
            self._absent, self._mixed = absent, mixed
        else:
            self._mixed = self._mixed | mixed | (self._absent != absent)

    def result(self) -> np.ndarray:
        """(N,) VoG. Higher = harder."""
        if self._moments.count < 2:
            raise ValueError(f"VoG needs at least 2 checkpoints, got {self._moments.count}")
        _check_missing(self._mixed, self._absent)
        return _mean_over_elements(self._moments.std(), self._absent).mean(axis=0)


def _as_gradients(value: object, shape_doc: str) -> np.ndarray:
    """``value`` as float64 of rank 4, non-empty, with no infinity (NaN marks padding)."""
    grads = np.asarray(value, dtype=np.float64)
    if grads.ndim != 4:
        raise ValueError(f"input_grads must have shape {shape_doc}, got shape {grads.shape}")
    if grads.size == 0:
        raise ValueError(f"input_grads must not be empty, got shape {grads.shape}")
    infinite = np.isinf(grads)
    if infinite.any():
        index = tuple(int(i) for i in np.argwhere(infinite)[0])
        raise ValueError(f"input_grads holds {grads[index]!r} at index {index}")
    return grads


def _check_missing(mixed: np.ndarray, absent: np.ndarray) -> None:
    """Refuse NaN that is not padding: NaN at some checkpoints only, or a sample all NaN."""
    if mixed.any():
        r, n, d = (int(i[0]) for i in np.nonzero(mixed))
        raise ValueError(
            f"input gradient of replica {r}, sample row {n}, element {d} is NaN at some "
            "checkpoints and not at others: NaN marks padding, the same at every checkpoint "
            "(a NaN gradient elsewhere means the replica diverged)"
        )
    empty = absent.all(axis=-1)
    if empty.any():
        r, n = (int(i[0]) for i in np.nonzero(empty))
        raise ValueError(
            f"input gradient of replica {r}, sample row {n} is NaN at every element: a "
            "sample needs at least one element (token) that is not padding"
        )


def _mean_over_elements(std: np.ndarray, absent: np.ndarray) -> np.ndarray:
    """(R, N) mean of (R, N, D) ``std`` over the elements that are not ``absent``."""
    if not absent.any():
        return std.mean(axis=-1)  # no padding: exactly the plain mean
    kept = (~absent).sum(axis=-1)
    return np.where(absent, 0.0, std).sum(axis=-1) / kept


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
