"""Train the evaluated models as Ray tasks, in parallel; predict with them through the pool."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data import SPLIT_TRAIN
from engine.data.cache import take_rows
from engine.data.loading import ensure_run_cache
from engine.distributed.evaluation import read_predictions
from engine.distributed.ingest import load_run_data
from engine.layout import SCORES_FILE
from engine.spec import BenchmarkSpec, EvalModelSpec, parse_spec
from engine.spec.evaluate import GROUP_EDGES_HALF
from engine.training import train
from engine.training.model_folder import (
    PREDICTIONS_FILE,
    model_dir,
    model_folder_done,
    save_model_folder,
)
from engine.training.objectives import MULTI_LABEL


def finished_logits(run_dir: Path | str, name: str, num_samples: int) -> np.ndarray | None:
    """The logits (N, K) an evaluated model's predictions file holds, or None.

    The file is renamed into place once every sample is in (:func:`predict_samples`),
    so one that reads back with every sample id is complete.
    """
    path = model_dir(run_dir, name) / PREDICTIONS_FILE
    if not model_folder_done(run_dir, name) or not path.exists():
        return None
    try:
        return read_predictions(path, num_samples)
    except (OSError, ValueError, pa.ArrowException):
        return None


def train_eval_model(run_dir: Path | str, spec: BenchmarkSpec, model: EvalModelSpec) -> dict:
    """Train one evaluated model on the training split; save its folder.

    Plain function (no Ray). The state dict and a descriptor that rebuilds the model
    from the registry are saved under ``models/<name>/`` (and logged to MLflow, so the
    model can be evaluated again from its ``runs:/<id>/model`` URI). It predicts
    nothing: the evaluation pool does (:func:`predict_samples`).

    Returns:
        ``{"name", "seconds", "weights"}``.
    """
    import torch

    start = time.perf_counter()
    data = load_run_data(spec, run_dir)
    idx = data.indices(SPLIT_TRAIN)
    device = "cuda" if model.gpus > 0 and torch.cuda.is_available() else "cpu"
    history: list[dict] = []
    multi = {"objective": MULTI_LABEL} if data.multilabel else {}  # sigmoids + summed BCE
    net = train(
        model.recipe,
        take_rows(data.inputs, idx),
        (data.label_sets if data.multilabel else data.labels)[idx],
        num_classes=data.num_classes,
        device=device,
        mitigation=mitigation_for(run_dir, model, idx, data.num_classes),
        history=history,
        **multi,
    )
    weights = save_model_folder(run_dir, model, net, data, history)
    return {"name": model.name, "seconds": time.perf_counter() - start, "weights": str(weights)}


def mitigation_for(
    run_dir: Path | str, model: EvalModelSpec, train_idx: np.ndarray, num_classes: int
) -> object:
    """The model's mitigation bound to its training samples' hardness (or None).

    The score is read in its own direction (:func:`engine.scores.hardness`), so the
    lowest AUM, not the highest, is the hardest; fixed GroupDRO edges are oriented the
    same way (``half`` is ln K / 2 nats of confusion, K = ``num_classes``).
    """
    spec = model.mitigation
    if spec.method == "erm":
        return None
    import pyarrow.parquet as pq

    from engine.scores import hardness
    from engine.training.mitigation import Mitigation

    path = Path(run_dir) / SCORES_FILE
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
    edges = None
    if spec.group_edges is not None:
        raw = (
            [math.log(num_classes) / 2]
            if spec.group_edges == GROUP_EDGES_HALF
            else spec.group_edges
        )
        edges = np.sort(hardness(spec.score, np.asarray(raw, dtype=np.float64)))
    # the spec extends MitigationOptions
    return Mitigation(spec.method, hardness(spec.score, values), options=spec, group_edges=edges)


def evaluate_as_is(run_dir: Path | str, spec: BenchmarkSpec, model: EvalModelSpec) -> dict:
    """An ImageNet model with its own weights, its head cut to the benchmark's ImageNet classes.

    No training: the folder holds the model with its head restricted, so the pool's
    logits of every sample are the model's ImageNet logits of the benchmark's classes
    (:mod:`engine.models.imagenet`), through the model's own preprocessing (recorded
    in the descriptor with the class mapping).

    Returns:
        ``{"name", "seconds", "weights"}``.
    """
    from dataclasses import asdict

    from engine.models import create_model, get_model_config
    from engine.models.imagenet import imagenet_classes, restrict_head
    from engine.spec.finetune import WEIGHTS_PRETRAINED

    start = time.perf_counter()
    data = load_run_data(spec, run_dir)
    classes = imagenet_classes(data.class_names)
    name = model.recipe.model
    config = get_model_config(name)
    pretrained = model.weights == WEIGHTS_PRETRAINED
    net = create_model(name, num_classes=config.num_classes, pretrained=pretrained,
                       weights_file=None if pretrained else model.weights,
                       **model.recipe.model_kwargs)  # fmt: skip
    restrict_head(net, name, [c["index"] for c in classes])
    extra = {"preprocess": asdict(config.preprocess), "weights_source": model.weights,
             "imagenet_classes": classes}  # fmt: skip
    weights = save_model_folder(run_dir, model, net, data, [], extra=extra)
    return {"name": model.name, "seconds": time.perf_counter() - start, "weights": str(weights)}


def _remote_entry(run_dir: str, spec_dict: dict, index: int) -> dict:
    spec = parse_spec(spec_dict)
    model = spec.evaluate.models[index]
    if model.weights is not None and model.finetune is None:
        return evaluate_as_is(run_dir, spec, model)
    return train_eval_model(run_dir, spec, model)


def train_eval_models(
    run_dir: Path | str, spec: BenchmarkSpec, *, log: Callable[[str], None] = print
) -> dict[str, np.ndarray]:
    """Train every ``evaluate.models`` entry, then predict every sample with each.

    Models train as Ray tasks (CPUs and GPUs as the spec asks), fine-tunes as Ray Train
    runs; then each model's predictions come from the Ray Data evaluation pool
    (``evaluate.actors``, ``cpus_per_actor``, ``gpus_per_actor``), streamed to
    ``models/<name>/predictions.parquet``. A model trained in an earlier attempt of
    the run is not retrained; one with its predictions is not predicted again.

    Returns:
        Model name -> float32 logits of shape (N, K) for all samples.

    Raises:
        ValueError: For a request the cluster cannot place (GPUs it does not have,
            more actors than fit), before anything is trained.
    """
    import ray

    from engine.distributed.evaluation import eval_pool_size, predict_samples

    run_dir = str(Path(run_dir).resolve())
    # the cache exists before any task reads it
    ensure_run_cache(run_dir, lambda: load_run_data(spec, run_dir, log))
    data = load_run_data(spec, run_dir)
    ev = spec.evaluate
    n = len(data.split)
    block_size = spec.shards.block_size
    eval_pool_size(ev.actors, -(-n // block_size), ev.cpus_per_actor, ev.gpus_per_actor)
    spec_dict = spec.to_dict()
    out: dict[str, np.ndarray] = {}
    for m in ev.models:
        logits = finished_logits(run_dir, m.name, n)
        if logits is not None:
            out[m.name] = logits
    if out:
        log(f"[models] finished before, not trained or predicted again: {', '.join(out)}")
    trained = [
        m.name for m in ev.models if m.name not in out and model_folder_done(run_dir, m.name)
    ]
    if trained:
        log(f"[models] trained before, only predicted: {', '.join(trained)}")
    todo = [(i, m) for i, m in enumerate(ev.models) if m.name not in out and m.name not in trained]
    if any(m.weights is not None and m.finetune is None for _, m in todo):
        from engine.models.imagenet import imagenet_classes

        imagenet_classes(data.class_names)  # a class without a match: now
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
    # Fine-tunes run one TorchTrainer at a time, after the tasks: a worker group that
    # waits more than a minute for CPUs held by tasks fails to start.
    from engine.distributed.finetune import finetune_model

    for i, m in todo:
        if m.finetune is not None:
            result = finetune_model(run_dir, spec, i, log=log)
            log(f"[models] {result['name']} fine-tuned in {result['seconds']:.1f} s")
    missing = {m.name: model_dir(run_dir, m.name) for m in ev.models if m.name not in out}
    if missing:
        out.update(predict_samples(
            data, missing, actors=ev.actors, cpus_per_actor=ev.cpus_per_actor,
            gpus_per_actor=ev.gpus_per_actor, block_size=block_size, log=log,
        ))  # fmt: skip
    return {m.name: out[m.name] for m in ev.models}
