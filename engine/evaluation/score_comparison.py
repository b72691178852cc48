"""How the scores of one run agree with each other and with the evaluated models' misses.

Any task with per-sample scores (classification, QA, seq2seq): the rank agreement
(Spearman) of every pair of :data:`COMPARED_SCORES` the scores table has, on all
samples, the training samples and the held-out ones, each score read in its hardness
direction (:func:`engine.scores.hardness`); and every registered score in the table as
a predictor of each evaluated model's misses on the pool: its AUROC with a seeded
percentile-bootstrap 95% interval (:func:`engine.evaluation.metrics.auroc_ci`).
The record is written to ``eval/score_comparison.json`` (:data:`SCORE_COMPARISON_FILE`),
printed under the results table and shown in the report.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.evaluation.evaluate import BOOTSTRAP_RESAMPLES
from engine.evaluation.metrics import auroc, auroc_ci
from engine.layout import EVAL_DIR, SCORE_COMPARISON_FILE
from engine.scores import get_score, hardness, list_scores
from engine.shards import atomic_write_bytes
from engine.splits.display import SCORER

# The scores whose rank agreement is tabulated, pair by pair, when the table has them:
# action (Arriaga et al.), confusion (Simsek et al.), VoG (Agarwal et al.) and the data
# map's confidence and variability (Swayamdipta et al.).
COMPARED_SCORES = ("action", "confusion", "vog", "confidence", "variability")
SPEARMAN_PAIR = ("action", "confusion")  # the pair also reported under its own key (older readers)
SPEARMAN_PARTS = ("train", "heldout")  # data splits the agreement is also reported on
PARTS = ("all", *SPEARMAN_PARTS)  # every set of samples a Spearman matrix is measured on
_PART_TEXT = {"all": "all", "train": "train", "heldout": "held-out"}  # the parts as printed
CI_LEVEL = 0.95  # coverage of the bootstrap interval of every AUROC
MIN_SPEARMAN_SAMPLES = 3  # fewer finite pairs than this: no rank correlation (NaN)
JSON_INDENT = 2  # indent of eval/score_comparison.json (readers diff it)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho over the samples where both are finite; NaN under 3 or if one is constant."""
    from scipy.stats import spearmanr

    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < MIN_SPEARMAN_SAMPLES:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant column: rho undefined (NaN)
        return float(spearmanr(a[keep], b[keep]).statistic)


def spearman_matrix(columns: dict[str, np.ndarray]) -> list[list[float]]:
    """Spearman's rho of every pair of hardness-oriented columns, as a symmetric matrix.

    Args:
        columns: Score name -> Float (N,) values oriented higher = harder, in the
            matrix's order.

    Returns:
        ``rho[i][j]`` for the i-th and j-th columns (1.0 on the diagonal); positive when
        the two scores rank the samples hard in the same order.
    """
    names = list(columns)
    rho = [[1.0] * len(names) for _ in names]
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            rho[i][j] = rho[j][i] = _spearman(columns[a], columns[names[j]])
    return rho


def compare_scores(
    table: pa.Table,
    pool: np.ndarray,
    miss: dict[str, np.ndarray],
    *,
    seed: int = 0,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    no_misses_reason: str = "",
) -> dict:
    """The scores' rank agreement, and each score as a predictor of each model's misses.

    Args:
        table: The scores table (one row per sample id, sorted), with ``split``.
        pool: Int (P,) pool sample ids (rows of ``table``).
        miss: Model name -> Bool (P,) its misses on the pool; empty for a run whose
            misses cannot be measured (then say why in ``no_misses_reason``).
        seed: Seed of the AUROC bootstrap (a run passes its spec's seed).
        n_boot: Bootstrap resamples behind each interval.
        no_misses_reason: Why ``miss`` is empty (e.g. an unlabelled pool), shown where
            the AUROC table would be.

    Returns:
        ``{"scores": [...], "directions": {score: direction}, "spearman": {"all",
        "train", "heldout": matrix over "scores"}, "spearman_action_confusion": {"all",
        "train", "heldout"}, "auroc": {model: {score: AUROC}}, "auroc_ci95": {model:
        {score: [low, high]}}, "misses": {model: count}, "pool_size": P}``. The Spearman
        entries cover the :data:`COMPARED_SCORES` in the table, read in their hardness
        direction (the action-confusion pair only when the table has both);
        ``auroc`` covers every registered score column, read in its direction
        (:func:`engine.scores.hardness`), so AUROC > 0.5 means harder by the score,
        more misses, for every score; NaN (and a NaN interval) for a model with no miss
        or nothing but misses, or a score not finite on the whole pool.
        ``no_misses_reason`` is kept when given.
    """
    split = np.asarray(table.column("split").to_pylist())
    compared = [c for c in COMPARED_SCORES if c in table.column_names]
    oriented = {c: hardness(c, table.column(c).to_numpy()) for c in compared}
    masks = {"all": np.ones(len(split), bool), **{p: split == p for p in SPEARMAN_PARTS}}
    spearman = {
        part: spearman_matrix({c: v[mask] for c, v in oriented.items()})
        for part, mask in masks.items()
    }
    registered = set(list_scores())
    scores = [c for c in table.column_names if c in registered]
    out: dict = {
        "scores": compared,
        "directions": {s: get_score(s).direction for s in scores},
        "spearman": spearman,
    }
    if all(c in compared for c in SPEARMAN_PAIR):
        i, j = (compared.index(c) for c in SPEARMAN_PAIR)
        out["spearman_action_confusion"] = {part: m[i][j] for part, m in spearman.items()}
    aucs: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, list[float]]] = {}
    for name, m in miss.items():
        m = np.asarray(m, dtype=bool)
        aucs[name], intervals[name] = {}, {}
        for s in scores:
            values = hardness(s, table.column(s).to_numpy()[pool])
            value, interval = _auroc_with_interval(values, m, seed=seed, n_boot=n_boot)
            aucs[name][s], intervals[name][s] = value, list(interval)
    out["auroc"] = aucs
    out["auroc_ci95"] = intervals
    out["misses"] = {name: int(np.sum(m)) for name, m in miss.items()}
    out["pool_size"] = len(pool)
    if no_misses_reason:
        out["no_misses_reason"] = no_misses_reason
    return out


def _auroc_with_interval(
    values: np.ndarray, miss: np.ndarray, *, seed: int, n_boot: int
) -> tuple[float, tuple[float, float]]:
    """AUROC of hardness ``values`` for ``miss`` and its bootstrap interval; NaN if undefined."""
    if not np.isfinite(values).all() or miss.all() or not miss.any():
        return math.nan, (math.nan, math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a resample with one class: its AUROC is NaN
        interval = auroc_ci(values, miss, n_boot=n_boot, level=CI_LEVEL, seed=seed)
    return auroc(values, miss), interval


def comparison_summary(comparison: dict) -> dict[str, float]:
    """The record's numbers as flat parent-run metrics (MLflow names).

    ``spearman_action_confusion_<part>`` (as before), ``spearman_<a>_<b>_<part>`` for
    every other pair and ``auroc_<model>_<score>`` for every model and score.
    """
    out: dict[str, float] = {}
    names = comparison.get("scores", [])
    for part, matrix in comparison.get("spearman", {}).items():
        for i, a in enumerate(names):
            for j in range(i + 1, len(names)):
                pair = (a, names[j])
                key = "action_confusion" if pair == SPEARMAN_PAIR else f"{a}_{names[j]}"
                out[f"spearman_{key}_{part}"] = matrix[i][j]
    for name, aucs in comparison.get("auroc", {}).items():
        out.update({f"auroc_{name}_{k}": v for k, v in aucs.items()})
    return out


def format_score_comparison(comparison: dict) -> list[str]:
    """The lines of :func:`compare_scores`'s record printed under a run's results table."""

    def num(x: float) -> str:
        return "n/a" if x is None or math.isnan(x) else f"{x:.3f}"

    lines = []
    names = comparison.get("scores")
    if names is None:  # a record written before the matrix: the action-confusion pair only
        rho = comparison.get("spearman_action_confusion")
        if rho:
            lines.append(f"Spearman(action, confusion): all {num(rho['all'])}, train "
                         f"{num(rho['train'])}, held-out {num(rho['heldout'])}")  # fmt: skip
    else:
        matrices = comparison["spearman"]
        for i, a in enumerate(names):
            for j in range(i + 1, len(names)):
                lines.append(
                    f"Spearman({a}, {names[j]}): "
                    + ", ".join(f"{_PART_TEXT[p]} {num(matrices[p][i][j])}" for p in PARTS)
                )
    intervals = comparison.get("auroc_ci95", {})
    misses = comparison.get("misses", {})
    for name, aucs in comparison["auroc"].items():
        count = f" ({misses[name]} of {comparison['pool_size']})" if name in misses else ""
        if name == SCORER:  # the replicas' own ensemble: its label-aware scores saw its errors
            count += " (scorer, in-sample)"
        cells = []
        for k, v in aucs.items():
            ci = intervals.get(name, {}).get(k)
            cells.append(f"{k} {num(v)}" + (f" [{num(ci[0])}, {num(ci[1])}]" if ci else ""))
        lines.append(f"AUROC for {name}'s misses{count}: " + ", ".join(cells))
    if comparison.get("no_misses_reason"):
        lines.append(f"AUROC for misses: not measured ({comparison['no_misses_reason']})")
    return lines


def write_score_comparison(run_dir: Path | str, comparison: dict) -> Path:
    """Write the record to ``<run>/eval/score_comparison.json`` (atomically) and return the path."""
    path = Path(run_dir) / EVAL_DIR / SCORE_COMPARISON_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(comparison, indent=JSON_INDENT).encode())
    return path


def read_score_comparison(run_dir: Path | str) -> dict | None:
    """The run's ``eval/score_comparison.json``, or None for a run written before it existed."""
    path = Path(run_dir) / EVAL_DIR / SCORE_COMPARISON_FILE
    return json.loads(path.read_text()) if path.is_file() else None
