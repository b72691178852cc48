"""``hardbench eval`` for classification runs: any registered or MLflow-logged model on a split.

The model's weights are checked on the driver before any Ray actor starts; the
predictions run on a Ray Data actor pool with the model's own preprocessing; the
result is logged as a nested MLflow run of the build.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine._util import RunSetupError
from engine.distributed.cluster import ray_session
from engine.distributed.evaluation import predict_split
from engine.evaluation.corrected_labels import (
    CorrectedLabels,
    LabelsComparison,
    compare_on_labels,
    format_labels_table,
)
from engine.evaluation.evaluate import evaluate_predictions, top1_quality, upgrade_evaluation
from engine.layout import (
    BENCHMARK_DIR,
    CARD_JSON_FILE,
    CORRECTNESS_FILE,
    EVAL_DIR,
    EVAL_EXTRA_DIR,
    EVAL_PREDICTIONS_FILE,
    LABELS_EVAL_PREFIX,
    METRICS_FILE,
    TRANSFER_FILE,
)
from engine.shards import atomic_write_bytes
from engine.spec import BenchmarkSpec
from engine.splits.builder import BuiltSplits, load_built_splits, read_input_shape
from engine.splits.display import IN_SAMPLE_POOLS
from engine.tasks.loading import load_data
from engine.tracking.mlflow_log import reconnect_uri

# in_sample_reason of a model that hardbench eval cannot tell trained on the pool or not
MAY_HAVE_TRAINED_ON_POOL = (
    "the pool includes the run's training samples, which it may have trained on"
)


def run_num_classes(run_dir: Path, spec: BenchmarkSpec) -> int:
    """K of a finished run: its card's class list (the pool may lack a class)."""
    card = Path(run_dir) / BENCHMARK_DIR / CARD_JSON_FILE
    if card.exists():
        return len(json.loads(card.read_text())["class_names"])
    return load_data(spec, run_dir).num_classes


def evaluate_classifier(
    run_dir: Path | str,
    spec: BenchmarkSpec,
    status: dict,
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
    actors: int | str | None = None,
    cpus_per_actor: float | None = None,
    gpus_per_actor: float | None = None,
    labels: CorrectedLabels | None = None,
) -> dict:
    """Evaluate a registered model, or an MLflow-logged one, on a finished classification run.

    Predictions run on a Ray Data actor pool with the model's own preprocessing. On
    the pool every transfer metric is computed (per bin, hard vs rest, AUROC); on
    another split, its error with a bootstrap interval and the calibration error.
    The result is logged as a nested MLflow run of the build, so ``hardbench
    compare`` shows it next to the build's models.

    Args:
        run_dir: A finished run.
        spec: Its spec.
        status: Its ``run.json``.
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
        actors: Prediction actors, or ``"auto"`` (default: the spec's ``evaluate.actors``).
        cpus_per_actor: CPUs of each prediction actor (default: the spec's
            ``evaluate.cpus_per_actor``).
        gpus_per_actor: GPU share of each prediction actor (default: the spec's
            ``evaluate.gpus_per_actor``).
        labels: A labels version of the run: the model is also measured on it, beside
            the build's models (:func:`evaluate_on_labels`; the pool only).

    Returns:
        The evaluation dict (as in ``evaluate_predictions``) plus ``split`` and
        ``mlflow_run``; with ``labels``, ``labels_comparison`` (the comparison record,
        its ``table`` and its ``files``); ``in_sample`` with ``in_sample_reason`` when the run's pool
        (``splits.pool: train`` or ``all``) holds samples the model may have trained on
        (:func:`_in_sample_reason`).
    """
    import pyarrow.parquet as pq

    from engine.evaluation import bootstrap_ci, expected_calibration_error, top1_error

    run_dir = Path(run_dir).resolve()
    in_sample_reason = _in_sample_reason(spec.splits.pool, model_uri=model_uri,
                                         weights_file=weights_file)  # fmt: skip
    try:
        built = load_built_splits(run_dir, spec.splits)
    except ValueError as exc:  # label-free: nothing to measure errors against
        raise RunSetupError(str(exc)) from None
    if split not in built.files:
        raise RunSetupError(
            f"unknown split {split!r}; this run has {', '.join(sorted(built.files))}"
        )
    if labels is not None:  # before any actor starts: the version fits the pool, names are free
        if split != "pool":
            raise RunSetupError(
                "--labels measures the pool (overall, hard, rest and every bin): drop --split"
            )
        try:
            labels.on_pool(built.sample_ids, built.labels)
        except ValueError as exc:
            raise RunSetupError(str(exc)) from None
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
            from engine.tracking.mlflow_log import download_model

            stored = status.get("mlflow", {}).get("tracking_uri")
            model_dir = download_model(reconnect_uri(stored), model_uri)
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
            head = _imagenet_head(run_dir, spec, model, weights_file, kwargs["num_classes"])
            try:  # readable, and the keys and shapes of this model: before any actor starts
                check_weights_file(
                    weights_file, model, num_classes=head or kwargs["num_classes"],
                    input_shape=input_shape, **(model_kwargs or {}),
                )  # fmt: skip
            except WeightsError as exc:
                raise RunSetupError(str(exc)) from None
            if head:
                from engine.models.imagenet import imagenet_classes

                classes = imagenet_classes(load_data(spec, run_dir).class_names)
                kwargs["class_map"] = [c["index"] for c in classes]
        kwargs.update(model=model, weights_file=weights_file, model_kwargs=model_kwargs)
        name, options = model, model_kwargs or {}
        label = label or model
    else:
        raise RunSetupError("give a registered model name or a model URI")
    if labels is not None:  # the build's predictions are there and the name is free
        stored_pool_predictions(run_dir, built, taken=label)
    with ray_session(num_cpus):
        out = predict_split(
            built.files[split],
            kwargs,
            actors=spec.evaluate.actors if actors is None else actors,
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
        quality, miss = top1_quality(label, built.labels, out["pred"])
        ev = evaluate_predictions(
            label, built, quality=quality, miss=miss, confidence=out["conf"],
            seed=spec.replicas.recipe.seed,
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
    ev["in_sample"] = in_sample_reason is not None
    if in_sample_reason is not None:
        ev["in_sample_reason"] = in_sample_reason
    ev["split"] = split
    mlflow_info = status.get("mlflow")
    if mlflow_info:
        from engine.tracking.datasets import split_datasets
        from engine.tracking.mlflow_log import BuildRecorder

        recorder = BuildRecorder(
            reconnect_uri(mlflow_info["tracking_uri"]), spec.tracking.experiment
        )
        recorder.attach(mlflow_info["parent_run_id"])
        ev["mlflow_run"] = recorder.log_evaluation(
            status["run_id"], ev,
            datasets=split_datasets({split: built.files[split]}, spec.splits.score),
        )  # fmt: skip
    evals_dir = run_dir / EVAL_DIR / EVAL_EXTRA_DIR
    if labels is not None:
        ev["labels_comparison"] = evaluate_on_labels(
            run_dir, spec, status, labels,
            extra=(label, out["pred"], out["conf"], {k: ev[k] for k in ("in_sample", "in_sample_reason", "params") if k in ev}),
        )  # fmt: skip
    atomic_write_bytes(evals_dir / f"{label}-{split}.json", json.dumps(ev, indent=2).encode())
    return ev


def stored_pool_predictions(
    run_dir: Path, built: BuiltSplits, *, taken: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, dict]]:
    """The build's evaluated models' per-sample pool predictions, from its ``eval/`` files.

    Args:
        run_dir: A finished run.
        built: Its :class:`~engine.splits.builder.BuiltSplits`.
        taken: A name an outside model would use: refused if a build model has it.

    Returns:
        ``(model -> int (P,) predicted class, model -> float (P,) confidence,
        model -> its build evaluation)``, aligned with ``built.sample_ids``, in the order
        of ``eval/metrics.json``.

    Raises:
        RunSetupError: For missing files, predictions of other samples, no model, or
            a ``taken`` name a build model already has.
    """
    import pyarrow.parquet as pq

    eval_dir = Path(run_dir) / EVAL_DIR
    preds_path, metrics_path = eval_dir / EVAL_PREDICTIONS_FILE, eval_dir / METRICS_FILE
    for path in (preds_path, metrics_path):
        if not path.exists():
            raise RunSetupError(f"{path} is missing: the run's evaluation stage has not finished")
    table = pq.read_table(preds_path)
    if not np.array_equal(table.column("sample_id").to_numpy(), built.sample_ids):
        raise RunSetupError(f"{preds_path} holds other samples than the run's pool")
    records = [upgrade_evaluation(e) for e in json.loads(metrics_path.read_text())]
    preds, confs, kept = {}, {}, {}
    for ev in records:
        name = ev["model"]
        if f"pred_{name}" in table.column_names:
            preds[name] = table.column(f"pred_{name}").to_numpy()
            confs[name] = table.column(f"conf_{name}").to_numpy()
            kept[name] = ev
    if not preds:
        raise RunSetupError(f"{preds_path} holds no model's predicted classes (pred_<model>)")
    if taken is not None and taken in preds:
        raise RunSetupError(
            f"{taken!r} is a model of the build: give the outside model another --label"
        )
    return preds, confs, kept


def evaluate_on_labels(
    run_dir: Path | str,
    spec: BenchmarkSpec,
    status: dict,
    labels: CorrectedLabels,
    *,
    extra: tuple[str, np.ndarray, np.ndarray, dict] | None = None,
) -> dict:
    """Re-measure the build's models (and an outside one) on the original and corrected labels.

    The build's models are measured from their stored pool predictions
    (``eval/predictions.parquet``): nothing is predicted again. Without ``extra`` the
    record goes to ``eval/labels-<v>/transfer.json`` with the per-sample right/wrong
    on both label sets in ``eval/labels-<v>/correctness.parquet``, and every model is
    logged as a nested MLflow run of the build tagged with the version
    (:func:`engine.tracking.compare.log_labels_runs`); with ``extra`` (an outside
    model's name, int (P,) predictions, float (P,) confidences and its evaluation's
    ``in_sample``/``params``), it is ranked beside them, the files are
    ``eval/extra/<name>-pool-labels-<v>.{json,parquet}`` and only it is logged.

    Returns:
        The comparison record (``LabelsComparison.to_json()``) with ``table`` (the
        printed table), ``files`` and ``mlflow_runs`` (model -> run id).

    Raises:
        RunSetupError: For a label-free run, missing evaluation files, or a version
            whose original labels are not the pool's.
    """
    import pyarrow as pa

    from engine.shards import atomic_write_table

    run_dir = Path(run_dir)
    try:
        built = load_built_splits(run_dir, spec.splits)
        corrected, removed = labels.on_pool(built.sample_ids, built.labels)
    except ValueError as exc:
        raise RunSetupError(str(exc)) from None
    preds, confs, records = stored_pool_predictions(
        run_dir, built, taken=None if extra is None else extra[0]
    )
    if extra is not None:
        name, pred, conf, record = extra
        preds[name], confs[name], records[name] = pred, conf, record
    comparison = compare_on_labels(
        built, preds, corrected_labels=corrected, removed=removed, version=labels.version,
        confidences=confs, build_records=records, seed=spec.replicas.recipe.seed,
    )  # fmt: skip
    if extra is None:
        folder, stem = run_dir / EVAL_DIR / f"{LABELS_EVAL_PREFIX}{labels.version}", None
        files = [folder / TRANSFER_FILE, folder / CORRECTNESS_FILE]
    else:
        folder = run_dir / EVAL_DIR / EVAL_EXTRA_DIR
        stem = f"{extra[0]}-pool-{LABELS_EVAL_PREFIX}{labels.version}"
        files = [folder / f"{stem}.json", folder / f"{stem}.parquet"]
    record = {**comparison.to_json(), "labels_source": labels.source}
    atomic_write_bytes(files[0], json.dumps(record, indent=2).encode())
    atomic_write_table(
        files[1], pa.table(_correctness_columns(comparison, corrected, removed, built))
    )
    models = list(preds) if extra is None else [extra[0]]
    record["mlflow_runs"] = _log_labels(status, record, models)
    record["table"] = format_labels_table(comparison, run=status.get("run_id", run_dir.name))
    record["files"] = [str(f) for f in files]
    return record


def _correctness_columns(
    comparison: LabelsComparison, corrected: np.ndarray, removed: np.ndarray, built: BuiltSplits
) -> dict[str, np.ndarray]:
    """``correctness.parquet``: the pool's labels, then per model right/wrong on each set."""
    columns = {
        "sample_id": built.sample_ids,
        "original_label": built.labels,
        "label": corrected,
        "removed": removed,
        "bin": built.bins,
        "is_hard": built.is_hard,
    }
    for name, right in comparison.correct_original.items():
        columns[f"correct_original_{name}"] = right
        columns[f"correct_{comparison.version}_{name}"] = comparison.correct_corrected[name]
    return columns


def _log_labels(status: dict, record: dict, models: list[str]) -> dict[str, str]:
    """Log ``models`` on the labels version as nested runs of the build (none without MLflow)."""
    info = status.get("mlflow")
    if not info:
        return {}
    from engine.tracking.compare import log_labels_runs

    return log_labels_runs(
        reconnect_uri(info["tracking_uri"]), experiment_id=info["experiment_id"],
        parent_run_id=info["parent_run_id"], run_id=status["run_id"], record=record,
        models=models,
    )  # fmt: skip


def _in_sample_reason(pool: str, *, model_uri: str | None, weights_file: str | None) -> str | None:
    """Why ``hardbench eval``'s figures may be in-sample, or None when they are held-out.

    On a ``train`` or ``all`` pool, a model logged by hardbench (``model_uri``) or a
    local state dict (``weights_file``) may have trained on the run's training samples:
    its figures are marked in-sample. A registry model with hub weights, or untrained,
    never saw them.
    """
    if pool not in IN_SAMPLE_POOLS or (model_uri is None and weights_file is None):
        return None
    return f"{MAY_HAVE_TRAINED_ON_POOL} (splits.pool: {pool})"


def _imagenet_head(run_dir: Path, spec: BenchmarkSpec, model: str, weights_file: str,
                   num_classes: int) -> int | None:  # fmt: skip
    """The ImageNet head size when these weights are evaluated as they are on ImageNet classes.

    Weights with a 1000-class ImageNet head on a K-class run whose classes are all
    ImageNet classes are evaluated with their logits restricted to those classes
    (:mod:`engine.models.imagenet`); returns 1000 then, else None (the weights must
    already have K classes).

    Raises:
        RunSetupError: For an ImageNet head on a run with a class that is no ImageNet
            class (naming it).
    """
    from engine.models import get_model_config, load_state_dict
    from engine.spec.evaluate import IMAGENET_CLASSES

    config = get_model_config(model)
    if config.classifier is None or config.num_classes != IMAGENET_CLASSES:
        return None
    try:
        state = load_state_dict(weights_file, name=model)
    except Exception:  # not loadable: check_weights_file words the error
        return None
    head = state.get(f"{config.classifier}.weight") if isinstance(state, dict) else None
    if head is None or head.shape[0] != IMAGENET_CLASSES or num_classes == IMAGENET_CLASSES:
        return None
    from engine.models.imagenet import imagenet_classes

    try:
        imagenet_classes(load_data(spec, run_dir).class_names)
    except ValueError as exc:
        raise RunSetupError(
            f"{model} has {IMAGENET_CLASSES}-class ImageNet weights: {exc}"
        ) from None
    return IMAGENET_CLASSES


def _model_params(
    name: str, options: dict, num_classes: int, input_shape: tuple[int, ...]
) -> int | None:
    """Parameters of a model ``hardbench eval`` evaluates (None for Hugging Face models)."""
    from engine.models import count_parameters, get_model_config

    if get_model_config(name).family == "hf":
        return None
    return count_parameters(name, num_classes=num_classes, input_shape=input_shape, **options)
