"""Confident learning: how many given labels are wrong, and which (Northcutt et al., JAIR 2021).

From out-of-fold probabilities ``pred_probs`` (N, K) and the given labels (N,), in our
own NumPy (cleanlab 2.x is the reference these functions are tested against, not a
runtime dependency):

- :func:`confident_thresholds`: t_k = mean self-confidence p_k of the samples given label k;
- :func:`confident_joint`: C[i, j] = number of samples given label i that are confidently
  of class j (p_j >= t_j; the most probable such class when several are), calibrated so
  that row i sums to the count of label i and the whole to N;
- :func:`estimate_joint`: Q = C / N, the joint distribution P(given = i, true = j);
- :func:`num_label_issues`: the estimated number of wrong labels (off-diagonal of C);
- :func:`label_issues_per_class`: the same per given label;
- :func:`find_label_issues`: which samples, by pruning by noise rate;
- :func:`label_error_rate`: the estimated rate with a seeded bootstrap interval.

Every count is oriented ``[given label, true label]``. More estimated issues = noisier
labels.
"""

from __future__ import annotations

import numpy as np

from engine.evaluation.evaluate import BOOTSTRAP_RESAMPLES
from engine.evaluation.metrics import percentile_interval

# Tolerance of the "p_j >= t_j" comparison, as cleanlab's FLOATING_POINT_COMPARISON.
FLOAT_TOLERANCE = 1e-6
# Lower clip of a class threshold (cleanlab's CONFIDENT_THRESHOLDS_LOWER_BOUND).
THRESHOLD_FLOOR = 2 * FLOAT_TOLERANCE
# Threshold of a class no sample is given: no probability reaches it (cleanlab's BIG_VALUE).
ABSENT_CLASS_THRESHOLD = 2.0
# Floor of a denominator in the calibration (cleanlab's TINY_VALUE).
TINY = 1e-100
# Largest deviation of a probability row's sum from 1 that is accepted.
ROW_SUM_TOLERANCE = 1e-3
# Methods of :func:`num_label_issues`, named as cleanlab's ``estimation_method``.
ESTIMATION_METHODS = ("off_diagonal_calibrated", "off_diagonal")


def _check(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``labels`` (N,) and ``pred_probs`` (N, K) once, at the edge."""
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"pred_probs must have shape (N, K) with K >= 2, got {probs.shape}")
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(probs):
        raise ValueError(f"labels must have shape ({len(probs)},), got {y.shape}")
    if not len(y):
        raise ValueError("confident learning needs at least one sample, got none")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    k = probs.shape[1]
    bad = np.flatnonzero((y < 0) | (y >= k))
    if len(bad):
        raise ValueError(
            f"labels must be in [0, {k}): row {bad[0]} has {y[bad[0]]} (drop unlabelled rows)"
        )
    if not np.all(np.isfinite(probs)) or probs.min() < 0:
        row = int(np.flatnonzero(~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1))[0])
        raise ValueError(f"pred_probs must be finite and >= 0: row {row} is {probs[row]}")
    off = np.abs(probs.sum(axis=1) - 1.0)
    if off.max() > ROW_SUM_TOLERANCE:
        row = int(off.argmax())
        raise ValueError(
            f"pred_probs rows must sum to 1: row {row} sums to {probs[row].sum():.6f} "
            "(pass probabilities, not logits)"
        )
    return y.astype(np.int64), probs


def _thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    k = probs.shape[1]
    present = np.bincount(labels, minlength=k) > 0
    t = np.array(
        [np.mean(probs[labels == c, c]) if present[c] else ABSENT_CLASS_THRESHOLD for c in range(k)]
    )
    return np.clip(t, THRESHOLD_FLOOR, None)


def confident_thresholds(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Per-class thresholds: the mean self-confidence of the samples given each label.

    Args:
        labels: Int (N,) given labels in [0, K).
        pred_probs: Float (N, K) out-of-fold probabilities, rows summing to 1.

    Returns:
        Float64 (K,): ``t[k] = mean(pred_probs[labels == k, k])``, at least
        :data:`THRESHOLD_FLOOR`; :data:`ABSENT_CLASS_THRESHOLD` (unreachable) for a class no
        sample is given.
    """
    return _thresholds(*_check(labels, pred_probs))


def _confident_true_class(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The confidently true class of each sample, or -1 when no class reaches its threshold."""
    confident = probs >= _thresholds(labels, probs) - FLOAT_TOLERANCE
    count = confident.sum(axis=1)
    guess = np.where(count > 1, probs.argmax(axis=1), confident.argmax(axis=1))
    return np.where(count > 0, guess, -1)


def _round_preserving_sum(row: np.ndarray) -> np.ndarray:
    """Round a float row to integers whose sum is the row's rounded sum (largest remainders)."""
    ints = row.round()
    target = np.sum(row).round()
    total = np.sum(ints).round()
    while abs(total - target) > FLOAT_TOLERANCE:
        diff = np.round(target - total)
        step = -1 if diff < 0 else 1
        changes = min(int(abs(diff)), len(row))
        for i in np.argsort(row - ints)[::-step][:changes]:
            ints[i] += step
        total = np.sum(ints).round()
    return ints.astype(np.int64)


def _calibrate(joint: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """Rows rescaled to the given-label counts, the whole to N, rounded keeping row totals."""
    rows = joint / np.clip(joint.sum(axis=1), TINY, None)[:, None] * label_counts[:, None]
    rows = rows / np.clip(np.sum(rows), TINY, None) * np.sum(label_counts)
    return np.stack([_round_preserving_sum(r) for r in rows])


def _joint(labels: np.ndarray, probs: np.ndarray, *, calibrate: bool = True) -> np.ndarray:
    k = probs.shape[1]
    true = _confident_true_class(labels, probs)
    keep = true >= 0
    joint = np.bincount(labels[keep] * k + true[keep], minlength=k * k).reshape(k, k)
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1))  # every class keeps one sample
    if calibrate:
        joint = _calibrate(joint.astype(np.float64), np.bincount(labels, minlength=k))
    return joint.astype(np.int64)


def confident_joint(
    labels: np.ndarray, pred_probs: np.ndarray, *, calibrate: bool = True
) -> np.ndarray:
    """The confident joint ``C[given, true]``: counts of confidently mislabelled samples.

    A sample given label i counts in ``C[i, j]`` when ``p_j >= t_j`` (the thresholds of
    :func:`confident_thresholds`, minus :data:`FLOAT_TOLERANCE`) for j alone, or j is the
    most probable of several such classes; a sample no class is confident about counts
    nowhere. Each diagonal entry is at least 1. Calibrated (the default), row i is rescaled
    to the number of samples given label i, the matrix to N, and rounded keeping each
    row's total: cleanlab's ``compute_confident_joint(calibrate=True)``.

    Args:
        labels: Int (N,) given labels in [0, K).
        pred_probs: Float (N, K) out-of-fold probabilities, rows summing to 1.
        calibrate: Rescale to the given-label counts (True) or return the raw counts.

    Returns:
        Int64 (K, K), rows = given label, columns = (estimated) true label.
    """
    return _joint(*_check(labels, pred_probs), calibrate=calibrate)


def estimate_joint(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """The estimated joint distribution ``Q[given, true] = P(given = i, true = j)``.

    The calibrated confident joint divided by its total (N): cleanlab's
    ``count.estimate_joint``.

    Args:
        labels: Int (N,) given labels in [0, K).
        pred_probs: Float (N, K) out-of-fold probabilities, rows summing to 1.

    Returns:
        Float64 (K, K) summing to 1; row i sums to the share of samples given label i.
    """
    joint = _joint(*_check(labels, pred_probs)).astype(np.float64)
    return joint / np.clip(float(np.sum(joint)), TINY, None)


def _num_issues(labels: np.ndarray, probs: np.ndarray, method: str) -> int:
    if method == "off_diagonal_calibrated":
        joint = _joint(labels, probs).astype(np.float64)
        q = joint / np.clip(float(np.sum(joint)), TINY, None)
        return int(np.rint((1.0 - q.trace()) * len(labels)))
    true = _confident_true_class(labels, probs)
    return int(((true >= 0) & (true != labels) & ~_predicts_given(labels, probs)).sum())


def num_label_issues(
    labels: np.ndarray, pred_probs: np.ndarray, *, method: str = "off_diagonal_calibrated"
) -> int:
    """The estimated number of wrong labels.

    ``off_diagonal_calibrated`` (default): ``round((1 - trace(Q)) * N)`` with ``Q`` of
    :func:`estimate_joint`, the off-diagonal mass of the calibrated joint; it equals
    ``label_issues_per_class(...).sum()``. ``off_diagonal``: the samples counted off the
    diagonal of the *uncalibrated* joint whose most probable class is not their label
    (cleanlab's default, often lower than the calibrated count).
    Both are cleanlab's ``count.num_label_issues(estimation_method=method)``.

    Args:
        labels: Int (N,) given labels in [0, K).
        pred_probs: Float (N, K) out-of-fold probabilities, rows summing to 1.
        method: One of :data:`ESTIMATION_METHODS`.

    Returns:
        The estimate, in [0, N]; higher = noisier labels.
    """
    if method not in ESTIMATION_METHODS:
        raise ValueError(f"method must be one of {', '.join(ESTIMATION_METHODS)}, got {method!r}")
    return _num_issues(*_check(labels, pred_probs), method)


def label_issues_per_class(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Estimated wrong labels per given class: off-diagonal row sums of the calibrated joint.

    Args:
        labels: Int (N,) given labels in [0, K).
        pred_probs: Float (N, K) out-of-fold probabilities, rows summing to 1.

    Returns:
        Int64 (K,): entry i estimates how many samples given label i belong to another
        class; the sum is :func:`num_label_issues` (calibrated).
    """
    joint = _joint(*_check(labels, pred_probs))
    return joint.sum(axis=1) - joint.diagonal()


def _predicts_given(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """True where the given label is (within tolerance) the most probable class."""
    nudged = probs.copy()
    nudged[np.arange(len(labels)), labels] += FLOAT_TOLERANCE
    return nudged.argmax(axis=1) == labels


def _prune_counts(joint: np.ndarray, min_examples_per_class: int) -> np.ndarray:
    """``P[true, given]``: samples to remove per (true, given) pair, each class keeping some.

    A diagonal entry below ``min_examples_per_class`` is raised to it and the raise is
    taken evenly from the column's nonzero off-diagonal entries (floored at 0, truncated
    to integers), as cleanlab's ``_keep_at_least_n_per_class``.
    """
    prune = joint.T.astype(np.float64)
    diagonal = prune.diagonal().copy()
    new_diagonal = np.maximum(diagonal, min_examples_per_class)
    nonzero_off = np.maximum(np.count_nonzero(prune, axis=0) - 1.0, 1.0)
    prune = prune - (new_diagonal - diagonal) / nonzero_off
    prune[prune < 0] = 0
    np.fill_diagonal(prune, new_diagonal)
    return prune.astype(np.int64)


def _find_issues(labels: np.ndarray, probs: np.ndarray, min_examples_per_class: int) -> np.ndarray:
    k = probs.shape[1]
    prune = _prune_counts(_joint(labels, probs), min_examples_per_class)
    issues = np.zeros(len(labels), dtype=bool)
    for given in range(k):
        members = np.flatnonzero(labels == given)
        if len(members) <= max(min_examples_per_class, 1):  # too few to prune any
            continue
        p = probs[members]
        flagged = np.zeros(len(members), dtype=bool)
        for true in range(k):
            n = prune[true, given]
            if true != given and n > 0:
                margin = p[:, true] - p[:, given]
                flagged[np.argsort(-margin)[:n]] = True
        issues[members] = flagged
    issues[_predicts_given(labels, probs)] = False
    return issues


def find_label_issues(
    labels: np.ndarray, pred_probs: np.ndarray, *, min_examples_per_class: int = 1
) -> np.ndarray:
    """Which labels look wrong: pruning by noise rate.

    For every given label i and other class j, the ``C[i, j]`` samples given label i with
    the largest margin ``p_j - p_i`` are flagged (``C`` the calibrated confident joint,
    adjusted so each class keeps ``min_examples_per_class`` samples; a class with no more
    samples than that, or with a single sample, is not pruned); a sample is flagged once however many j flag it,
    and a sample whose most probable class is its label (within
    :data:`FLOAT_TOLERANCE`) is never flagged. Ties in the margin are broken by NumPy's
    default argsort, as cleanlab's ``filter.find_label_issues(filter_by=
    "prune_by_noise_rate", frac_noise=1.0)`` does, which this equals.

    Args:
        labels: Int (N,) given labels in [0, K).
        pred_probs: Float (N, K) out-of-fold probabilities, rows summing to 1.
        min_examples_per_class: Samples each given class keeps unflagged (>= 0).

    Returns:
        Bool (N,): True = the label looks wrong. Its sum is at most
        :func:`num_label_issues`.
    """
    if min_examples_per_class < 0:
        raise ValueError(f"min_examples_per_class must be >= 0, got {min_examples_per_class}")
    return _find_issues(*_check(labels, pred_probs), min_examples_per_class)


def label_error_rate(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int | list[float]]:
    """The estimated share of wrong labels, with a percentile bootstrap interval.

    The estimate is :func:`num_label_issues` (calibrated) / N. The interval resamples
    the N samples with replacement ``n_boot`` times (seeded) and recomputes the whole
    estimate (thresholds, joint, count) on each resample.

    Args:
        labels: Int (N,) given labels in [0, K).
        pred_probs: Float (N, K) out-of-fold probabilities, rows summing to 1.
        n_boot: Bootstrap resamples (>= 1).
        level: Coverage of the interval, in (0, 1).
        seed: Seed of the resampling.

    Returns:
        ``{"rate", "ci95": [low, high], "num_label_issues", "samples", "n_boot", "level"}``;
        higher rate = noisier labels.
    """
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and level in (0, 1), got {n_boot} and {level}")
    y, probs = _check(labels, pred_probs)
    n = len(y)
    count = _num_issues(y, probs, "off_diagonal_calibrated")
    rng = np.random.default_rng(seed)
    dist = np.empty(n_boot)
    for b in range(n_boot):
        take = rng.integers(0, n, size=n)
        dist[b] = _num_issues(y[take], probs[take], "off_diagonal_calibrated") / n
    low, high = percentile_interval(dist, level)
    return {
        "rate": count / n,
        "ci95": [low, high],
        "num_label_issues": count,
        "samples": n,
        "n_boot": n_boot,
        "level": level,
    }
