"""Log a benchmark run to MLflow: one parent run, one nested run per evaluated model."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from engine._util import redact_uri

MLFLOW_DB_NAME = "mlflow.db"  # default sqlite store inside the run directory
MLFLOW_ARTIFACTS_DIR = "mlartifacts"  # default artifact root inside the run directory
MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value


def resolve_tracking_uri(run_dir: Path | str) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a sqlite store inside the run directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path(run_dir).resolve() / MLFLOW_DB_NAME}"


def reconnect_uri(stored: str | None) -> str | None:
    """The tracking URI to reach a run's store again.

    ``run.json`` keeps the URI with credentials redacted; when ``MLFLOW_TRACKING_URI``
    redacts to the same string it is the one to use (credentials and all).
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if stored and env and redact_uri(env) == stored:
        return env
    return stored


def flatten_params(data: dict, prefix: str = "") -> dict[str, str]:
    """Flatten nested spec data to ``a.b.c -> str`` params (lists as JSON)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_params(value, f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
            out[name] = text[:MAX_PARAM_CHARS]
    return out


def _metrics(values: dict[str, float], step: int = 0) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(k, float(v), now, step)
        for k, v in values.items()
        if v is not None and not math.isnan(float(v))
    ]


def log_model_run(
    client, exp_id: str, parent_id: str, run_id: str, ev: dict, *, model_dir: Path | None = None
) -> str:
    """Log one model's evaluation as a nested run of ``parent_id``; returns its run id.

    Args:
        client: An ``MlflowClient``.
        exp_id: Experiment id.
        parent_id: The build's parent run id.
        run_id: hardbench run id.
        ev: One dict from ``evaluate_predictions``.
        model_dir: Saved model directory to log as the ``model`` artifact.
    """
    from mlflow.entities import Param, RunTag

    child = client.create_run(
        exp_id,
        run_name=f"{run_id}/{ev['model']}",
        tags={
            "mlflow.parentRunId": parent_id,
            "hardbench.run_id": run_id,
            "hardbench.model": ev["model"],
        },
    )
    cid = child.info.run_id
    values = {
        k: v for k, v in ev.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    values.update({f"error_bin_{b}": e for b, e in enumerate(ev.get("error_per_bin", []))})
    for key in ("error_all_ci95", "error_hard_ci95"):
        if key in ev:
            values[f"{key}_low"], values[f"{key}_high"] = ev[key]
    client.log_batch(
        cid,
        metrics=_metrics(values),
        params=[
            Param("model", ev["model"]),
            *(Param(f"mitigation.{k}", str(v)) for k, v in ev.get("mitigation", {}).items()),
        ],
        tags=[
            RunTag("hardbench.kind", "ensemble" if ev["model"] == "ensemble" else "model"),
            # the replicas' own ensemble is scored on bins cut from its own score
            RunTag("hardbench.in_sample", "true" if ev.get("in_sample") else "false"),
        ],
    )
    if model_dir is not None:
        client.log_artifacts(cid, str(model_dir), artifact_path="model")
    client.set_terminated(cid)
    return cid


def log_benchmark_run(
    *,
    run_dir: Path | str,
    run_id: str,
    experiment: str,
    spec_dict: dict,
    evaluations: list[dict],
    summary_metrics: dict[str, float],
    artifacts: list[Path],
    tags: dict[str, str],
    model_dirs: dict[str, Path] | None = None,
) -> dict:
    """Create the parent run (params, summary metrics, artifacts) and a nested run per model.

    Args:
        run_dir: The run directory (default store and artifact root live there).
        run_id: hardbench run id (the parent run's name).
        experiment: MLflow experiment name (created if missing).
        spec_dict: Resolved spec, logged as flattened params.
        evaluations: One dict per model from ``evaluate_predictions``.
        summary_metrics: Parent-run metrics (timings, score statistics).
        artifacts: Files logged on the parent run.
        tags: Extra parent-run tags (git commit, ...).
        model_dirs: Model name -> saved model directory, logged as the nested run's
            ``model`` artifact (so ``runs:/<id>/model`` can be evaluated again).

    Returns:
        ``{"tracking_uri", "experiment_id", "parent_run_id", "model_runs": {name: id}}``.
    """
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(run_dir)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        local = uri.startswith("sqlite:///") and not os.environ.get("MLFLOW_TRACKING_URI")
        location = (Path(run_dir).resolve() / MLFLOW_ARTIFACTS_DIR).as_uri() if local else None
        exp_id = client.create_experiment(experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    parent = client.create_run(exp_id, run_name=run_id, tags={"hardbench.run_id": run_id, **tags})
    pid = parent.info.run_id
    try:
        params = [Param(k, v) for k, v in flatten_params(spec_dict).items()]
        for i in range(0, len(params), 100):
            client.log_batch(pid, params=params[i : i + 100])
        client.log_batch(pid, metrics=_metrics(summary_metrics))
        for path in artifacts:
            client.log_artifact(pid, str(path))
        model_runs = {}
        for ev in evaluations:
            model_runs[ev["model"]] = log_model_run(
                client, exp_id, pid, run_id, ev, model_dir=(model_dirs or {}).get(ev["model"])
            )
    except BaseException:
        client.set_terminated(pid, status="FAILED")
        raise
    client.set_terminated(pid)
    return {
        "tracking_uri": redact_uri(uri),  # run.json, logs and prints never hold credentials
        "experiment_id": exp_id,
        "parent_run_id": pid,
        "model_runs": model_runs,
    }
