"""The transfer figures on the training samples, beside the held-out pool (the paper's Figure 2).

The paper shows error against confusion on both the training and the validation
samples of one run. The evaluated models trained on the training samples (they saw
their labels), so these figures are in-sample: they show how the score's ranking
carries to samples a model has fitted, not a transfer result. Classification only.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.data import SPLIT_TRAIN
from engine.evaluation.evaluate import evaluate_predictions, top1_quality
from engine.spec import BenchmarkSpec
from engine.splits.builder import pool_view

TRAIN_KEY = "train_samples"  # where an evaluation holds its figures on the training samples
TRAIN_FIGURES = (
    "error_all", "error_hard", "error_rest", "error_per_bin", "error_per_bin_ci95",
    "bin_centres", "pearson_r_sample", "pearson_r_sample_ci95", "pearson_rho",
    "pearson_rho_ci95", "auroc_score_error", "auroc_score_error_ci95",
)  # fmt: skip
TRAINED_ON_THEM = "the evaluated models trained on these samples (in-sample)"


def add_training_figures(
    evaluations: list[dict],
    spec: BenchmarkSpec,
    scores: pa.Table,
    ensemble_pred: np.ndarray | None,
    logits: dict[str, np.ndarray],
) -> dict | None:
    """Give every evaluation its figures on the training samples, under ``"train_samples"``.

    The training samples get the spec's bins and hard rule of their own
    (:func:`engine.splits.builder.pool_view`); each evaluation gains
    ``{"train_samples": {<TRAIN_FIGURES>, "in_sample_reason"}}``.

    Args:
        evaluations: The pool's evaluations (changed in place).
        spec: The run's spec (its ``splits`` and the bootstrap seed).
        scores: The run's scores table (``sample_id``, ``split``, ``label``, the
            splitting score).
        ensemble_pred: Int (N,) the replicas' ensemble prediction of every sample, or None.
        logits: Evaluated model -> float (N, K) logits of every sample.

    Returns:
        ``{"count", "hard_count", "bin_edges"}`` of the training view, or None when the
        run has no training samples with a score.
    """
    ids = scores.column("sample_id").to_numpy()
    split = np.asarray(scores.column("split").to_pylist())
    train = ids[split == SPLIT_TRAIN]
    if not len(train):
        return None
    rows = np.searchsorted(ids, train)
    score = scores.column(spec.splits.score).to_numpy()[rows]
    labels = scores.column("label").to_numpy(zero_copy_only=False)[rows].astype(np.int64)
    view = pool_view(spec.splits, train, score.astype(np.float64), labels)
    for ev in evaluations:
        name = ev["model"]
        if name in logits:
            pred = np.argmax(logits[name][train], axis=1)
        elif ensemble_pred is not None:
            pred = np.asarray(ensemble_pred)[train]
        else:
            continue
        quality, miss = top1_quality(name, view.labels, pred)
        figures = evaluate_predictions(
            name, view, quality=quality, miss=miss, seed=spec.replicas.recipe.seed, in_sample=True
        )
        ev[TRAIN_KEY] = {k: figures[k] for k in TRAIN_FIGURES} | {
            "in_sample_reason": TRAINED_ON_THEM
        }
    return {
        "count": len(train),
        "hard_count": int(view.is_hard.sum()),
        "bin_edges": view.bin_edges.tolist(),
    }


def format_training_lines(evaluations: list[dict], score: str) -> list[str]:
    """The end-of-run table's lines for the training samples ([] without them)."""
    rows = [ev for ev in evaluations if TRAIN_KEY in ev]
    if not rows:
        return []

    def pct(x: float) -> str:
        return "n/a" if np.isnan(x) else f"{100 * x:.1f}%"

    def num(x: float, fmt: str = "+.3f") -> str:
        return "n/a" if np.isnan(x) else format(x, fmt)

    out = [f"training samples, own {score} bins: {TRAINED_ON_THEM}"]
    for ev in rows:
        t = ev[TRAIN_KEY]
        lo, hi = t["pearson_r_sample_ci95"]
        out.append(
            f"  {ev['model']}: error per bin "
            + " ".join(pct(e) for e in t["error_per_bin"])
            + f", hard {pct(t['error_hard'])}, rest {pct(t['error_rest'])}, "
            f"r = {num(t['pearson_r_sample'])} [{num(lo)}, {num(hi)}], "
            f"AUROC = {num(t['auroc_score_error'], '.3f')}"
        )
    return out
