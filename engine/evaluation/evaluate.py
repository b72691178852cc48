"""Evaluate one model's predictions on a built benchmark: overall, hard split, every bin."""

from __future__ import annotations

import math
import warnings

import numpy as np

from engine.evaluation.metrics import (
    auroc,
    bootstrap_ci,
    error_per_bin,
    expected_calibration_error,
    pearson_bin_error,
    top1_error,
)
from engine.splits.builder import BuiltSplits

BOOTSTRAP_RESAMPLES = 1000  # resamples behind each error's 95% confidence interval


def evaluate_predictions(
    name: str,
    preds: np.ndarray,
    splits: BuiltSplits,
    *,
    confidence: np.ndarray | None = None,
    seed: int = 0,
    in_sample: bool = False,
    params: int | None = None,
) -> dict:
    """Transfer metrics of one model on the pool of a built benchmark.

    Every difficulty-ranked metric reads the splitting score in its own direction:
    bins run from easiest (0) to hardest, so ``pearson_rho`` > 0 means error rises
    with difficulty, and ``auroc_score_error`` is the AUROC of the score's hardness
    (:attr:`BuiltSplits.hardness`) as a predictor of this model's errors (> 0.5: the
    harder a sample by the score, the likelier the model gets it wrong).

    Args:
        name: Model label.
        preds: Int (P,) predicted classes, aligned with ``splits.sample_ids``.
        splits: The built benchmark.
        confidence: Float (P,) predicted-class probability, for the calibration error.
        seed: Seed of the bootstrap resampling.
        in_sample: The model is the scorer itself (the replicas' ensemble, whose score
            cut the bins): its metrics are in-sample, not transfer.
        params: Its number of parameters, for the tables.

    Returns:
        ``{"model", "in_sample", "params", "error_all", "error_hard", "error_rest",
        "hard_minus_rest", "error_per_bin" (list), "pearson_rho", "pearson_p",
        "auroc_score_error", "num_errors", "error_all_ci95", "error_hard_ci95"
        (pairs), "ece"}``.
    """
    preds = np.asarray(preds)
    if preds.shape != splits.labels.shape:
        raise ValueError(
            f"{name}: preds has shape {preds.shape}, the pool has {splits.labels.shape}"
        )
    wrong = preds != splits.labels
    per_bin = error_per_bin(splits.labels, preds, splits.bins, len(splits.bin_edges))
    rho, p = pearson_bin_error(per_bin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a model with no errors has an undefined AUROC: NaN
        roc = auroc(splits.hardness, wrong)
    hard = top1_error(splits.labels[splits.is_hard], preds[splits.is_hard])
    rest = top1_error(splits.labels[~splits.is_hard], preds[~splits.is_hard])
    hard_ci = bootstrap_ci(wrong[splits.is_hard], n_boot=BOOTSTRAP_RESAMPLES, seed=seed)
    all_ci = bootstrap_ci(wrong, n_boot=BOOTSTRAP_RESAMPLES, seed=seed)
    ece = math.nan if confidence is None else expected_calibration_error(confidence, ~wrong)
    return {
        "model": name,
        "in_sample": in_sample,
        "params": params,
        "error_all_ci95": list(all_ci),
        "error_hard_ci95": list(hard_ci),
        "ece": ece,
        "error_all": top1_error(splits.labels, preds),
        "error_hard": hard,
        "error_rest": rest,
        "hard_minus_rest": hard - rest,
        "error_per_bin": [float(e) for e in per_bin],
        "pearson_rho": rho,
        "pearson_p": p,
        "auroc_score_error": roc,
        "num_errors": int(wrong.sum()),
    }


IN_SAMPLE_LABEL = "scorer, in-sample"  # how the replicas' own ensemble is marked in every table
SINGLE_REPLICA = "single replica"  # what the "ensemble" of replicas.count: 1 is called


def transfer_rows(evaluations: list[dict]) -> list[dict]:
    """The evaluations that are transfer results: every model but the in-sample scorer."""
    return [ev for ev in evaluations if not ev.get("in_sample")]


def display_name(ev: dict) -> str:
    """A model's label in tables and plots: the ensemble is marked as the in-sample scorer.

    One replica is no ensemble: its column reads ``single replica (scorer, in-sample)``.
    """
    if not ev.get("in_sample"):
        return ev["model"]
    name = SINGLE_REPLICA if ev.get("replicas") == 1 else ev["model"]
    return f"{name} ({IN_SAMPLE_LABEL})"


def format_params(count: int | None) -> str:
    """A parameter count for tables: ``4.8k``, ``11.2M``; ``?`` when unknown."""
    if count is None:
        return "?"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.1f}{suffix}"
    return str(count)
