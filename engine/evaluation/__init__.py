"""Metrics (a registry of them) and the evaluation of models on built splits."""

from engine.evaluation.evaluate import evaluate_predictions
from engine.evaluation.metrics import (
    METRICS,
    auroc,
    bootstrap_ci,
    error_per_bin,
    expected_calibration_error,
    get_metric,
    kendall_tau,
    pearson_bin_error,
    top1_error,
)

__all__ = [
    "METRICS",
    "auroc",
    "bootstrap_ci",
    "error_per_bin",
    "evaluate_predictions",
    "expected_calibration_error",
    "get_metric",
    "kendall_tau",
    "pearson_bin_error",
    "top1_error",
]
