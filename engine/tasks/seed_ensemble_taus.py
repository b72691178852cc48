"""The Kendall tau matrix of a classification run's seed ensembles (the paper's Figure 3).

Reads each evaluated model's seed-ensemble confusion (``<run>/ensembles/<name>/``,
trained by :mod:`engine.lifecycle.seed_ensembles`) beside the replicas' own, and
compares every pair on the training and on the held-out samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.data import SPLIT_HELDOUT, SPLIT_TRAIN
from engine.evaluation.evaluate import BOOTSTRAP_RESAMPLES
from engine.evaluation.tau_matrix import tau_matrix
from engine.layout import ENSEMBLES_DIR, SCORES_FILE
from engine.spec import BenchmarkSpec

REPLICAS = "replicas"  # the small replicas' row and column in the matrix
SCORE = "confusion"  # what every entry of the matrix compares


def by_id(table: pa.Table, column: str) -> np.ndarray:
    """Float64 (N,) ``column`` of a scores table, indexed by sample id."""
    ids = table.column("sample_id").to_numpy()
    out = np.full(int(ids.max()) + 1, np.nan)
    out[ids] = table.column(column).to_numpy()
    return out


def seed_ensemble_values(
    run_dir: Path | str, spec: BenchmarkSpec, scores: pa.Table
) -> dict[str, np.ndarray]:
    """The replicas' and every seed ensemble's confusion, name -> float64 (N,) by sample id.

    Empty without seed ensembles.

    Raises:
        FileNotFoundError: When a model with ``seeds`` > 1 has no scored ensemble.
    """
    models = [m for m in spec.evaluate.models if m.seeds > 1]
    if not models:
        return {}
    values = {REPLICAS: by_id(scores, SCORE)}
    for m in models:
        path = Path(run_dir) / ENSEMBLES_DIR / m.name / SCORES_FILE
        if not path.exists():
            raise FileNotFoundError(f"{m.name}'s seed ensemble has no scores: {path}")
        values[m.name] = by_id(pq.read_table(path, columns=["sample_id", SCORE]), SCORE)
    return values


def seed_ensemble_taus(run_dir: Path | str, spec: BenchmarkSpec, scores: pa.Table) -> dict | None:
    """The tau matrix of the replicas and every seed ensemble, or None without ensembles.

    Args:
        run_dir: The run directory.
        spec: The run's spec (``evaluate.models[].seeds``).
        scores: The run's scores table (``sample_id``, ``split``, ``confusion``).

    Returns:
        :func:`engine.evaluation.tau_matrix.tau_matrix` on the ``train`` and ``heldout``
        samples (a set is left out when it has none), plus ``"seeds"``: name -> seeds
        (the replicas' count for ``replicas``) and ``"epochs"``: name -> epochs.

    Raises:
        FileNotFoundError: When a model with ``seeds`` > 1 has no scored ensemble.
    """
    values = seed_ensemble_values(run_dir, spec, scores)
    if not values:
        return None
    models = [m for m in spec.evaluate.models if m.seeds > 1]
    split = np.empty(len(values[REPLICAS]), dtype=object)
    split[scores.column("sample_id").to_numpy()] = scores.column("split").to_pylist()
    sets = {name: split == name for name in (SPLIT_TRAIN, SPLIT_HELDOUT) if (split == name).any()}
    record = tau_matrix(values, sets, n_boot=BOOTSTRAP_RESAMPLES, seed=spec.replicas.recipe.seed)
    record["seeds"] = {REPLICAS: spec.replicas.count} | {m.name: m.seeds for m in models}
    record["epochs"] = {REPLICAS: spec.replicas.recipe.epochs} | {
        m.name: m.recipe.epochs for m in models
    }
    return record
