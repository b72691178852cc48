"""Metrics and the evaluation of models on built splits."""

from engine.evaluation.evaluate import evaluate_predictions
from engine.evaluation.metrics import auroc, error_per_bin, pearson_bin_error, top1_error

__all__ = ["auroc", "error_per_bin", "evaluate_predictions", "pearson_bin_error", "top1_error"]
