"""Train the evaluated models as Ray tasks, in parallel, and return their predictions."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data import SPLIT_TRAIN
from engine.data.cache import take_rows
from engine.data.loading import ensure_run_cache
from engine.evaluation.predictor import DESCRIPTOR_FILE
from engine.shards import atomic_write_bytes
from engine.spec import BenchmarkSpec, EvalModelSpec, parse_spec
from engine.training import infer, train

MODELS_DIR = "models"  # under the run directory: one folder per evaluated model
WEIGHTS_FILE = "weights.pt"  # the state dict (loaded with weights_only=True)
LOGITS_FILE = "logits.npy"  # float32 (N, K) predictions on every sample, written last
HISTORY_FILE = "history.json"  # per-epoch train loss and accuracy (the model's learning curve)


def _save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def finished_logits(run_dir: Path | str, name: str) -> np.ndarray | None:
    """The logits of an evaluated model that finished in an earlier attempt, or None.

    ``logits.npy`` is written after the weights and descriptor, so its presence
    means the model's folder is complete.
    """
    folder = Path(run_dir) / MODELS_DIR / name
    if not all((folder / f).exists() for f in (WEIGHTS_FILE, DESCRIPTOR_FILE, LOGITS_FILE)):
        return None
    try:
        return np.load(folder / LOGITS_FILE, allow_pickle=False)
    except (OSError, ValueError):
        return None


def train_eval_model(run_dir: Path | str, spec: BenchmarkSpec, model: EvalModelSpec) -> dict:
    """Train one evaluated model on the training split and predict on every sample.

    Plain function (no Ray). The state dict and a descriptor that rebuilds the model
    from the registry are saved under ``models/<name>/`` (and logged to MLflow, so the
    model can be evaluated again from its ``runs:/<id>/model`` URI).

    Returns:
        ``{"name", "logits" (N, K) float32, "seconds", "weights"}``.
    """
    import torch

    start = time.perf_counter()
    data = spec.load_data(run_dir)
    idx = data.indices(SPLIT_TRAIN)
    device = "cuda" if model.gpus > 0 and torch.cuda.is_available() else "cpu"
    history: list[dict] = []
    net = train(
        model.recipe,
        take_rows(data.inputs, idx),
        data.labels[idx],
        num_classes=data.num_classes,
        device=device,
        mitigation=mitigation_for(run_dir, model, idx),
        history=history,
    )
    logits = infer(net, data.inputs, device=device)
    weights = save_model_folder(run_dir, model, net, data, history, logits)
    return {
        "name": model.name,
        "logits": logits,
        "seconds": time.perf_counter() - start,
        "weights": str(weights),
    }


def save_model_folder(run_dir: Path | str, model: EvalModelSpec, net: object, data: object,
                      history: list[dict], logits: np.ndarray, *,
                      extra: dict | None = None) -> Path:  # fmt: skip
    """Write ``models/<name>/``: weights, the descriptor, history, then the logits (last).

    The descriptor rebuilds the model from the registry (``hardbench eval``); ``extra``
    adds to it (a fine-tuned model's transform and options). Returns the weights' path.
    """
    import torch

    out_dir = Path(run_dir) / MODELS_DIR / model.name
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / WEIGHTS_FILE
    tmp = weights.with_suffix(".pt.tmp")
    torch.save(net.state_dict(), tmp)
    tmp.replace(weights)
    descriptor = {
        "model": model.recipe.model,
        "model_kwargs": model.recipe.model_kwargs,
        "num_classes": data.num_classes,
        "input_shape": list(data.input_shape),
        "weights": WEIGHTS_FILE,
        **(extra or {}),
    }
    atomic_write_bytes(out_dir / DESCRIPTOR_FILE, json.dumps(descriptor, indent=2).encode())
    atomic_write_bytes(out_dir / HISTORY_FILE, json.dumps(history).encode())
    _save_npy(out_dir / LOGITS_FILE, logits)
    return weights


def model_history(run_dir: Path | str, name: str) -> list[dict]:
    """An evaluated model's per-epoch ``{"epoch", "train_loss", "train_accuracy"}`` ([] if none)."""
    path = Path(run_dir) / MODELS_DIR / name / HISTORY_FILE
    return json.loads(path.read_text()) if path.exists() else []


def mitigation_for(run_dir: Path | str, model: EvalModelSpec, train_idx: np.ndarray) -> object:
    """The model's mitigation bound to its training samples' hardness (or None).

    The score is read in its own direction (:func:`engine.scores.hardness`), so the
    lowest AUM, not the highest, is the hardest.
    """
    spec = model.mitigation
    if spec.method == "erm":
        return None
    import pyarrow.parquet as pq

    from engine.scores import hardness
    from engine.training.mitigation import Mitigation

    path = Path(run_dir) / "scores.parquet"
    if not path.exists():
        raise FileNotFoundError(f"mitigation {spec.method!r} needs the run's scores: {path}")
    scores = pq.read_table(path, columns=["sample_id", spec.score])
    values = scores.column(spec.score).to_numpy()[np.searchsorted(
        scores.column("sample_id").to_numpy(), train_idx)]  # fmt: skip
    if np.isnan(values).any():
        raise ValueError(
            f"mitigation score {spec.score!r} is undefined (NaN) for "
            f"{int(np.isnan(values).sum())} training samples"
        )
    # the spec extends MitigationOptions
    return Mitigation(spec.method, hardness(spec.score, values), options=spec)


def evaluate_as_is(run_dir: Path | str, spec: BenchmarkSpec, model: EvalModelSpec) -> dict:
    """An ImageNet model with its own weights, its head cut to the benchmark's ImageNet classes.

    No training: the logits of every sample are the model's ImageNet logits of the
    benchmark's classes (:mod:`engine.models.imagenet`), through the model's own
    preprocessing. The folder's descriptor records the class mapping.

    Returns:
        ``{"name", "logits" (N, K) float32, "seconds", "weights"}``.
    """
    from dataclasses import asdict

    import torch

    from engine.models import create_model, get_model_config
    from engine.models.imagenet import imagenet_classes, restrict_head
    from engine.training.finetune import WEIGHTS_PRETRAINED, predict_logits

    start = time.perf_counter()
    data = spec.load_data(run_dir)
    classes = imagenet_classes(data.class_names)
    name = model.recipe.model
    config = get_model_config(name)
    pretrained = model.weights == WEIGHTS_PRETRAINED
    net = create_model(name, num_classes=config.num_classes, pretrained=pretrained,
                       weights_file=None if pretrained else model.weights,
                       **model.recipe.model_kwargs)  # fmt: skip
    restrict_head(net, name, [c["index"] for c in classes])
    device = torch.device("cuda" if model.gpus > 0 and torch.cuda.is_available() else "cpu")
    logits = predict_logits(net.to(device), data.inputs, config.preprocess, device)
    extra = {"preprocess": asdict(config.preprocess), "weights_source": model.weights,
             "imagenet_classes": classes}  # fmt: skip
    weights = save_model_folder(run_dir, model, net, data, [], logits, extra=extra)
    return {"name": model.name, "logits": logits, "seconds": time.perf_counter() - start,
            "weights": str(weights)}  # fmt: skip


def _remote_entry(run_dir: str, spec_dict: dict, index: int) -> dict:
    spec = parse_spec(spec_dict)
    model = spec.evaluate.models[index]
    if model.weights is not None and model.finetune is None:
        return evaluate_as_is(run_dir, spec, model)
    return train_eval_model(run_dir, spec, model)


def train_eval_models(
    run_dir: Path | str, spec: BenchmarkSpec, *, log: Callable[[str], None] = print
) -> dict[str, np.ndarray]:
    """Train every ``evaluate.models`` entry as a Ray task (CPUs and GPUs as the spec asks).

    A model whose folder is complete from an earlier attempt of the run is loaded,
    not retrained.

    Returns:
        Model name -> float32 logits of shape (N, K) for all samples.
    """
    import ray

    run_dir = str(Path(run_dir).resolve())
    ensure_run_cache(run_dir, spec, log)  # the cache exists before any task reads it
    spec_dict = spec.to_dict()
    out: dict[str, np.ndarray] = {}
    for m in spec.evaluate.models:
        logits = finished_logits(run_dir, m.name)
        if logits is not None:
            out[m.name] = logits
    if out:
        log(f"[models] finished before, not retrained: {', '.join(out)}")
    todo = [(i, m) for i, m in enumerate(spec.evaluate.models) if m.name not in out]
    if any(m.weights is not None and m.finetune is None for _, m in todo):
        from engine.models.imagenet import imagenet_classes

        imagenet_classes(spec.load_data(run_dir).class_names)  # a class without a match: now
    gpus = float(ray.cluster_resources().get("GPU", 0))
    for _, m in todo:  # refused now: Ray would wait forever for a GPU that is not there
        if m.finetune is None and m.gpus > gpus:
            raise ValueError(
                f"evaluate.models {m.name!r} asks for {m.gpus:g} GPU but the Ray cluster has "
                f"{gpus:g}; set gpus: 0 to train it on CPUs"
            )
    pending = {
        ray.remote(num_cpus=m.cpus, num_gpus=m.gpus)(_remote_entry).remote(
            run_dir, spec_dict, i
        ): m.name
        for i, m in todo
        if m.finetune is None
    }
    if pending:
        log(f"[models] training {len(pending)} evaluated models: {', '.join(pending.values())}")
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        result = ray.get(done[0])
        pending.pop(done[0])
        log(f"[models] {result['name']} trained in {result['seconds']:.1f} s")
        out[result["name"]] = result["logits"]
    # Fine-tunes run one TorchTrainer at a time, after the tasks: a worker group that
    # waits more than a minute for CPUs held by tasks fails to start.
    from engine.distributed.finetune import finetune_model

    for i, m in todo:
        if m.finetune is not None:
            result = finetune_model(run_dir, spec, i, log=log)
            log(f"[models] {result['name']} fine-tuned in {result['seconds']:.1f} s")
            out[result["name"]] = result["logits"]
    return {m.name: out[m.name] for m in spec.evaluate.models}
