"""How the scores of one run agree with each other and with the evaluated models' misses.

Any task: action against confusion (Spearman, on all samples, the training samples
and the held-out ones), and every score in the scores table, read in its own direction,
as a predictor of each model's misses on the pool (AUROC).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyarrow as pa

from engine.evaluation.metrics import auroc
from engine.scores import hardness, list_scores

SPEARMAN_PAIR = ("action", "confusion")  # the two scores whose rank agreement is reported
SPEARMAN_PARTS = ("train", "heldout")  # data splits the agreement is also reported on


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else math.nan


def compare_scores(table: pa.Table, pool: np.ndarray, miss: dict[str, np.ndarray]) -> dict:
    """Action vs confusion, and each score as a predictor of each model's misses.

    Args:
        table: The scores table (one row per sample id, sorted), with ``split``.
        pool: Int (P,) pool sample ids (rows of ``table``).
        miss: Model name -> Bool (P,) its misses on the pool.

    Returns:
        ``{"spearman_action_confusion": {"all", "train", "heldout"}, "auroc": {model:
        {score: AUROC}}}`` (the Spearman part only when the table has both scores); every
        registered score column is read in its direction (:func:`engine.scores.hardness`),
        so AUROC > 0.5 means harder by the score, more misses, for every score; NaN for
        a model with no miss or nothing but misses.
    """
    out: dict[str, dict] = {}
    if all(c in table.column_names for c in SPEARMAN_PAIR):
        split = np.asarray(table.column("split").to_pylist())
        act, conf = (table.column(c).to_numpy() for c in SPEARMAN_PAIR)
        rho = {"all": _spearman(act, conf)}
        for part in SPEARMAN_PARTS:
            rho[part] = _spearman(act[split == part], conf[split == part])
        out["spearman_action_confusion"] = rho
    registered = set(list_scores())
    scores = [c for c in table.column_names if c in registered]
    aucs: dict[str, dict[str, float]] = {}
    for name, m in miss.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no miss, or only misses: AUROC undefined (NaN)
            aucs[name] = {
                s: auroc(hardness(s, table.column(s).to_numpy()[pool]), m) for s in scores
            }
    out["auroc"] = aucs
    return out


def format_score_comparison(comparison: dict) -> list[str]:
    """The lines of :func:`compare_scores`'s record printed under a run's results table."""
    lines = []
    rho = comparison.get("spearman_action_confusion")
    if rho:
        lines.append(
            f"Spearman(action, confusion): all {rho['all']:.3f}, train {rho['train']:.3f}, "
            f"held-out {rho['heldout']:.3f}"
        )
    for name, aucs in comparison["auroc"].items():
        lines.append(
            f"AUROC for {name}'s misses: " + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items())
        )
    return lines
