"""Evaluate one model's predictions on a built benchmark: overall, hard split, every bin."""

from __future__ import annotations

import warnings

import numpy as np

from engine.evaluation.metrics import auroc, error_per_bin, pearson_bin_error, top1_error
from engine.splits.builder import BuiltSplits


def evaluate_predictions(name: str, preds: np.ndarray, splits: BuiltSplits) -> dict:
    """Transfer metrics of one model on the pool of a built benchmark.

    Args:
        name: Model label.
        preds: Int (P,) predicted classes, aligned with ``splits.sample_ids``.
        splits: The built benchmark.

    Returns:
        ``{"model", "error_all", "error_hard", "error_rest", "hard_minus_rest",
        "error_per_bin" (list), "pearson_rho", "pearson_p", "auroc_score_error",
        "num_errors"}``.
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
        roc = auroc(splits.score, wrong)
    hard = top1_error(splits.labels[splits.is_hard], preds[splits.is_hard])
    rest = top1_error(splits.labels[~splits.is_hard], preds[~splits.is_hard])
    return {
        "model": name,
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
