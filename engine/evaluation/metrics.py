"""Transfer metrics: error per bin, bin-vs-error correlation, hard-vs-rest, AUROC.

Pure NumPy/SciPy; every function validates its inputs and returns plain floats/arrays.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
from scipy import stats

MAX_DEGENERATE_RESAMPLES = 0.05  # share of constant bootstrap resamples above which no interval


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


def kendall_tau(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Kendall's tau-b (and two-sided p-value) between two score vectors.

    E.g. the confusion scores of a small and a large ensemble on the same samples:
    tau near 1 means both rank the samples' difficulty alike.

    Returns:
        ``(tau, p)``; NaN when either vector is constant.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    _same_length(a=a, b=b)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan, math.nan
    result = stats.kendalltau(a, b)
    return float(result.statistic), float(result.pvalue)


def kendall_tau_ci(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`kendall_tau` (pairs resampled, seeded).

    One ``scipy.stats.kendalltau`` per resample (O(N log N) each): about 5 s for 1,000
    resamples of 10,000 samples.

    Returns:
        ``(low, high)``; NaN when either vector is constant.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = _same_length(a=a, b=b)
    if n < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan, math.nan
    dist = np.array([
        stats.kendalltau(a[idx], b[idx]).statistic
        for batch in _resample_indices(n, n_boot, seed)
        for idx in batch
    ])  # fmt: skip
    return percentile_interval(dist, level)


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, *, n_bins: int = 15
) -> float:
    """Expected calibration error with equal-width confidence bins.

    ``ECE = sum_b (n_b / N) * |accuracy_b - mean confidence_b|`` over bins (0, 1/B],
    ..., ((B-1)/B, 1].

    Args:
        confidence: Float (N,) predicted-class probability in [0, 1].
        correct: Bool (N,) whether the prediction was right.
        n_bins: B.

    Returns:
        ECE in [0, 1]; lower = better calibrated.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    n = _same_length(confidence=confidence, correct=correct)
    if n == 0:
        return math.nan
    if confidence.min() < 0 or confidence.max() > 1:
        raise ValueError(
            f"confidence must lie in [0, 1], got [{confidence.min()}, {confidence.max()}]"
        )
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        members = bins == b
        if members.any():
            ece += members.sum() / n * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def bootstrap_ci(
    wrong: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of an error rate.

    Args:
        wrong: Bool (N,) per-sample errors.
        n_boot: Resamples.
        level: Coverage, e.g. 0.95.
        seed: Seed of the resampling.

    Returns:
        ``(low, high)``; NaN for an empty input.
    """
    wrong = np.asarray(wrong, dtype=np.float64)
    if len(wrong) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = wrong[rng.integers(0, len(wrong), size=(n_boot, len(wrong)))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def pearson_rows(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson r of ``a`` and ``b`` along ``axis`` (vectorised over the other axes); NaN where constant."""
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=axis) / np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))


def correlation_ci(
    x: np.ndarray,
    y: np.ndarray,
    *,
    method: str = "pearson",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """A correlation of paired per-sample values with its percentile bootstrap interval.

    With a 0/1 ``y`` (a model's per-sample error) Pearson's r is the point-biserial
    correlation: r > 0 means the samples the model gets wrong score higher on ``x``.
    The interval resamples the pairs (``scipy.stats.bootstrap``, ``paired=True``,
    ``method="percentile"``, seeded), so it is reproducible with the seed.

    Args:
        x: Float (N,), e.g. a difficulty score.
        y: Float or bool (N,), e.g. 1.0 where a model erred.
        method: ``pearson`` or ``spearman``.
        n_boot: Resamples.
        level: Coverage, e.g. 0.95.
        seed: Seed of the resampling.

    Returns:
        ``(r, low, high)``; all NaN when either vector is constant or N < 3. A
        resample in which either side is constant (no error drawn) has no r and is
        left out; when more than :data:`MAX_DEGENERATE_RESAMPLES` of them are, the
        interval is NaN (too few errors to bound r).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = _same_length(x=x, y=y)
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan, math.nan
    if method == "spearman":
        x, y = stats.rankdata(x), stats.rankdata(y)  # Spearman = Pearson of the ranks

    r = float(pearson_rows(x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples give NaN: counted below
        res = stats.bootstrap(
            (x, y), pearson_rows, paired=True, vectorized=True, n_resamples=n_boot,
            confidence_level=level, method="percentile", random_state=seed,
            batch=max(1, 2_000_000 // n),
        )  # fmt: skip
    return r, *percentile_interval(res.bootstrap_distribution, level)


def percentile_interval(dist: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of a bootstrap distribution; NaN when too many resamples are NaN.

    A resample without a value (NaN: a constant side, an absent class) is left out;
    when more than :data:`MAX_DEGENERATE_RESAMPLES` of them are, there is no interval.
    """
    finite = dist[np.isfinite(dist)]
    if len(finite) < (1 - MAX_DEGENERATE_RESAMPLES) * len(dist) or not len(finite):
        return math.nan, math.nan
    alpha = (1 - level) / 2
    return float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))


def _resample_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Batches of (b, n) bootstrap indices, ``n_boot`` rows in all, at most ~2M entries each."""
    rng = np.random.default_rng(seed)
    batch = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_boot, batch):
        yield rng.integers(0, n, size=(min(batch, n_boot - start), n))


def auroc_ci(
    scores: np.ndarray,
    positives: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`auroc` (samples resampled with replacement).

    Returns:
        ``(low, high)``; NaN when either class is absent in more than
        :data:`MAX_DEGENERATE_RESAMPLES` of the resamples (or in the data).
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    n = _same_length(scores=scores, positives=positives)
    if n == 0 or positives.all() or not positives.any():
        return math.nan, math.nan
    # A resample is a multiplicity per sample; U sums, over positives, the negative
    # weight below (plus half the tied), read off cumulative sums over the distinct
    # score values: O(n) per resample instead of a sort.
    values, group = np.unique(scores, return_inverse=True)
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(len(values)))
    dist = []
    for idx in _resample_indices(n, n_boot, seed):
        b = len(idx)
        flat = (idx + n * np.arange(b)[:, None]).ravel()
        w = np.bincount(flat, minlength=n * b).reshape(b, n)[:, order].astype(np.float64)
        pos = positives[order]
        w_pos = np.add.reduceat(w * pos, starts, axis=1)
        w_neg = np.add.reduceat(w * ~pos, starts, axis=1)
        below = np.cumsum(w_neg, axis=1) - w_neg
        u = (w_pos * (below + 0.5 * w_neg)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            dist.append(u / (w_pos.sum(axis=1) * w_neg.sum(axis=1)))
    return percentile_interval(np.concatenate(dist), level)


def bin_centres(hardness_values: np.ndarray, bins: np.ndarray, num_bins: int) -> np.ndarray:
    """Float (B,) mean of ``hardness_values`` in each bin (NaN for an empty bin)."""
    hardness_values, bins = np.asarray(hardness_values, dtype=np.float64), np.asarray(bins)
    counts = np.bincount(bins[bins >= 0], minlength=num_bins).astype(np.float64)
    sums = np.bincount(bins[bins >= 0], weights=hardness_values[bins >= 0], minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def pearson_bins(
    centres: np.ndarray,
    error: np.ndarray,
    bins: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float, float]:
    """Pearson rho between bin centre and per-bin error, with a bootstrap interval.

    The paper's Figures 2, 4 and 6 correlate error with the score over bins; the x of
    each bin is its centre in the score's (hardness) units, not its index, so unequal
    bins are placed where they are. The interval resamples the samples (bins and
    centres fixed) and recomputes the per-bin errors.

    Args:
        centres: Float (B,) x of each bin (e.g. :func:`bin_centres`).
        error: Float (N,) per-sample error (1 - quality).
        bins: Int (N,) bin of each sample in [0, B).
        n_boot: Resamples.
        level: Coverage.
        seed: Seed of the resampling.

    Returns:
        ``(rho, p, low, high)``; NaN when fewer than 3 bins are non-empty or the errors
        are constant.
    """
    centres = np.asarray(centres, dtype=np.float64)
    error, bins = np.asarray(error, dtype=np.float64), np.asarray(bins)
    n = _same_length(error=error, bins=bins)
    nb = len(centres)
    counts = np.bincount(bins, minlength=nb).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_bin = np.bincount(bins, weights=error, minlength=nb) / counts
    keep = (counts > 0) & np.isfinite(centres)
    if keep.sum() < 3 or np.ptp(per_bin[keep]) == 0:
        return math.nan, math.nan, math.nan, math.nan
    result = stats.pearsonr(centres[keep], per_bin[keep])
    dist = []
    x = centres[keep]
    for idx in _resample_indices(n, n_boot, seed):
        b, e = bins[idx], error[idx]
        flat = b + nb * np.arange(len(idx))[:, None]  # one bincount for the whole batch
        c = np.bincount(flat.ravel(), minlength=nb * len(idx)).reshape(len(idx), nb)
        w = np.bincount(flat.ravel(), weights=e.ravel(), minlength=nb * len(idx))
        with np.errstate(invalid="ignore", divide="ignore"):
            y = (w.reshape(len(idx), nb) / c)[:, keep]
        dist.append(pearson_rows(np.broadcast_to(x, y.shape), y))
    low, high = percentile_interval(np.concatenate(dist), level)
    return float(result.statistic), float(result.pvalue), low, high


METRICS = {
    "top1_error": top1_error,
    "error_per_bin": error_per_bin,
    "pearson_bin_error": pearson_bin_error,
    "kendall_tau": kendall_tau,
    "auroc": auroc,
    "expected_calibration_error": expected_calibration_error,
    "bootstrap_ci": bootstrap_ci,
    "correlation_ci": correlation_ci,
    "auroc_ci": auroc_ci,
    "kendall_tau_ci": kendall_tau_ci,
    "pearson_bins": pearson_bins,
}  # the metrics registry: name -> function


def get_metric(name: str):
    """Return the registered metric ``name`` (an unknown name lists close matches)."""
    from engine._util import unknown_name_error

    if name not in METRICS:
        raise unknown_name_error("metric", name, METRICS)
    return METRICS[name]
