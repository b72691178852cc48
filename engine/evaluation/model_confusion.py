"""Confusion vs accuracy across models (the paper's Section 3.1).

Is a model that is more confused on the pool also less accurate on it? Each model's
confusion is the mean over pool samples of the entropy (nats) of its softmax: one
seed, its final epoch, the same formula as the replicas' confusion with R = E = 1.
Across the models, Pearson's and Spearman's correlation of mean confusion with
accuracy; the intervals resample the pool's samples (seeded), so they cover the
sampling of the pool, not the choice of models: with M models, r rests on M points.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from engine.evaluation.metrics import pearson_rows, percentile_interval

MIN_MODELS = 3  # fewer models leave no correlation to speak of


def softmax_entropy(probs: np.ndarray) -> np.ndarray:
    """Float64 (P,) entropy in nats of each row of (P, K) probabilities (0 log 0 = 0)."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)


def confusion_vs_accuracy(
    model_probs: dict[str, np.ndarray],
    labels: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Each model's mean confusion and accuracy on the pool, and their correlation across models.

    Args:
        model_probs: Model name -> float (P, K) softmax probabilities on the pool.
        labels: Int (P,) labels of the pool.
        n_boot: Resamples of the pool behind each interval.
        level: Coverage.
        seed: Seed of the resampling.

    Returns:
        ``{"models": {name: {"mean_confusion", "accuracy"}}, "num_models", "pearson",
        "pearson_ci95", "spearman", "spearman_ci95", "note"}``; a negative r means the
        more confused models are the less accurate. The correlations are NaN (with a
        note) for fewer than :data:`MIN_MODELS` models or constant values.
    """
    labels = np.asarray(labels)
    names = list(model_probs)
    ent = np.stack([softmax_entropy(model_probs[n]) for n in names]) if names else np.zeros((0, 0))
    right = (
        np.stack([np.argmax(model_probs[n], axis=1) == labels for n in names]).astype(np.float64)
        if names
        else np.zeros((0, 0))
    )
    out: dict[str, object] = {
        "models": {
            n: {"mean_confusion": float(ent[i].mean()), "accuracy": float(right[i].mean())}
            for i, n in enumerate(names)
        },
        "num_models": len(names),
        "pearson": math.nan,
        "pearson_ci95": [math.nan, math.nan],
        "spearman": math.nan,
        "spearman_ci95": [math.nan, math.nan],
        "note": "",
    }
    if len(names) < MIN_MODELS:
        out["note"] = f"{len(names)} model(s): a correlation across models needs {MIN_MODELS}"
        return out
    conf, acc = ent.mean(axis=1), right.mean(axis=1)
    if np.ptp(conf) == 0 or np.ptp(acc) == 0:
        out["note"] = "every model has the same mean confusion or accuracy"
        return out
    out["pearson"] = float(pearson_rows(conf, acc))
    out["spearman"] = float(stats.spearmanr(conf, acc).statistic)
    rng = np.random.default_rng(seed)
    n = ent.shape[1]
    batch = max(1, 2_000_000 // max(n * len(names), 1))
    pearson, spearman = [], []
    for start in range(0, n_boot, batch):
        idx = rng.integers(0, n, size=(min(batch, n_boot - start), n))
        c = ent[:, idx].mean(axis=-1).T  # (b, M)
        a = right[:, idx].mean(axis=-1).T
        pearson.append(pearson_rows(c, a))
        spearman.append(
            pearson_rows(stats.rankdata(c, axis=1), stats.rankdata(a, axis=1))
        )  # Spearman = Pearson of ranks
    out["pearson_ci95"] = list(percentile_interval(np.concatenate(pearson), level))
    out["spearman_ci95"] = list(percentile_interval(np.concatenate(spearman), level))
    out["note"] = (
        f"{len(names)} models, one seed each, final epoch; intervals resample the pool's "
        f"{n} samples ({n_boot} resamples), not the choice of models"
    )
    return out
