"""The end of every task's evaluation stage: the files under ``eval/`` and what the lifecycle gets.

Each task plugin measures its models per sample in its own way (top-1 error, set F1,
EM/F1, ROUGE-L) and then does the same two things, here once for every task:

- :func:`write_eval_outputs` writes ``eval/predictions.parquet`` (one row per pool
  sample, the columns the plugin built, in its order), ``eval/metrics.json`` (the
  evaluations) and ``eval/transfer.json`` (the transfer or score-comparison record),
  each atomically, the JSON files with a two-space indent;
- :func:`task_evaluation` hands them to the lifecycle as an :class:`Evaluation` with
  every evaluated model's folder and training curve.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from engine.layout import EVAL_DIR, EVAL_PREDICTIONS_FILE, METRICS_FILE, TRANSFER_FILE
from engine.shards import atomic_write_bytes, atomic_write_table
from engine.spec import BenchmarkSpec
from engine.tasks.base import Evaluation
from engine.training.model_folder import model_dir, model_history

JSON_INDENT = 2  # indent of eval/metrics.json and eval/transfer.json (readers diff them)


def write_eval_outputs(
    run_dir: Path | str,
    *,
    predictions: dict[str, pa.Array],
    evaluations: list[dict],
    transfer: dict,
) -> Path:
    """Write a run's ``eval/`` files: per-sample predictions, evaluations, transfer record.

    Args:
        run_dir: The run directory.
        predictions: Column name -> one value per pool sample, in the column order of
            ``eval/predictions.parquet`` (``sample_id`` first).
        evaluations: One dict per model (:func:`engine.evaluation.evaluate.evaluate_predictions`),
            in the order of ``eval/metrics.json``.
        transfer: The task's transfer or score-comparison record (``eval/transfer.json``).

    Returns:
        The ``eval/`` folder, where the plugin draws its figures.
    """
    eval_dir = Path(run_dir) / EVAL_DIR
    eval_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_table(eval_dir / EVAL_PREDICTIONS_FILE, pa.table(predictions))
    atomic_write_bytes(eval_dir / METRICS_FILE, _json_bytes(evaluations))
    atomic_write_bytes(eval_dir / TRANSFER_FILE, _json_bytes(transfer))
    return eval_dir


def task_evaluation(
    run_dir: Path | str,
    spec: BenchmarkSpec,
    *,
    evaluations: list[dict],
    table: str,
    transfer: dict,
    summary: dict | None = None,
    plots: list[Path] | None = None,
) -> Evaluation:
    """What the evaluation stage hands the lifecycle, with the spec's evaluated models' folders.

    Args:
        run_dir: The run directory.
        spec: The run's spec (``evaluate.models`` names the folders and curves).
        evaluations: The evaluations written to ``eval/metrics.json``.
        table: The results table printed at the end of the run.
        transfer: The record written to ``eval/transfer.json``.
        summary: Parent-run metrics beyond the stage timings.
        plots: Figures logged with the run.
    """
    names = [m.name for m in spec.evaluate.models]
    return Evaluation(
        evaluations=evaluations,
        table=table,
        summary=summary or {},
        transfer=transfer,
        plots=plots or [],
        model_dirs={n: model_dir(run_dir, n) for n in names},
        histories={n: model_history(run_dir, n) for n in names},
    )


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, indent=JSON_INDENT).encode()
