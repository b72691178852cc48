"""Read a run's relabelled labels version, checked against the run, in one place.

``hardbench relabel`` (:func:`engine.lifecycle.audit.apply_verdicts`) writes
``<run>/datasets/v<n>/labels.parquet`` (``sample_id, original_label, label, removed``).
:func:`read_labels_version` reads it back for every consumer (``hardbench eval
--labels``, ``hardbench compare --labels``, ``evaluate.labels``) and refuses a file
that does not belong to the run: another sample count, or original labels that are
not the run's own (``scores.parquet``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from engine.evaluation.corrected_labels import CorrectedLabels
from engine.layout import DATASETS_DIR, SCORES_FILE
from engine.lifecycle.audit import LABELS_FILE

VERSION_NAME = re.compile(r"v([1-9]\d*)$")  # a labels version's folder name: v1, v2, ...
LABELS_COLUMNS = ("sample_id", "original_label", "label", "removed")  # labels.parquet's columns
REMAKE = "make it again with `hardbench relabel RUN --verdicts FILE`"  # the fix for a bad file


def list_labels_versions(run_dir: Path | str) -> list[str]:
    """The labels versions a run has (``v1``, ``v2``, ...), in version order."""
    base = Path(run_dir) / DATASETS_DIR
    found = [p.name for p in base.glob("v*") if p.is_dir() and VERSION_NAME.match(p.name)]
    return sorted(found, key=lambda name: int(name[1:]))


def check_version_name(version: str) -> str:
    """``version`` if it is a labels version's name (``v<n>``, n >= 1).

    Raises:
        ValueError: Naming the expected form.
    """
    if not VERSION_NAME.match(version):
        raise ValueError(f"labels version must read v<n> (v1, v2, ...), got {version!r}")
    return version


def read_labels_version(run_dir: Path | str, version: str) -> CorrectedLabels:
    """Read ``<run>/datasets/<version>/labels.parquet`` and check it belongs to the run.

    Args:
        run_dir: A run with ``scores.parquet`` (its labels, one row per sample).
        version: ``v<n>``.

    Returns:
        The version, one value per sample of the run (index = sample id).

    Raises:
        ValueError: For a malformed name, an unknown version (listing the run's
            versions), a missing or malformed file, or a file written for other labels
            (another sample count, other original labels), each naming the file and
            what to do.
    """
    run_dir = Path(run_dir)
    check_version_name(version)
    folder = run_dir / DATASETS_DIR / version
    if not folder.is_dir():
        have = list_labels_versions(run_dir)
        raise ValueError(
            f"{run_dir} has no labels version {version}: "
            + (
                f"it has {', '.join(have)}"
                if have
                else "it has none; make one with `hardbench relabel RUN --verdicts FILE`"
            )
        )
    path = folder / LABELS_FILE
    if not path.exists():
        raise ValueError(f"{path} is missing: {REMAKE}")
    table = pq.read_table(path)
    missing = [c for c in LABELS_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(missing)}: {REMAKE}")
    if any(table.column(c).null_count for c in LABELS_COLUMNS):
        raise ValueError(f"{path} has empty cells: {REMAKE}")
    run_labels = _run_labels(run_dir)
    n = len(run_labels)
    ids = table.column("sample_id").to_numpy()
    if table.num_rows != n or not np.array_equal(ids, np.arange(n)):
        raise ValueError(
            f"{path} holds {table.num_rows} rows, not one per sample of the run ({n}, in id "
            f"order): it was written for another run or other data; {REMAKE}"
        )
    original = table.column("original_label").to_numpy().astype(np.int64)
    if not np.array_equal(original, run_labels):
        differ = np.flatnonzero(original != run_labels)
        raise ValueError(
            f"{path}: original_label differs from the run's labels ({SCORES_FILE}) at "
            f"{len(differ)} samples (first: sample {int(differ[0])}): it was written for "
            f"other labels; {REMAKE}"
        )
    labels = table.column("label").to_numpy().astype(np.int64)
    if (labels < 0).any():
        raise ValueError(f"{path}: negative label at sample {int(np.argmax(labels < 0))}")
    return CorrectedLabels(
        version=version,
        source=str(path),
        original=original,
        labels=labels,
        removed=table.column("removed").to_numpy(zero_copy_only=False).astype(bool),
    )


def _run_labels(run_dir: Path) -> np.ndarray:
    """Int64 (N,) the run's labels in sample-id order, from its ``scores.parquet``."""
    path = run_dir / SCORES_FILE
    if not path.exists():
        raise ValueError(f"{run_dir} has no {SCORES_FILE}: read labels versions of a finished run")
    if "label" not in pq.read_schema(path).names:
        raise ValueError(f"{run_dir} has no single label per sample: it has no labels version")
    scores = pq.read_table(path, columns=["sample_id", "label"])
    if scores.column("label").null_count:
        raise ValueError(f"{run_dir} is label-free: it has no labels to correct")
    ids = scores.column("sample_id").to_numpy()
    if not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError(f"{path} does not hold one row per sample in id order")
    return scores.column("label").to_numpy().astype(np.int64)
