"""Transfer metrics: error per bin, bin-vs-error correlation, hard-vs-rest, AUROC.

Pure NumPy/SciPy; every function validates its inputs and returns plain floats/arrays.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs must have the same length, got {lengths}")
    return next(iter(lengths.values()))


def top1_error(labels: np.ndarray, preds: np.ndarray) -> float:
    """Fraction of samples whose predicted class differs from the label (NaN when empty)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    n = _same_length(labels=labels, preds=preds)
    return float(np.mean(labels != preds)) if n else math.nan


def error_per_bin(
    labels: np.ndarray, preds: np.ndarray, bins: np.ndarray, num_bins: int
) -> np.ndarray:
    """Top-1 error in each bin.

    Args:
        labels: Int (N,).
        preds: Int (N,) predicted classes.
        bins: Int (N,) bin index in [0, num_bins).
        num_bins: B.

    Returns:
        Float (B,) error per bin; NaN for an empty bin.
    """
    labels, preds, bins = np.asarray(labels), np.asarray(preds), np.asarray(bins)
    _same_length(labels=labels, preds=preds, bins=bins)
    if len(bins) and (bins.min() < 0 or bins.max() >= num_bins):
        raise ValueError(f"bins must lie in [0, {num_bins}), got [{bins.min()}, {bins.max()}]")
    return np.array([top1_error(labels[bins == b], preds[bins == b]) for b in range(num_bins)])


def pearson_bin_error(bin_errors: np.ndarray) -> tuple[float, float]:
    """Pearson rho (and two-sided p-value) between bin index and error.

    A positive rho means error rises with the score bin (the paper's claim).

    Returns:
        ``(rho, p)``; NaN when the errors are constant or fewer than 3 bins are non-empty.
    """
    errors = np.asarray(bin_errors, dtype=np.float64)
    idx = np.arange(len(errors), dtype=np.float64)
    keep = ~np.isnan(errors)
    if keep.sum() < 3 or np.ptp(errors[keep]) == 0:
        return math.nan, math.nan
    result = stats.pearsonr(idx[keep], errors[keep])
    return float(result.statistic), float(result.pvalue)


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` as a predictor of ``positives``.

    Computed from the Mann-Whitney U statistic with average ranks for ties, so it
    equals the probability that a random positive outscores a random negative (ties
    count one half).

    Args:
        scores: Float (N,); higher = predicted positive (e.g. confusion score).
        positives: Bool (N,), e.g. "the model got this sample wrong".

    Returns:
        AUROC in [0, 1]; NaN (with a warning) if all samples are in one class.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    _same_length(scores=scores, positives=positives)
    n_pos = int(positives.sum())
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        warnings.warn("AUROC is undefined with only one class present; returning NaN", stacklevel=2)
        return math.nan
    ranks = stats.rankdata(scores)
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))
