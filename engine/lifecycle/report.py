"""``hardbench report``: rebuild a finished run's HTML report through its task and log it."""

from __future__ import annotations

from pathlib import Path

from engine.lifecycle.rundir import read_run_spec, read_status
from engine.tasks import get_task


def rebuild_report(run_dir: Path | str) -> tuple[Path, str | None]:
    """Write ``<run>/report.html`` again from the run's files; log it to the run's MLflow run.

    Returns:
        The report path and the MLflow parent run id it was logged to (None without one).

    Raises:
        RunSetupError: If the directory is not a run.
        FileNotFoundError: If the run has not finished building its benchmark.
    """
    run_dir = Path(run_dir).resolve()
    status = read_status(run_dir)
    path = get_task(read_run_spec(run_dir).task.name).runtime().build_report(run_dir)
    info = status.get("mlflow")
    if not info:
        return path, None
    from mlflow.tracking import MlflowClient

    from engine.tracking.mlflow_log import reconnect_uri

    MlflowClient(tracking_uri=reconnect_uri(info["tracking_uri"])).log_artifact(
        info["parent_run_id"], str(path)
    )
    return path, info["parent_run_id"]
