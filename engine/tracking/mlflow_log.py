"""The MLflow record of a build, live from its first stage to its end (driver only).

:class:`BuildRecorder` owns the build's parent run: it starts RUNNING when the
build starts (or is reopened by ``--resume``), gets each stage's time as the stage
finishes and the replicas' learning curves while they train, and ends FINISHED,
FAILED or KILLED. Each evaluated model gets a nested run with its metrics, its
learning curve (step = epoch), the benchmark splits it was measured on as dataset
inputs (``mlflow.log_input``, context ``pool``, ``hard``, ``bin_3``, ...) and the
model itself as an MLflow Model (``mlflow.pytorch.log_model`` with a signature), so
``runs:/<id>/model`` and ``models:/<model id>`` URIs load it again.

The default store is one sqlite database per runs directory
(``sqlite:///<runs>/mlflow.db``, artifacts in ``<runs>/mlartifacts``), so every
build of that directory is in one ``mlflow ui``; ``MLFLOW_TRACKING_URI`` overrides
it. Several builds may share the file: its creation is serialised with a file
lock, and writes that meet sqlite's "database is locked" are retried.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from engine._util import redact_uri

MLFLOW_DB_NAME = "mlflow.db"  # the default sqlite store, in the runs directory
MLFLOW_ARTIFACTS_DIR = "mlartifacts"  # the default artifact root, beside it
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")  # UI opens on runs
LOCKED_RETRIES = 12  # attempts of a write that sqlite refused as locked
LOCKED_BACKOFF_S = 0.25  # first wait between those attempts (doubling, capped at 4 s)
MODEL_ARTIFACT = "model"  # name of an evaluated model's MLflow Model in its run
# An evaluation's 95% intervals, logged as <key>_low and <key>_high
INTERVAL_KEYS = (
    "error_all_ci95", "error_hard_ci95", "miss_rate_all_ci95", "miss_rate_hard_ci95",
    "pearson_r_sample_ci95", "pearson_rho_ci95", "pearson_rho_width_ci95",
    "auroc_score_error_ci95",
)  # fmt: skip


def default_store(runs_dir: Path | str) -> str:
    """The embedded store of a runs directory: ``sqlite:///<runs>/mlflow.db``."""
    return f"sqlite:///{Path(runs_dir).resolve() / MLFLOW_DB_NAME}"


def resolve_tracking_uri(runs_dir: Path | str) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the runs directory's embedded sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_store(runs_dir)


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


def _metrics(values: dict[str, float], step: int = 0, at: float | None = None) -> list:
    """MLflow metrics of ``values`` at ``step``, stamped ``at`` (Unix seconds; default now)."""
    from mlflow.entities import Metric

    stamp = int((time.time() if at is None else at) * 1000)
    return [
        Metric(k, float(v), stamp, step)
        for k, v in values.items()
        if v is not None and not isinstance(v, bool) and not math.isnan(float(v))
    ]


def _retry(fn: Callable, *args: object, **kwargs: object) -> object:
    """Call ``fn``, retrying while sqlite says the database is locked (another build writes)."""
    wait = LOCKED_BACKOFF_S
    for attempt in range(LOCKED_RETRIES):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if "database is locked" not in str(exc) or attempt == LOCKED_RETRIES - 1:
                raise
            time.sleep(wait)
            wait = min(wait * 2, 4.0)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a sqlite store file, so two builds never create it at once."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _artifact_root(uri: str) -> str | None:
    """Where the embedded store's artifacts go (None: the store or server decides)."""
    if not uri.startswith("sqlite:///") or os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / MLFLOW_ARTIFACTS_DIR).as_uri()


@contextlib.contextmanager
def _fluent(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs set to ``uri`` for a block.

    The fluent API (``log_input``, ``log_model``) and ``runs:/``/``models:/`` URIs read
    these globals, not a client's URI. ``mlflow.set_tracking_uri`` also writes the
    ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI`` environment variables, so
    both the globals and the variables are put back exactly as they were (the
    driver sets the globals nowhere else). MLflow's artifact progress bars, which
    logging a model with an input example prints, stay off unless the caller asked.
    """
    import mlflow

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", PROGRESS_BAR_ENV)
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.setdefault(PROGRESS_BAR_ENV, "false")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def download_model(store_uri: str | None, model_uri: str) -> Path:
    """A logged model (``runs:/<id>/model``, ``models:/<model id or name/version>``) on disk."""
    import mlflow.artifacts

    if store_uri is None:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    with _fluent(store_uri):
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=model_uri, tracking_uri=store_uri)
        )


class BuildRecorder:
    """The MLflow parent run of one build and its nested runs.

    Args:
        tracking_uri: The store (with credentials, never stored or printed as is).
        experiment: Experiment name (created, with the custom-model kind tag, if new).
    """

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        with _store_lock(tracking_uri):  # the first client of a new sqlite file creates it
            self.client = MlflowClient(tracking_uri=tracking_uri)
            exp = _retry(self.client.get_experiment_by_name, experiment)
            if exp is None:
                self.experiment_id = _retry(
                    self.client.create_experiment, experiment,
                    artifact_location=_artifact_root(tracking_uri),
                    tags={EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]},
                )  # fmt: skip
            else:
                self.experiment_id = exp.experiment_id
                if exp.tags.get(EXPERIMENT_KIND[0]) is None:
                    _retry(self.client.set_experiment_tag, exp.experiment_id, *EXPERIMENT_KIND)
        self.parent_id: str | None = None

    def info(self) -> dict:
        """What ``run.json`` keeps to reach this record again (the URI redacted)."""
        return {
            "tracking_uri": redact_uri(self.uri),
            "experiment_id": self.experiment_id,
            "parent_run_id": self.parent_id,
        }

    def start(self, run_id: str, spec_dict: dict, tags: dict[str, str]) -> str:
        """Create the parent run, RUNNING, with the resolved spec as params; its id."""
        from mlflow.entities import Param

        run = _retry(
            self.client.create_run, self.experiment_id, run_name=run_id,
            tags={"hardbench.run_id": run_id, **tags},
        )  # fmt: skip
        self.parent_id = run.info.run_id
        params = [Param(k, v) for k, v in flatten_params(spec_dict).items()]
        for i in range(0, len(params), 100):
            _retry(self.client.log_batch, self.parent_id, params=params[i : i + 100])
        return self.parent_id

    def attach(self, parent_id: str) -> None:
        """Add nested runs to a finished build's parent run (``hardbench eval``)."""
        self.parent_id = parent_id

    def reopen(self, parent_id: str, model_runs: dict[str, str] | None = None) -> None:
        """Continue a resumed build's parent run (RUNNING again); drop nested runs to redo."""
        self.parent_id = parent_id
        _retry(self.client.update_run, parent_id, status="RUNNING")
        for child in (model_runs or {}).values():
            with contextlib.suppress(Exception):  # already gone: nothing to redo
                _retry(self.client.delete_run, child)

    def stage(self, name: str, seconds: float) -> None:
        """Log a finished stage's wall time (``time_<stage>_s``)."""
        _retry(self.client.log_batch, self.parent_id, metrics=_metrics({f"time_{name}_s": seconds}))

    def curve(self, epoch: int, values: dict[str, float]) -> None:
        """Log one epoch of the replicas' learning curve on the parent run (step = epoch)."""
        _retry(self.client.log_batch, self.parent_id, metrics=_metrics(values, step=epoch))

    def summary(
        self, values: dict[str, float], artifacts: list[Path], artifact_path: str | None = None
    ) -> None:
        """Log summary metrics and files on the parent run (files under ``artifact_path``)."""
        _retry(self.client.log_batch, self.parent_id, metrics=_metrics(values))
        for path in artifacts:
            _retry(self.client.log_artifact, self.parent_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        """End the parent run: ``FINISHED``, ``FAILED`` or ``KILLED``."""
        if self.parent_id is not None:
            _retry(self.client.set_terminated, self.parent_id, status=status)

    def log_evaluation(
        self,
        run_id: str,
        ev: dict,
        *,
        history: list[dict] | None = None,
        datasets: list[tuple[str, object, str]] | None = None,
        model: tuple[object, object, list[Path]] | None = None,
        artifacts_dir: Path | None = None,
    ) -> str:
        """One evaluated model as a nested run of the build; returns its run id.

        Args:
            run_id: hardbench run id.
            ev: The model's evaluation (``model``, metrics, ``in_sample``, ...).
            history: Its per-epoch ``{"epoch", "train_loss", ..., "started", "ended"}``,
                logged with step = epoch and stamped with the epoch's end; the nested run
                starts when the first epoch started.
            datasets: ``(context, pandas DataFrame, source path)`` of each split it was
                measured on, logged as dataset inputs.
            model: ``(torch module, input example, extra files)`` to log as an MLflow
                Model named ``model`` with a signature inferred from the example.
            artifacts_dir: A folder logged as the run's ``model`` artifacts instead
                (models that are not torch modules of the registry).
        """
        from mlflow.entities import Param, RunTag

        started = (history or [{}])[0].get("started")  # the run spans the model's training
        child = _retry(
            self.client.create_run, self.experiment_id, run_name=f"{run_id}/{ev['model']}",
            start_time=None if started is None else int(started * 1000),
            tags={"mlflow.parentRunId": self.parent_id, "hardbench.run_id": run_id,
                  "hardbench.model": ev["model"]},
        )  # fmt: skip
        cid = child.info.run_id
        values = {
            k: v for k, v in ev.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        for key in ("error", "confusion", "disagreement"):  # per-bin curves, bin 0 = easiest
            values.update({f"{key}_bin_{b}": v for b, v in enumerate(ev.get(f"{key}_per_bin", []))})
        values.update({f"error_width_bin_{b}": v
                       for b, v in enumerate(ev.get("error_per_width_bin", []))})  # fmt: skip
        for key in INTERVAL_KEYS:
            if key in ev:
                values[f"{key}_low"], values[f"{key}_high"] = ev[key]
        train = ev.get("train_samples") or {}  # the figures on the training samples
        values.update({f"train_samples_{k}": v for k, v in train.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)})  # fmt: skip
        values.update({f"train_samples_error_bin_{b}": v
                       for b, v in enumerate(train.get("error_per_bin", []))})  # fmt: skip
        for key, name in (("error_per_bin_ci95", "error_bin"),
                          ("error_per_width_bin_ci95", "error_width_bin")):  # fmt: skip
            for b, (low, high) in enumerate(ev.get(key, [])):
                values[f"{name}_{b}_ci95_low"], values[f"{name}_{b}_ci95_high"] = low, high
        _retry(
            self.client.log_batch, cid, metrics=_metrics(values),
            params=[Param("model", ev["model"]),
                    *(Param(f"mitigation.{k}", str(v)) for k, v in ev.get("mitigation", {}).items())],
            tags=[RunTag("hardbench.kind", "ensemble" if ev["model"] == "ensemble" else "model"),
                  # the replicas' own ensemble is scored on bins cut from its own score
                  RunTag("hardbench.in_sample", "true" if ev.get("in_sample") else "false"),
                  *([RunTag("hardbench.width_bin_edges", json.dumps(ev["width_bin_edges"]))]
                    if "width_bin_edges" in ev else [])],
        )  # fmt: skip
        for point in history or []:
            step = {k: v for k, v in point.items() if k not in ("epoch", "started", "ended")}
            metrics = _metrics(step, step=int(point["epoch"]), at=point.get("ended"))
            _retry(self.client.log_batch, cid, metrics=metrics)
        if artifacts_dir is not None and Path(artifacts_dir).is_dir():
            _retry(self.client.log_artifacts, cid, str(artifacts_dir), artifact_path=MODEL_ARTIFACT)
        if datasets or model is not None:
            self._log_inputs_and_model(cid, datasets or [], model)
        _retry(self.client.set_terminated, cid)
        return cid

    def _log_inputs_and_model(
        self, cid: str, datasets: list[tuple[str, object, str]], model: tuple | None
    ) -> None:
        """Dataset inputs and the MLflow Model, through MLflow's fluent API on run ``cid``."""
        import mlflow
        import mlflow.data

        with _fluent(self.uri), mlflow.start_run(run_id=cid), warnings.catch_warnings():
            # MLflow's hints on the sample-id/label integer columns and on which of its two
            # identical local sources a path is: advice about its own choices, not ours
            warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer")
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
            for context, frame, source in datasets:
                mlflow.log_input(
                    mlflow.data.from_pandas(frame, source=source, name=context), context=context
                )
            if model is not None:
                _log_torch_model(*model)


def _log_torch_model(module: object, example: object, extra_files: list[Path]) -> None:
    """``mlflow.pytorch.log_model`` with a signature; torch.export format, pickle if it cannot."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    with torch.no_grad():
        output = module(torch.as_tensor(example)).numpy()
    options = {
        "name": MODEL_ARTIFACT,
        "signature": infer_signature(example, output),
        "input_example": example,
        "extra_files": [str(p) for p in extra_files],
        # what loading needs; inferring it instead takes seconds per model
        "pip_requirements": [f"torch=={torch.__version__.split('+')[0]}"],
    }
    try:
        mlflow.pytorch.log_model(module, **options)
    except Exception:  # a model torch.export cannot trace is stored pickled instead
        mlflow.pytorch.log_model(module, serialization_format="pickle", **options)
