"""``hardbench run``: train replicas, score, build splits, evaluate, log; stage by stage.

This module imports no Ray; the distributed stages live in ``engine.distributed``.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine._util import has_credentials, redact_uri
from engine.data import ClassificationData
from engine.distributed.cluster import ray_session
from engine.distributed.evaluation import predict_split
from engine.distributed.models import MODELS_DIR, train_eval_models
from engine.distributed.replicas import train_replicas
from engine.distributed.scoring import score_run
from engine.evaluation import evaluate_predictions, kendall_tau
from engine.shards import atomic_write_bytes, atomic_write_table, consolidate_manifest, num_blocks
from engine.shards.integrity import manifest_checksums, quarantine_shards, verify_shards
from engine.shards.provenance import provenance
from engine.spec import CREDENTIALS_IN_URI, BenchmarkSpec
from engine.splits.builder import (
    BENCHMARK_DIR,
    BuiltSplits,
    build_splits,
    load_built_splits,
    read_input_shape,
)
from engine.splits.card import make_card, write_card
from engine.storage import StorageError, check_new_destination, download_run, is_uri, mirror_run
from engine.tracking import log_benchmark_run
from engine.tracking.mlflow_log import reconnect_uri
from engine.tracking.plots import plot_error_by_bin, plot_score_histogram
from engine.tracking.report import build_report

RUN_FILE = "run.json"  # status, timings and outputs of a run, rewritten after each stage
SPEC_FILE = "spec.yaml"  # the resolved spec, next to every result
SCORES_FILE = "scores.parquet"  # one row per sample: sample_id, split, label, scores
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # safe directory names


class RunSetupError(ValueError):
    """The run cannot start (bad run id, directory already there); nothing was written."""


@dataclass
class RunResult:
    """What a finished run produced."""

    run_id: str
    run_dir: Path
    evaluations: list[dict]
    built: BuiltSplits
    mlflow: dict
    timings: dict[str, float]
    table: str
    card_paths: dict[str, Path] = field(default_factory=dict)
    output: str | None = None  # where the run is mirrored, if anywhere


def _run_spec(run_dir: Path) -> BenchmarkSpec:
    """The classification spec a run was made with; QA runs are refused with a clear error."""
    from engine.spec import load_spec

    spec = load_spec(run_dir / SPEC_FILE)
    if spec.task.name != "classification":
        raise RunSetupError(
            f"{run_dir} is a {spec.task.name} run: this command supports classification runs only "
            "(a QA run's results are complete when `hardbench run` returns)"
        )
    return spec


def new_run_id(spec: BenchmarkSpec) -> str:
    """``<name>-<UTC timestamp>-<4 hex>``: sortable and unique."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{spec.metadata.name}-{stamp}-{secrets.token_hex(2)}"


def _write_status(run_dir: Path, status: dict) -> None:
    atomic_write_bytes(run_dir / RUN_FILE, json.dumps(status, indent=2, default=str).encode())


def format_results_table(
    built: BuiltSplits, evaluations: list[dict], score: str, transfer: dict | None = None
) -> str:
    """The table printed at the end of a run: each model's size and error per bin, then correlations.

    Bins run from the easiest (0) to the hardest by the score's direction. The
    replicas' own ensemble is marked as the in-sample scorer: its bins are cut from
    its own score, so its column is not a transfer result.
    """
    from engine.evaluation.evaluate import display_name, format_params
    from engine.scores import get_score

    direction = get_score(score).direction
    names = [display_name(ev) for ev in evaluations]
    widths = [max(10, len(n) + 2) for n in names]  # each model column as wide as its name

    def cells(values: list[str]) -> str:
        return "".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=True))

    head = f"{'bin':<6}{score + ' range':<22}{'count':>7}" + cells(names)
    rows = [f"bins from easiest (0) to hardest by {score} ({direction})", head, "-" * len(head)]

    def pct(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"

    def size(ev: dict) -> str:
        r = ev.get("replicas")
        if r and ev.get("params"):
            return f"{r} x {format_params(ev['params'] // r)}"
        return format_params(ev.get("params"))

    rows.append(f"{'params':<35}" + cells([size(ev) for ev in evaluations]))
    for b, (lo, hi) in enumerate(built.bin_edges):
        count = int((built.bins == b).sum())
        rows.append(
            f"{b:<6}{f'{lo:.4f} .. {hi:.4f}':<22}{count:>7}"
            + cells([pct(ev["error_per_bin"][b]) for ev in evaluations])
        )
    rows.append("-" * len(head))
    n_hard = int(built.is_hard.sum())
    for label, key, count in (
        ("hard", "error_hard", n_hard),
        ("rest", "error_rest", len(built.is_hard) - n_hard),
        ("all", "error_all", len(built.is_hard)),
    ):
        rows.append(f"{label:<28}{count:>7}" + cells([pct(ev[key]) for ev in evaluations]))
    rows.append("")

    def num(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:+.3f}"

    def auc(x: float) -> str:
        return "n/a (no errors)" if math.isnan(x) else f"{x:.3f}"

    for ev, name in zip(evaluations, names, strict=True):
        lo, hi = ev["error_hard_ci95"]
        rows.append(
            f"{name}: Pearson rho(bin, error) = {num(ev['pearson_rho'])} (p={ev['pearson_p']:.3g}), "
            f"hard - rest = {num(100 * ev['hard_minus_rest'])} pts "
            f"(hard error 95% CI {pct(lo)}..{pct(hi)}), "
            f"AUROC({score} hardness -> error) = {auc(ev['auroc_score_error'])}, ECE = {auc(ev['ece'])}"
        )
    if any(ev.get("in_sample") for ev in evaluations):
        rows.append(
            "(scorer, in-sample): the replicas' own ensemble, on bins cut from its own score; "
            "not a transfer result"
        )
    if transfer and transfer.get("kendall_tau_small_large") is not None:
        rows.append(
            f"Kendall tau between the small ensemble's {score} hardness and the reference models' "
            f"confusion ({', '.join(transfer['reference_models'])}; {transfer['reference_rule']}) "
            f"= {num(transfer['kendall_tau_small_large'])}"
        )
    elif transfer and "reference_rule" in transfer:
        rows.append(f"Kendall tau: no reference models ({transfer['reference_rule']})")
    return "\n".join(rows)


def _score_stage(
    run_dir: Path,
    run_id: str,
    spec: BenchmarkSpec,
    data: ClassificationData,
    *,
    allow_partial: bool,
    scores: list[str] | None = None,
    out: Path | None = None,
) -> tuple[pa.Table, dict]:
    """Consolidate the manifest, score through the Ray Data pool, write the scores table.

    Needs Ray to be initialised. The table's schema metadata records the scores, the
    replicas and epochs used, and whether the run was complete.
    """
    n_blocks = num_blocks(len(data.labels), spec.shards.block_size)
    manifest = consolidate_manifest(
        run_dir,
        replicas=spec.replicas.count,
        epochs=spec.replicas.recipe.epochs,
        blocks=n_blocks,
        allow_partial=allow_partial,
    )
    names = scores or spec.scores
    table = score_run(
        run_dir,
        replicas=manifest["replicas"],
        epochs=manifest["epochs"],
        num_blocks=n_blocks,
        scores=names,
        cpus_per_actor=spec.scoring.cpus_per_actor,
        num_actors=spec.scoring.num_actors,
        options=spec.score_options,
        groups=data.split,
    )
    if table.num_rows != len(data.labels):
        raise RuntimeError(f"scores table has {table.num_rows} rows for {len(data.labels)} samples")
    table = table.add_column(1, "split", pa.array(data.split[table.column("sample_id").to_numpy()]))
    scored_on = {
        "replicas": manifest["replicas"],
        "epochs": manifest["epochs"],
        "complete": manifest["complete"],
    }
    meta = {"run_id": run_id, "scores": names, **scored_on}
    table = table.replace_schema_metadata({b"hardbench": json.dumps(meta).encode()})
    atomic_write_table(out or run_dir / SCORES_FILE, table)
    return table, scored_on


def score_existing_run(
    run_dir: Path | str,
    *,
    scores: list[str] | None = None,
    allow_partial: bool = False,
    out: Path | str | None = None,
    num_cpus: int | None = None,
) -> tuple[Path, dict]:
    """Re-score a run's shards (other scores, or a partial run) into a new scores table.

    Args:
        run_dir: A run directory holding ``spec.yaml`` and ``preds/``.
        scores: Score names (default: the spec's).
        allow_partial: Score the finished (replica, epoch) pairs of an unfinished run;
            the output's metadata lists which were used.
        out: Output Parquet path (default ``<run>/scores.rescored.parquet``); an existing
            file is never overwritten.
        num_cpus: CPUs of a local Ray cluster.

    Returns:
        The output path and ``{"replicas", "epochs", "complete"}`` actually used.

    Raises:
        RunSetupError: For a directory that is not a run, or an existing output file.
        ValueError: For an unknown score name.
    """
    from engine.scores import get_score

    run_dir = Path(run_dir).resolve()
    if not (run_dir / SPEC_FILE).exists():
        raise RunSetupError(f"{run_dir} is not a run directory (no {SPEC_FILE})")
    out_path = Path(out) if out else run_dir / "scores.rescored.parquet"
    if out_path.exists():
        raise RunSetupError(
            f"{out_path} exists; pass another --out (outputs are never overwritten)"
        )
    spec = _run_spec(run_dir)
    for name in scores or []:
        get_score(name)
    data = spec.load_data()
    with ray_session(num_cpus):
        _, scored_on = _score_stage(
            run_dir,
            run_dir.name,
            spec,
            data,
            allow_partial=allow_partial,
            scores=scores,
            out=out_path,
        )
    return out_path, scored_on


def model_parameter_counts(
    spec: BenchmarkSpec, num_classes: int, input_shape: tuple[int, ...]
) -> dict[str, int]:
    """Parameters of one replica (key ``replica``) and of every evaluated model."""
    from engine.models import count_parameters

    def count(recipe: object) -> int:
        return count_parameters(
            recipe.model, num_classes=num_classes, input_shape=input_shape, **recipe.model_kwargs
        )

    return {"replica": count(spec.replicas.recipe)} | {
        m.name: count(m.recipe) for m in spec.evaluate.models
    }


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def reference_models(
    spec: BenchmarkSpec, params: dict[str, int], replica_params: int
) -> tuple[list[str], str]:
    """The evaluated models the small ensemble's difficulty is compared with, and why.

    Args:
        spec: The run's spec (``evaluate.reference_models``: ``larger`` or names).
        params: Evaluated model name -> its number of parameters.
        replica_params: Parameters of one seed replica.

    Returns:
        ``(names, rule)``: the reference models in spec order, and the rule in words.
    """
    from engine.spec import REFERENCE_LARGER

    chosen = spec.evaluate.reference_models
    if chosen != REFERENCE_LARGER:
        return list(chosen), "listed in evaluate.reference_models"
    total = spec.replicas.count * replica_params
    names = [m.name for m in spec.evaluate.models if params[m.name] > total]
    return (
        names,
        f"models with more parameters than the {spec.replicas.count}-replica ensemble ({total:,})",
    )


def transfer_metrics(built: BuiltSplits, model_probs: dict[str, np.ndarray], rule: str) -> dict:
    """Rank agreement between the small ensemble and the reference (larger) models.

    The reference models' confusion is the entropy of their mean predicted
    distribution (one prediction per model, after training); Kendall's tau compares it
    with the small ensemble's splitting score read as hardness (higher = harder), so
    tau > 0 means both find the same samples hard whatever the score's direction.
    """
    out: dict = {"reference_models": list(model_probs), "reference_rule": rule}
    if not model_probs:
        return out
    from engine.scores import confusion

    stacked = np.stack(list(model_probs.values()))[:, None]  # (M, 1, P, K)
    large = confusion(stacked / stacked.sum(axis=-1, keepdims=True))
    tau, p = kendall_tau(built.hardness, large)
    out.update(kendall_tau_small_large=tau, kendall_p=p, large_confusion=large)
    return out


def run_num_classes(run_dir: Path, spec: BenchmarkSpec) -> int:
    """K of a finished run: its card's class list (the pool may lack a class)."""
    card = Path(run_dir) / BENCHMARK_DIR / "card.json"
    if card.exists():
        return len(json.loads(card.read_text())["class_names"])
    return spec.load_data().num_classes


def evaluate_model_on_run(
    run_dir: Path | str,
    *,
    model: str | None = None,
    model_uri: str | None = None,
    label: str | None = None,
    pretrained: bool = False,
    weights_file: str | None = None,
    model_kwargs: dict | None = None,
    num_classes: int | None = None,
    split: str = "pool",
    num_cpus: int | None = None,
    cpus_per_actor: float | None = None,
    gpus_per_actor: float | None = None,
) -> dict:
    """Evaluate a registered model, or an MLflow-logged one, on a finished run's splits.

    Predictions run on a Ray Data actor pool with the model's own preprocessing. On
    the pool every transfer metric is computed (per bin, hard vs rest, AUROC); on
    another split, its error with a bootstrap interval and the calibration error.
    The result is logged as a nested MLflow run of the build, so ``hardbench
    compare`` shows it next to the build's models.

    Args:
        run_dir: A finished run.
        model: Registered model name.
        model_uri: An MLflow URI of a logged hardbench model (``runs:/<id>/model``) or
            a local model directory; replaces ``model``.
        label: Name in reports and MLflow (default: the model name).
        pretrained: Load the registry's pretrained weights (local hub cache).
        weights_file: A local state dict.
        model_kwargs: Model options.
        num_classes: Output size (default: the dataset's).
        split: ``pool`` or any built split (``hard``, ``rest``, ``bin_<b>``).
        num_cpus: CPUs of a local Ray cluster.
        cpus_per_actor: CPUs of each prediction actor (default: the spec's
            ``evaluate.cpus_per_actor``).
        gpus_per_actor: GPU share of each prediction actor (default: the spec's
            ``evaluate.gpus_per_actor``).

    Returns:
        The evaluation dict (as in ``evaluate_predictions``) plus ``split`` and ``mlflow_run``.
    """
    import pyarrow.parquet as pq

    from engine.evaluation import bootstrap_ci, expected_calibration_error, top1_error
    from engine.tracking.mlflow_log import log_model_run

    run_dir = Path(run_dir).resolve()
    if not (run_dir / RUN_FILE).exists():
        raise RunSetupError(f"{run_dir} is not a run directory (no {RUN_FILE})")
    status = json.loads((run_dir / RUN_FILE).read_text())
    if status.get("status") != "complete":
        raise RunSetupError(
            f"run {run_dir.name} is {status.get('status')!r}, not complete: nothing to evaluate on"
        )
    spec = _run_spec(run_dir)
    try:
        built = load_built_splits(run_dir, spec.splits)
    except ValueError as exc:  # label-free: nothing to measure errors against
        raise RunSetupError(str(exc)) from None
    if split not in built.files:
        raise RunSetupError(
            f"unknown split {split!r}; this run has {', '.join(sorted(built.files))}"
        )
    input_shape = read_input_shape(pq.read_schema(built.files["pool"]))
    kwargs: dict = {
        "input_shape": input_shape,
        "num_classes": num_classes or run_num_classes(run_dir, spec),
    }
    from engine.models import WeightsError, check_weights_file

    if model_uri:
        from engine.evaluation.predictor import describe_model_dir

        model_dir = Path(model_uri)
        if not model_dir.is_dir():
            import mlflow.artifacts

            model_dir = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri,
                    tracking_uri=reconnect_uri(status.get("mlflow", {}).get("tracking_uri")),
                )
            )
        info = describe_model_dir(model_dir)
        try:  # fail before any actor starts
            check_weights_file(
                info["weights_file"], info["model"], num_classes=kwargs["num_classes"],
                input_shape=input_shape, **info["model_kwargs"],
            )  # fmt: skip
        except WeightsError as exc:
            raise RunSetupError(f"model {model_uri}: {exc}") from None
        kwargs["model_dir"] = str(model_dir)
        name, options = info["model"], info["model_kwargs"]
        label = label or model_uri.rstrip("/").split("/")[-2 if model_uri.endswith("model") else -1]
    elif model:
        from engine.models import get_model_config
        from engine.models import weights_file as hub_weights_file

        config = get_model_config(model)  # unknown names fail here, with close matches
        if config.family == "hf":  # fail before any actor starts: no texts, or no tokenizer
            from engine.evaluation.predictor import require_hf_text_model

            try:
                require_hf_text_model((model_kwargs or {}).get("path"), built.files[split])
            except (FileNotFoundError, ValueError) as exc:
                raise RunSetupError(str(exc)) from None
        if pretrained and weights_file is None:
            # Resolve the hub cache path here: actors may not see this process's TORCH_HOME.
            weights_file = str(hub_weights_file(model))
        if weights_file is not None:
            try:  # readable, and the keys and shapes of this model: before any actor starts
                check_weights_file(
                    weights_file, model, num_classes=kwargs["num_classes"],
                    input_shape=input_shape, **(model_kwargs or {}),
                )  # fmt: skip
            except WeightsError as exc:
                raise RunSetupError(str(exc)) from None
        kwargs.update(model=model, weights_file=weights_file, model_kwargs=model_kwargs)
        name, options = model, model_kwargs or {}
        label = label or model
    else:
        raise RunSetupError("give a registered model name or a model URI")
    with ray_session(num_cpus):
        out = predict_split(
            built.files[split],
            kwargs,
            cpus_per_actor=spec.evaluate.cpus_per_actor
            if cpus_per_actor is None
            else cpus_per_actor,
            gpus_per_actor=spec.evaluate.gpus_per_actor
            if gpus_per_actor is None
            else gpus_per_actor,
        )
    if split == "pool":
        if not np.array_equal(out["sample_id"], built.sample_ids):
            raise RuntimeError("the evaluation pool returned other sample ids than the pool holds")
        ev = evaluate_predictions(
            label, out["pred"], built, confidence=out["conf"], seed=spec.replicas.recipe.seed,
            params=_model_params(name, options, kwargs["num_classes"], input_shape),
        )  # fmt: skip
    else:
        pos = np.searchsorted(built.sample_ids, out["sample_id"])
        wrong = out["pred"] != built.labels[pos]
        ev = {
            "model": label,
            "error_all": top1_error(built.labels[pos], out["pred"]),
            "error_all_ci95": list(bootstrap_ci(wrong, seed=spec.replicas.recipe.seed)),
            "ece": expected_calibration_error(out["conf"], ~wrong),
        }
    ev["split"] = split
    mlflow_info = status.get("mlflow")
    if mlflow_info:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=reconnect_uri(mlflow_info["tracking_uri"]))
        ev["mlflow_run"] = log_model_run(
            client, mlflow_info["experiment_id"], mlflow_info["parent_run_id"], status["run_id"], ev
        )
    evals_dir = run_dir / "eval" / "extra"
    atomic_write_bytes(evals_dir / f"{label}-{split}.json", json.dumps(ev, indent=2).encode())
    return ev


def _model_params(
    name: str, options: dict, num_classes: int, input_shape: tuple[int, ...]
) -> int | None:
    """Parameters of a model ``hardbench eval`` evaluates (None for Hugging Face models)."""
    from engine.models import count_parameters, get_model_config

    if get_model_config(name).family == "hf":
        return None
    return count_parameters(name, num_classes=num_classes, input_shape=input_shape, **options)


def _process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (Linux ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the parenthesised name


def _driver_record() -> dict:
    """Who is driving this attempt: host, pid and the process's start time."""
    return {
        "started": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": _process_start(os.getpid()),
    }


def _driver_alive(record: dict) -> bool:
    """Whether the driver in ``record`` still runs (same host, same pid and start time)."""
    if record.get("host") != socket.gethostname() or record.get("pid") == os.getpid():
        return False
    try:
        pid = int(record["pid"])
        os.kill(pid, 0)
    except (KeyError, TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    start = _process_start(pid)
    return start is None or start == record.get("pid_start")


def run_benchmark(
    spec: BenchmarkSpec,
    *,
    runs_dir: Path | str = "runs",
    run_id: str | None = None,
    num_cpus: int | None = None,
    output: str | None = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Run a validated spec end to end.

    The run directory is created only after the spec has validated, so bad input
    leaves nothing behind; a failure later marks ``run.json`` as failed with the
    error and keeps every finished stage's outputs, from which :func:`resume_run`
    continues.

    Args:
        spec: A validated spec (``load_spec``).
        runs_dir: Parent directory of run directories.
        run_id: Run directory name; a fresh timestamped id by default.
        num_cpus: CPUs of the local Ray cluster (ignored when ``RAY_ADDRESS`` is set).
        output: Mirror the run to ``<output>/<run_id>/`` after every stage (a path or
            any pyarrow filesystem URI); default the spec's ``output.uri``.
        log: Where progress lines go.

    Returns:
        The run's result, including the printed table.

    Raises:
        RunSetupError: For a run id that is not a safe directory name, a run
            directory that already exists, or an output that cannot be used.
    """
    run_id = run_id or new_run_id(spec)
    if not RUN_ID_PATTERN.match(run_id):
        raise RunSetupError(f"run id must match {RUN_ID_PATTERN.pattern}, got {run_id!r}")
    run_dir = Path(runs_dir).resolve() / run_id
    output = output or spec.output.uri
    dest = None
    if output and has_credentials(output):
        raise RunSetupError(f"output {redact_uri(output)} {CREDENTIALS_IN_URI}")
    if output:
        try:
            dest = check_new_destination(run_id, output)
        except StorageError as exc:
            raise RunSetupError(str(exc)) from None
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir(exist_ok=False)
    except FileExistsError:
        raise RunSetupError(f"run directory already exists: {run_dir}") from None
    atomic_write_bytes(run_dir / SPEC_FILE, spec.to_yaml().encode())
    status: dict = {
        "run_id": run_id,
        "status": "running",
        "started": time.time(),
        "timings_s": {},
        "provenance": provenance(),
        "attempts": [_driver_record()],
    }
    if dest is not None:
        status["output"] = dest.uri
    _write_status(run_dir, status)
    log(f"[run] {run_id} -> {run_dir}" + (f", mirrored to {dest.uri}" if dest else ""))
    return _execute(spec, run_dir, status, num_cpus, log)


def resume_run(
    run_dir: Path | str,
    *,
    num_cpus: int | None = None,
    runs_dir: Path | str = "runs",
    force: bool = False,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Finish a run whose driver died or failed, redoing only what is not done.

    The run's shards are verified against their manifests first; corrupt or truncated
    ones are moved to ``quarantine/`` and their (replica, epoch) pairs redone. Replicas
    continue from their checkpoints and never retrain a finished (replica, epoch);
    evaluated models that finished are loaded, not retrained; scoring, splits,
    evaluation and tracking run again on the complete shards. With the same seeds the
    final scores equal those of an uninterrupted run.

    Args:
        run_dir: The run directory (holds ``spec.yaml`` and ``run.json``), or the URI
            of a mirrored run, which is first downloaded into ``runs_dir``.
        num_cpus: CPUs of the local Ray cluster.
        runs_dir: Where a mirrored run is downloaded to.
        force: Resume a run marked running by a driver on another host (which cannot
            be checked from here).
        log: Where progress lines go.

    Returns:
        The run's result.

    Raises:
        RunSetupError: If the directory is not a run, the run is complete, or its
            driver is still running.
    """
    if is_uri(run_dir):
        try:
            run_dir = download_run(str(run_dir), runs_dir)
        except StorageError as exc:
            raise RunSetupError(str(exc)) from None
        log(f"[run] downloaded the mirrored run to {run_dir}")
    run_dir = Path(run_dir).resolve()
    if not (run_dir / RUN_FILE).exists() or not (run_dir / SPEC_FILE).exists():
        raise RunSetupError(f"{run_dir} is not a run directory (no {RUN_FILE} or {SPEC_FILE})")
    status = json.loads((run_dir / RUN_FILE).read_text())
    if status.get("task", "classification") != "classification":
        raise RunSetupError(
            f"{run_dir} is a {status['task']} run: resuming supports classification runs only"
        )
    if status.get("status") == "complete":
        raise RunSetupError(
            f"run {run_dir.name} is complete; nothing to resume "
            "(`hardbench verify RUN --repair` checks and regenerates its shards)"
        )
    attempts = status.setdefault("attempts", [])
    if status.get("status") == "running" and attempts:
        last = attempts[-1]
        if _driver_alive(last):
            raise RunSetupError(
                f"run {run_dir.name} is still running (driver pid {last['pid']} on "
                f"{last['host']}); stop it before resuming"
            )
        if last.get("host") != socket.gethostname() and not force:
            raise RunSetupError(
                f"run {run_dir.name} is marked running by a driver on host {last.get('host')}, "
                "which this machine cannot check; if that driver is gone, resume with --force"
            )
    spec = _run_spec(run_dir)
    attempts[-1]["ended_as"] = status.get("status")
    attempts[-1]["timings_s"] = status.get("timings_s", {})
    attempts.append(_driver_record())
    for key in ("error", "traceback", "finished"):
        status.pop(key, None)
    status.update(status="running", timings_s={})
    log(f"[run] resuming {run_dir.name} (attempt {len(attempts)}) in {run_dir}")
    checked, problems = verify_shards(run_dir)
    for p in problems:
        log(f"[verify] {p.path.relative_to(run_dir)}: {p.reason}")
    dest = quarantine_shards(run_dir, problems)
    log(
        f"[verify] {checked} shards checked, {len(problems)} failed"
        + (f"; moved to {dest.relative_to(run_dir)} and redone" if dest else "")
    )
    status["attempts"][-1]["quarantined"] = [str(p.path.relative_to(run_dir)) for p in problems]
    _write_status(run_dir, status)
    return _execute(spec, run_dir, status, num_cpus, log)


def verify_run(
    run_dir: Path | str,
    *,
    repair: bool = False,
    num_cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Check every shard of a run against its manifest; optionally regenerate bad ones.

    With ``repair`` the failed shards are moved to ``quarantine/`` and their (replica,
    epoch) pairs retrained from the replicas' checkpoints (or replayed from the start)
    on Ray; each regenerated shard's checksum is compared with the one recorded when
    it was first written, which tells whether the scores already computed from it
    still hold.

    Returns:
        ``{"checked", "problems": [..], "quarantine": dir or None, "regenerated": n,
        "identical": n regenerated with the original checksum, "remaining": n}``.

    Raises:
        RunSetupError: If the directory is not a run.
    """
    run_dir = Path(run_dir).resolve()
    if not (run_dir / SPEC_FILE).exists():
        raise RunSetupError(f"{run_dir} is not a run directory (no {SPEC_FILE})")
    original = manifest_checksums(run_dir)
    checked, problems = verify_shards(run_dir)
    for p in problems:
        log(f"[verify] {p.path.relative_to(run_dir)}: {p.reason}")
    log(f"[verify] {checked} shards checked, {len(problems)} failed")
    out = {
        "checked": checked,
        "problems": [f"{p.path.relative_to(run_dir)}: {p.reason}" for p in problems],
        "quarantine": None,
        "regenerated": 0,
        "identical": 0,
        "remaining": len(problems),
    }
    if not problems or not repair:
        return out
    status = json.loads((run_dir / RUN_FILE).read_text()) if (run_dir / RUN_FILE).exists() else {}
    attempts = status.get("attempts", [])
    if status.get("status") == "running" and attempts and _driver_alive(attempts[-1]):
        raise RunSetupError(
            f"run {run_dir.name} is still running (driver pid {attempts[-1]['pid']}); "
            "repair it once it has stopped"
        )
    spec = _run_spec(run_dir)
    redo = {(r, p.epoch) for p in problems for r in p.replicas}
    dest = quarantine_shards(run_dir, problems)
    out["quarantine"] = str(dest)
    log(
        f"[verify] moved to {dest.relative_to(run_dir)}; regenerating {len(redo)} (replica, epoch) pairs"
    )
    with ray_session(num_cpus):
        train_replicas(run_dir, spec, attempt=len(attempts) + 1, log=log)
    now = manifest_checksums(run_dir)
    for p in problems:
        key = str(p.path)
        if key in now:
            out["regenerated"] += 1
            out["identical"] += int(now[key] == original.get(key))
    _, left = verify_shards(run_dir)
    out["remaining"] = len(left)
    log(
        f"[verify] regenerated {out['regenerated']} of {len(problems)} shards, "
        f"{out['identical']} byte-identical to the originals; {len(left)} still failing"
    )
    if out["identical"] < out["regenerated"] and (run_dir / SCORES_FILE).exists():
        log(
            f"[verify] some regenerated shards differ from the originals; {SCORES_FILE} was "
            "computed from the originals: run `hardbench score` to re-score"
        )
    return out


def _execute(
    spec: BenchmarkSpec,
    run_dir: Path,
    status: dict,
    num_cpus: int | None,
    log: Callable[[str], None],
) -> RunResult:
    """Run the stages, recording the outcome in ``run.json`` (and its mirror) whatever happens."""

    def mirror() -> None:
        if status.get("output"):
            mirror_run(run_dir, status["output"], log=log)

    try:
        result = _run_stages(spec, run_dir, num_cpus, status, log, mirror)
    except BaseException as exc:
        status.update(
            status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
        _write_status(run_dir, status)
        try:
            mirror()
        except Exception as mirror_exc:  # keep the run's own error; say the mirror failed too
            log(f"[output] mirroring the failed run failed too: {mirror_exc}")
        raise
    status.update(status="complete", finished=time.time(), mlflow=result.mlflow)
    _write_status(run_dir, status)
    mirror()
    return result


def _run_stages(
    spec: BenchmarkSpec,
    run_dir: Path,
    num_cpus: int | None,
    status: dict,
    log: Callable[[str], None],
    mirror: Callable[[], None] = lambda: None,
) -> RunResult:
    run_id = status["run_id"]
    prov = status["provenance"]
    timings: dict[str, float] = status["timings_s"]
    attempt = len(status["attempts"])

    def stage_done(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 3)
        _write_status(run_dir, status)
        mirror()

    t_total = time.perf_counter()
    data = spec.load_data()
    t = time.perf_counter()
    with ray_session(num_cpus) as cluster:
        stage_done("ray_init", t)
        log(
            f"[ray] {'started local cluster' if cluster['started'] else 'attached to'} {cluster['address']} ({cluster['cpus']:.0f} CPUs)"
        )
        t = time.perf_counter()
        train_replicas(run_dir, spec, attempt=attempt, log=log)
        stage_done("train_replicas", t)

        t = time.perf_counter()
        table, scored_on = _score_stage(run_dir, run_id, spec, data, allow_partial=False)
        stage_done("score", t)
        log(
            f"[score] {table.num_rows} samples x {len(spec.scores)} scores ({', '.join(spec.scores)}) -> {SCORES_FILE}"
        )

        t = time.perf_counter()
        built = build_splits(run_dir, spec.splits, data, table)
        stage_done("build", t)
        log(
            f"[build] pool {spec.splits.pool}: {len(built.sample_ids)} samples, hard split {int(built.is_hard.sum())}, "
            f"{len(built.bin_edges)} bins -> {BENCHMARK_DIR}/splits"
        )

        t = time.perf_counter()
        logits = train_eval_models(run_dir, spec, log=log) if spec.evaluate.models else {}
        stage_done("train_models", t)

    t = time.perf_counter()
    pool_pos = built.sample_ids
    params = model_parameter_counts(spec, data.num_classes, data.input_shape)
    replica_params = params.pop("replica")
    outputs: dict[
        str, tuple[np.ndarray, np.ndarray]
    ] = {}  # model -> (pred, confidence) on the pool
    if spec.evaluate.ensemble:
        outputs["ensemble"] = (
            table.column("ensemble_pred").to_numpy()[pool_pos],
            table.column("ensemble_conf").to_numpy()[pool_pos],
        )
    model_probs = {name: _softmax(lg[pool_pos]) for name, lg in logits.items()}
    for name, probs in model_probs.items():
        outputs[name] = (probs.argmax(axis=1), probs.max(axis=1))
    evaluations = []
    for name, (pred, conf) in outputs.items():
        scorer = name == "ensemble"
        ev = evaluate_predictions(
            name, pred, built, confidence=conf, seed=spec.replicas.recipe.seed, in_sample=scorer,
            params=spec.replicas.count * replica_params if scorer else params[name],
        )  # fmt: skip
        if scorer:
            ev["replicas"] = spec.replicas.count
        evaluations.append(ev)
    mitigations = {m.name: m.mitigation for m in spec.evaluate.models}
    for ev in evaluations:
        mit = mitigations.get(ev["model"])
        if mit is not None and mit.method != "erm":
            ev["mitigation"] = asdict(mit)
    reference, rule = reference_models(spec, params, replica_params)
    transfer = transfer_metrics(built, {n: model_probs[n] for n in reference}, rule)
    transfer["params"] = {"replica": replica_params, **params}
    eval_dir = run_dir / "eval"
    eval_dir.mkdir(exist_ok=True)
    preds = {"sample_id": pa.array(pool_pos), "label": pa.array(built.labels)}
    for name, (pred, conf) in outputs.items():
        preds[f"pred_{name}"] = pa.array(pred)
        preds[f"conf_{name}"] = pa.array(conf)
    if "large_confusion" in transfer:
        preds["large_confusion"] = pa.array(transfer.pop("large_confusion"))
    atomic_write_bytes(eval_dir / "transfer.json", json.dumps(transfer, indent=2).encode())
    atomic_write_table(eval_dir / "predictions.parquet", pa.table(preds))
    atomic_write_bytes(eval_dir / "metrics.json", json.dumps(evaluations, indent=2).encode())
    stage_done("evaluate", t)

    t = time.perf_counter()
    split_values = np.asarray(table.column("split").to_pylist())
    score_values = table.column(spec.splits.score).to_numpy()
    plots = [
        plot_error_by_bin(evaluations, spec.splits.score, eval_dir / "error_by_bin.png"),
        plot_score_histogram(
            {s: score_values[split_values == s] for s in sorted(set(split_values))},
            spec.splits.score,
            eval_dir / f"{spec.splits.score}_histogram.png",
        ),
    ]
    seeds = {
        "replicas": spec.replicas.seeds(),
        "split": spec.data.split_seed,
        "models": {m.name: m.recipe.seed for m in spec.evaluate.models},
    }
    card = make_card(
        spec_dict=spec.to_dict(),
        run_id=run_id,
        seeds=seeds,
        provenance=prov,
        scores=table,
        score_names=spec.scores,
        built=built,
        class_names=data.class_names,
        evaluations=evaluations,
        timings=dict(timings),
        scored_on=scored_on,
        transfer=transfer,
        hard_rule_text=spec.splits.describe(),
    )
    card_paths = write_card(run_dir, card)
    report = build_report(run_dir)
    summary = {f"time_{k}_s": v for k, v in timings.items()}
    summary.update(
        {
            "num_samples": len(data.labels),
            "pool_size": len(built.sample_ids),
            "hard_size": int(built.is_hard.sum()),
        }
    )
    for name, parts in card["score_statistics"].items():
        for part, s in parts.items():
            if s["mean"] is not None:
                summary[f"{name}_{part}_mean"] = s["mean"]
    if "kendall_tau_small_large" in transfer:
        summary["kendall_tau_small_large"] = transfer["kendall_tau_small_large"]
    for ev in evaluations:
        summary[f"{ev['model']}_error_hard"] = ev["error_hard"]
        summary[f"{ev['model']}_error_all"] = ev["error_all"]
    mlflow_info = log_benchmark_run(
        run_dir=run_dir,
        run_id=run_id,
        experiment=spec.tracking.experiment,
        spec_dict=spec.to_dict(),
        evaluations=evaluations,
        summary_metrics=summary,
        artifacts=[
            card_paths["json"],
            card_paths["md"],
            report,
            run_dir / SCORES_FILE,
            run_dir / SPEC_FILE,
            *plots,
        ],
        model_dirs={m.name: run_dir / MODELS_DIR / m.name for m in spec.evaluate.models},
        tags={
            "hardbench.git_commit": str(prov["git"]["commit"]),
            "hardbench.spec": spec.metadata.name,
        },
    )
    stage_done("track", t)
    timings["total"] = round(time.perf_counter() - t_total, 3)
    log(f"[mlflow] parent run {mlflow_info['parent_run_id']} in {mlflow_info['tracking_uri']}")
    return RunResult(
        run_id=run_id,
        run_dir=run_dir,
        evaluations=evaluations,
        built=built,
        mlflow=mlflow_info,
        timings=dict(timings),
        table=format_results_table(built, evaluations, spec.splits.score, transfer),
        card_paths=card_paths,
        output=status.get("output"),
    )
