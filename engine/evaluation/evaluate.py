"""Evaluate one model's predictions on a built benchmark: overall, hard split, every bin."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from engine.evaluation.metrics import (
    auroc,
    auroc_ci,
    bin_centres,
    bootstrap_ci,
    correlation_ci,
    expected_calibration_error,
    pearson_bins,
)
from engine.splits.builder import BuiltSplits

BOOTSTRAP_RESAMPLES = 1000  # resamples behind every 95% confidence interval of a rate
# Keys older runs' metrics.json used -> today's key (read old runs through upgrade_evaluation)
LEGACY_KEYS = {"num_errors": "num_misses"}
PARTS = ("all", "hard", "rest")  # the pool, its hard split and the rest, in every key's suffix


@dataclass(frozen=True)
class MetricColumn:
    """A task's own per-sample mean in tables and reports (an ``extra`` of the evaluation).

    Attributes:
        key: Its key prefix in the evaluation (``<key>_all|hard|rest``, ``<key>_per_bin``).
        label: Its name in tables, e.g. ``EM``.
        percent: A rate in [0, 1] shown as a percentage; else a plain number (an NLL).
    """

    key: str
    label: str
    percent: bool = True

    def format(self, value: float | None) -> str:
        """One value as a table cell; ``n/a`` for a missing or NaN value."""
        if value is None or math.isnan(value):
            return "n/a"
        return f"{100 * value:.1f}%" if self.percent else f"{value:.3f}"


def top1_quality(name: str, labels: np.ndarray, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A classifier's per-sample quality (1.0 where right, 0.0 where wrong) and misses.

    Args:
        name: Model label, for the error message.
        labels: Int (P,) labels of the pool.
        preds: Int (P,) predicted classes.

    Returns:
        ``(quality float64 (P,), miss bool (P,))`` for :func:`evaluate_predictions`.

    Raises:
        ValueError: If the shapes differ.
    """
    labels, preds = np.asarray(labels), np.asarray(preds)
    if preds.shape != labels.shape:
        raise ValueError(f"{name}: preds has shape {preds.shape}, the pool has {labels.shape}")
    miss = preds != labels
    return (~miss).astype(np.float64), miss


def _mean(values: np.ndarray) -> float:
    """The mean of ``values`` as a float; NaN for an empty part (an empty hard split or bin)."""
    return float(values.mean()) if len(values) else math.nan


def _per_bin(values: np.ndarray, bins: np.ndarray, num_bins: int) -> list[float]:
    return [_mean(values[bins == b]) for b in range(num_bins)]


def _parts(key: str, values: np.ndarray, splits: BuiltSplits) -> dict[str, object]:
    """``<key>_all``, ``<key>_hard``, ``<key>_rest`` and ``<key>_per_bin`` of one per-sample array."""
    masks = (slice(None), splits.is_hard, ~splits.is_hard)
    out: dict[str, object] = {
        f"{key}_{p}": _mean(values[m]) for p, m in zip(PARTS, masks, strict=True)
    }
    out[f"{key}_per_bin"] = _per_bin(values, splits.bins, len(splits.bin_edges))
    return out


def _intervals(key: str, values: np.ndarray, hard: np.ndarray, seed: int) -> dict[str, list]:
    """Bootstrap 95% intervals of the mean of ``values`` on the pool and on its hard split."""
    return {
        f"{key}_{part}_ci95": list(bootstrap_ci(v, n_boot=BOOTSTRAP_RESAMPLES, seed=seed))
        for part, v in (("all", values), ("hard", values[hard]))
    }


def _bin_intervals(values: np.ndarray, bins: np.ndarray, num_bins: int, seed: int) -> list[list]:
    """Bootstrap 95% interval of the mean of ``values`` in each bin (NaN for an empty bin)."""
    return [
        list(bootstrap_ci(values[bins == b], n_boot=BOOTSTRAP_RESAMPLES, seed=seed))
        for b in range(num_bins)
    ]


def correlations(splits: BuiltSplits, error: np.ndarray, seed: int) -> dict[str, object]:
    """How a model's error follows the splitting score, with bootstrap 95% intervals.

    - ``pearson_r_sample`` (headline): Pearson r of each pool sample's hardness with its
      error (for a 0/1 error: the point-biserial correlation), r > 0 = error rises with
      difficulty;
    - ``pearson_rho`` / ``pearson_p``: over the equal-count bins, with each bin at its
      centre (the mean hardness of its samples) on the x axis, ``bin_centres`` (the
      mean score of each bin, in the score's units) and ``error_per_bin_ci95``;
    - with a bin width (``splits.bins.width``): the fixed-width bins' ``width_bin_edges``
      (score units, ascending), ``width_bin_counts``, ``error_per_width_bin`` and its
      intervals, and ``pearson_rho_width`` over them (their centres on the x axis).

    Args:
        splits: The built benchmark.
        error: Float (P,) per-sample error in [0, 1].
        seed: Seed of the resampling.
    """
    h, nb = splits.hardness, len(splits.bin_edges)
    r, r_lo, r_hi = correlation_ci(h, error, n_boot=BOOTSTRAP_RESAMPLES, seed=seed)
    rho, p, lo, hi = pearson_bins(
        bin_centres(h, splits.bins, nb), error, splits.bins, n_boot=BOOTSTRAP_RESAMPLES, seed=seed
    )
    out: dict[str, object] = {
        "pearson_r_sample": r,
        "pearson_r_sample_ci95": [r_lo, r_hi],
        "pearson_rho": rho,
        "pearson_p": p,
        "pearson_rho_ci95": [lo, hi],
        "error_per_bin_ci95": _bin_intervals(error, splits.bins, nb, seed),
        "bin_centres": bin_centres(splits.score, splits.bins, nb).tolist(),
    }
    edges, wbins = splits.width_edges, splits.width_bins
    if edges is not None:
        nw = len(edges) - 1
        rho_w, p_w, lo_w, hi_w = pearson_bins(
            bin_centres(h, wbins, nw), error, wbins, n_boot=BOOTSTRAP_RESAMPLES, seed=seed
        )
        out.update(
            width_bin_edges=edges.tolist(),
            width_bin_counts=np.bincount(wbins[wbins >= 0], minlength=nw).tolist(),
            error_per_width_bin=_per_bin(error, wbins, nw),
            error_per_width_bin_ci95=_bin_intervals(error, wbins, nw, seed),
            pearson_rho_width=rho_w,
            pearson_p_width=p_w,
            pearson_rho_width_ci95=[lo_w, hi_w],
        )
    return out


def _checked(name: str, what: str, values: np.ndarray, size: int) -> np.ndarray:
    if values.shape != (size,):
        raise ValueError(
            f"{name}: {what} has shape {values.shape}, the pool has {size} samples "
            "(one value per pool sample, in the order of splits.sample_ids)"
        )
    return values


def evaluate_predictions(
    name: str,
    splits: BuiltSplits,
    *,
    quality: np.ndarray,
    miss: np.ndarray,
    seed: int = 0,
    in_sample: bool = False,
    params: int | None = None,
    confidence: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> dict:
    """Transfer metrics of one model on the pool of a built benchmark, for every task.

    A task measures each pool sample once: its ``quality`` in [0, 1] (higher = better:
    1.0 where a classifier is right, exact match for QA, ROUGE-L for seq2seq) and whether
    the model ``miss``-ed it (a wrong class, EM = 0, a reference NLL above the model's
    pool median). Everything else is computed here, the same way for every task. The
    error of a sample is ``1 - quality`` and every ``error_*`` is the mean of it (for a
    classifier: the number of errors over the number of samples, exactly).

    Every difficulty-ranked metric reads the splitting score in its own direction:
    bins run from easiest (0) to hardest, so ``pearson_rho`` > 0 means error rises
    with difficulty, and ``auroc_score_error`` is the AUROC of the score's hardness
    (:attr:`BuiltSplits.hardness`) as a predictor of this model's misses (> 0.5: the
    harder a sample by the score, the likelier the model misses it).

    Args:
        name: Model label.
        splits: The built benchmark.
        quality: Float (P,) per-sample quality in [0, 1], aligned with ``splits.sample_ids``.
        miss: Bool (P,) per-sample misses.
        seed: Seed of the bootstrap resampling.
        in_sample: The model is the scorer itself (the replicas' ensemble, whose score
            cut the bins), or the pool holds its training samples (its evaluation then
            carries ``in_sample_reason``): its metrics are in-sample, not transfer.
        params: Its number of parameters, for the tables.
        confidence: Float (P,) predicted-class probability, for the calibration error
            (``ece`` is NaN without it).
        extra: Task-specific per-sample values (name -> float (P,)), e.g. ``{"em": ...,
            "f1": ...}``: each gets ``<name>_all|hard|rest`` and ``<name>_per_bin``.

    Returns:
        ``{"model", "in_sample", "params", "error_all|hard|rest", "hard_minus_rest",
        "error_per_bin", "error_all_ci95", "error_hard_ci95" (bootstrap of 1 - quality),
        "miss_rate_all|hard|rest", "miss_rate_all_ci95", "miss_rate_hard_ci95",
        "num_misses", "auroc_score_error", "auroc_score_error_ci95", "ece"}``, the keys
        of :func:`correlations` (``pearson_r_sample``, ``pearson_rho`` over bin centres,
        the fixed-width bins, every interval) and the ``extra`` keys.

    Raises:
        ValueError: For an array that is not one value per pool sample, a quality
            outside [0, 1], a non-boolean miss or an ``extra`` name that collides.
    """
    size = len(splits.sample_ids)
    quality = _checked(name, "quality", np.asarray(quality, dtype=np.float64), size)
    miss = _checked(name, "miss", np.asarray(miss), size)
    if confidence is not None:
        confidence = _checked(name, "confidence", np.asarray(confidence), size)
    if miss.dtype != bool:
        raise ValueError(f"{name}: miss must be boolean (True = missed), got dtype {miss.dtype}")
    if size and not (np.all(quality >= 0) and np.all(quality <= 1)):  # NaN fails both
        raise ValueError(
            f"{name}: quality must lie in [0, 1] (higher = better), got values in "
            f"[{np.nanmin(quality)}, {np.nanmax(quality)}]"
            + (" and NaN" if np.isnan(quality).any() else "")
        )
    error = 1.0 - quality  # exact for a 0/1 quality: its mean is (errors / samples)
    errors = _parts("error", error, splits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a model with no misses has an undefined AUROC: NaN
        roc = auroc(splits.hardness, miss)
    hard = splits.is_hard
    error_ci = _intervals("error", error, hard, seed)
    if np.array_equal(miss, error):  # a classifier: a miss is an error, the same resamples
        miss_ci = {f"miss_rate_{k[len('error_') :]}": v for k, v in error_ci.items()}
    else:
        miss_ci = _intervals("miss_rate", miss, hard, seed)
    ev = {
        "model": name,
        "in_sample": in_sample,
        "params": params,
        **{k: errors[k] for k in ("error_all", "error_hard", "error_rest")},
        "hard_minus_rest": errors["error_hard"] - errors["error_rest"],
        "error_per_bin": errors["error_per_bin"],
        **error_ci,
        **{k: v for k, v in _parts("miss_rate", miss, splits).items() if not k.endswith("per_bin")},
        **miss_ci,
        "num_misses": int(miss.sum()),
        **correlations(splits, error, seed),
        "auroc_score_error": roc,
        "auroc_score_error_ci95": list(
            auroc_ci(splits.hardness, miss, n_boot=BOOTSTRAP_RESAMPLES, seed=seed)
        ),
        "ece": math.nan if confidence is None else expected_calibration_error(confidence, ~miss),
    }
    for key, values in (extra or {}).items():
        values = _checked(name, f"extra[{key!r}]", np.asarray(values, dtype=np.float64), size)
        part = _parts(key, values, splits)
        taken = sorted(set(part) & set(ev))
        if taken:
            raise ValueError(f"{name}: extra[{key!r}] would overwrite {', '.join(taken)}")
        ev.update(part)
    return ev


def unmeasured_errors(num_bins: int) -> dict:
    """The error and miss keys of :func:`evaluate_predictions` for a pool without labels.

    Every rate and interval is NaN and ``num_misses`` None: with no label there is no
    error to count (an unlabelled pool's evaluation measures disagreement instead).
    """
    nan = math.nan
    return {
        **{f"error_{p}": nan for p in PARTS},
        "hard_minus_rest": nan,
        "error_per_bin": [nan] * num_bins,
        "error_all_ci95": [nan, nan],
        "error_hard_ci95": [nan, nan],
        **{f"miss_rate_{p}": nan for p in PARTS},
        "miss_rate_all_ci95": [nan, nan],
        "miss_rate_hard_ci95": [nan, nan],
        "num_misses": None,
        "pearson_r_sample": nan,
        "pearson_r_sample_ci95": [nan, nan],
        "pearson_rho_ci95": [nan, nan],
        "error_per_bin_ci95": [[nan, nan]] * num_bins,
        "bin_centres": [nan] * num_bins,
        "auroc_score_error": nan,
        "auroc_score_error_ci95": [nan, nan],
        "ece": nan,
    }


def upgrade_evaluation(ev: dict) -> dict:
    """An evaluation record of an older run with today's keys (``num_errors`` -> ``num_misses``).

    Every reader of ``eval/metrics.json`` or of a card's ``evaluation`` goes through this,
    so runs written before the keys were unified still open. Keys an older run never
    wrote (a text run's ``ece``, a classification run's ``miss_rate_*``) stay absent.
    """
    out = dict(ev)
    for old, new in LEGACY_KEYS.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out
