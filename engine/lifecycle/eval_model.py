"""``hardbench eval``: measure another model on a finished run's splits, through its task.

With a labels version (``--labels v<n>``), the run's own models are re-measured on the
original and the corrected labels from their stored predictions
(:func:`evaluate_run_on_labels`), or an outside model is measured on both beside them.
"""

from __future__ import annotations

from pathlib import Path

from engine.lifecycle.labels_version import read_labels_version
from engine.lifecycle.rundir import read_run_spec, require_complete
from engine.tasks import get_task


def evaluate_run_on_labels(run_dir: Path | str, version: str) -> dict:
    """Re-measure a finished run's evaluated models and ensemble on a labels version.

    Nothing is predicted again: the stored pool predictions (``eval/predictions.parquet``)
    are scored against the original labels and against ``<run>/datasets/<version>/``
    (removed samples left out), ranked on each; see
    :func:`engine.tasks.classification_eval.evaluate_on_labels`.

    Args:
        run_dir: A complete run with single labels (classification).
        version: ``v<n>``, written by ``hardbench relabel``.

    Returns:
        The comparison record with ``table``, ``files`` and ``mlflow_runs``.

    Raises:
        RunSetupError: If the run is not complete or lacks its evaluation files.
        ValueError: For an unknown version (listing the run's), or one that does not
            belong to the run.
    """
    from engine.tasks.classification_eval import evaluate_on_labels

    run_dir = Path(run_dir).resolve()
    status = require_complete(run_dir, "nothing to evaluate on")
    labels = read_labels_version(run_dir, version)  # only single-label runs have versions
    return evaluate_on_labels(run_dir, read_run_spec(run_dir), status, labels)


def evaluate_model_on_run(
    run_dir: Path | str, *, labels: str | None = None, **kwargs: object
) -> dict:
    """Evaluate a registered or MLflow-logged model on a finished run, as its task measures it.

    Args:
        run_dir: A complete run.
        **kwargs: The task's options (classification: ``model`` or ``model_uri``,
            ``label``, ``pretrained``, ``weights_file``, ``model_kwargs``, ``split``,
            ``num_cpus``, ``cpus_per_actor``, ``gpus_per_actor``; see
            :func:`engine.tasks.classification_eval.evaluate_classifier`).
        labels: A labels version (``v<n>``): the model is measured on the original and
            the corrected labels, beside the build's models (``labels_comparison``).

    Returns:
        The evaluation dict, with ``split`` and ``mlflow_run``.

    Raises:
        RunSetupError: If the run is not complete.
        UnsupportedByTask: If its task evaluates no outside model (a text run).
        ValueError: For a model or split the task cannot measure on this run.
    """
    run_dir = Path(run_dir).resolve()
    status = require_complete(run_dir, "nothing to evaluate on")
    spec = read_run_spec(run_dir)
    if labels is not None:  # read and checked before any model loads
        kwargs["labels"] = read_labels_version(run_dir, labels)
    return get_task(spec.task.name).runtime().evaluate_model(run_dir, spec, status, **kwargs)
