"""Validation shared by the public score functions (no torch, Ray or I/O here)."""

from __future__ import annotations

import numpy as np

PROBS_SUM_ATOL = 1e-3  # largest |sum_k p_k - 1| accepted for a probability row (float16 safe)


def as_float_array(name: str, value: object, ndim: int, shape_doc: str) -> np.ndarray:
    """Return ``value`` as a float64 array after checking its rank and finiteness.

    Args:
        name: Argument name used in error messages.
        value: Array-like input.
        ndim: Required number of dimensions.
        shape_doc: Human-readable expected shape, e.g. ``"(R, E, N, K)"``.

    Returns:
        The input as a float64 ndarray.

    Raises:
        ValueError: On wrong rank, empty input, or NaN/inf entries.
    """
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} holds a non-finite value {arr[index]!r} at index {index}")
    return arr


def check_probabilities(name: str, probs: np.ndarray, atol: float = PROBS_SUM_ATOL) -> None:
    """Check that the last axis of ``probs`` holds probability distributions.

    Args:
        name: Argument name used in error messages.
        probs: Array whose last axis is the class axis.
        atol: Tolerance on the row sums.

    Raises:
        ValueError: On a negative entry or a row whose sum is off by more than ``atol``.
    """
    negative = probs < 0
    if negative.any():
        index = tuple(int(i) for i in np.argwhere(negative)[0])
        raise ValueError(
            f"{name} must be non-negative probabilities, got {probs[index]!r} at index {index}"
        )
    sums = probs.sum(axis=-1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        index = tuple(int(i) for i in np.argwhere(off)[0])
        raise ValueError(
            f"{name} rows must sum to 1 (tolerance {atol}), the row at index {index} "
            f"sums to {sums[index]:.6f}"
        )


def check_nonnegative(name: str, values: np.ndarray) -> None:
    """Raise a ValueError naming the first negative entry of ``values``, if any."""
    negative = values < 0
    if negative.any():
        index = tuple(int(i) for i in np.argwhere(negative)[0])
        raise ValueError(f"{name} must be >= 0, got {values[index]!r} at index {index}")


def add_per_sample(total: np.ndarray | None, chunk: np.ndarray) -> np.ndarray:
    """Running per-sample sum for accumulators: ``chunk`` alone at first, then ``total + chunk``.

    Raises:
        ValueError: If ``chunk`` covers a different number of samples than ``total``.
    """
    if total is None:
        return chunk.copy()
    if total.shape != chunk.shape:
        raise ValueError(
            f"every chunk must cover the same N={total.shape[0]} samples, got N={chunk.shape[0]}"
        )
    return total + chunk


def as_labels(labels: object, n: int, k: int | None = None) -> np.ndarray:
    """Return ``labels`` as an int64 (N,) array after checking shape and range.

    Args:
        labels: Array-like of class indices.
        n: Expected number of samples N.
        k: Number of classes K; when given, every label must lie in [0, K).

    Raises:
        ValueError: On a wrong shape, non-integer values, or the first out-of-range label.
    """
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise ValueError(f"labels must have shape (N,) = ({n},), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if k is not None:
        bad = (arr < 0) | (arr >= k)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"labels must lie in [0, {k}), got {arr[i]} at sample index {i}")
    return arr
