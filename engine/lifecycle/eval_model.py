"""``hardbench eval``: measure another model on a finished run's splits, through its task."""

from __future__ import annotations

from pathlib import Path

from engine.lifecycle.rundir import read_run_spec, require_complete
from engine.tasks import get_task


def evaluate_model_on_run(run_dir: Path | str, **kwargs: object) -> dict:
    """Evaluate a registered or MLflow-logged model on a finished run, as its task measures it.

    Args:
        run_dir: A complete run.
        **kwargs: The task's options (classification: ``model`` or ``model_uri``,
            ``label``, ``pretrained``, ``weights_file``, ``model_kwargs``, ``split``,
            ``num_cpus``, ``cpus_per_actor``, ``gpus_per_actor``; see
            :func:`engine.tasks.classification_eval.evaluate_classifier`).

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
    return get_task(spec.task.name).runtime().evaluate_model(run_dir, spec, status, **kwargs)
