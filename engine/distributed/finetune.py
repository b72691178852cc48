"""Fine-tune one evaluated model on Ray Train: a ``TorchTrainer`` of ``workers`` DDP processes.

Each worker reads its shard of the training split from the dataset cache (a
distributed sampler over the memory map: no Ray Data pipeline competes with the
workers for the CPUs of a small cluster), trains with the options of
:class:`engine.training.finetune.FinetuneOptions`, and rank 0 reports a Ray Train
``Checkpoint`` (model, optimizer, schedule, augmentation RNG) after every epoch. A
worker that dies makes Ray Train restart the group (``FailureConfig``) from that
checkpoint. When the last epoch is done, rank 0 saves the model folder (weights, the
descriptor with its transform, history) as the scratch-trained models do; the
evaluation pool then predicts every sample through that transform.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from engine.data import SPLIT_TRAIN
from engine.data.cache import take_rows
from engine.distributed.ingest import load_run_data
from engine.layout import RAY_TRAIN_DIR
from engine.spec import BenchmarkSpec, parse_spec
from engine.training.model_folder import (
    PROGRESS_FILE,
    WEIGHTS_FILE,
    model_dir,
    save_model_folder,
)

CHECKPOINT_STATE = "state.pt"  # inside each Ray Train checkpoint directory
CHECKPOINT_HISTORY = "history.json"  # inside each Ray Train checkpoint directory


def check_cluster_fits(name: str, workers: int, cpus: float, gpus: float) -> None:
    """Refuse at once a fine-tune the connected cluster can never place.

    Raises:
        ValueError: For a GPU request on a cluster without GPUs (or too few), or more
            CPUs than the cluster has: Ray would otherwise wait forever.
    """
    import ray

    res = ray.cluster_resources()
    have_gpus, have_cpus = float(res.get("GPU", 0)), float(res.get("CPU", 0))
    if gpus > 0 and have_gpus < gpus * workers:
        raise ValueError(
            f"evaluate.models {name!r}: finetune asks for {workers} worker(s) x {gpus:g} GPU but "
            f"the Ray cluster has {have_gpus:g} GPUs; set finetune.gpus_per_worker: 0 to "
            "fine-tune on CPUs"
        )
    if have_cpus < cpus * workers:
        raise ValueError(
            f"evaluate.models {name!r}: finetune asks for {workers} worker(s) x {cpus:g} CPUs "
            f"but the Ray cluster has {have_cpus:g}; lower finetune.workers or cpus_per_worker"
        )


def _write_progress(folder: Path, rank: int, epoch: int, metrics: dict | None = None,
                    step: tuple[int, int] | None = None) -> None:  # fmt: skip
    """Record this worker's pid, epoch, step and last metrics (one file per rank).

    The driver's progress lines and the fault tests read them.
    """
    path = folder / PROGRESS_FILE.format(rank=rank)
    info = {"pid": os.getpid(), "epoch": epoch, "time": time.time(), "metrics": metrics or {},
            "step": list(step) if step else None}  # fmt: skip
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)


def finetune_worker(config: dict) -> None:
    """The Ray Train loop of one worker (rank r of W): train, checkpoint, and on rank 0 save."""
    import ray.train
    import ray.train.torch
    import torch

    from engine.training.finetune import (
        build_model,
        freeze_backbone,
        make_loop,
        run_epochs,
    )

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    spec = parse_spec(config["spec"])
    entry = spec.evaluate.models[config["index"]]
    opts, recipe = entry.finetune, entry.recipe
    torch.set_num_threads(max(1, int(opts.cpus_per_worker)))
    run_dir = Path(config["run_dir"])
    folder = model_dir(run_dir, entry.name)
    folder.mkdir(parents=True, exist_ok=True)
    data = load_run_data(spec, run_dir)
    idx = data.indices(SPLIT_TRAIN)
    inputs, labels = take_rows(data.inputs, idx), data.labels[idx]
    core = build_model(recipe.model, num_classes=data.num_classes, input_shape=data.input_shape,
                       weights=entry.weights, model_kwargs=recipe.model_kwargs,
                       seed=recipe.seed)  # fmt: skip
    trainable = (freeze_backbone(core, recipe.model) if opts.mode == "linear_probe"
                 else list(core.parameters()))  # fmt: skip
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(core) if world > 1 else core.to(device)
    steps = max(1, len(labels) // opts.batch_size)
    loop = make_loop(core, trainable, opts, steps, device, recipe.seed, rank)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            loop.load(core, torch.load(Path(d) / CHECKPOINT_STATE, map_location=device,
                                       weights_only=True))  # fmt: skip
    _write_progress(folder, rank, loop.epoch)
    history = list(config.get("history", []))

    def on_epoch(epoch: int, metrics: dict, state: object) -> None:
        _write_progress(folder, rank, epoch, metrics)
        row = {"epoch": epoch, **metrics, "resumed": checkpoint is not None}
        if rank != 0:
            ray.train.report(row)
            return
        history.append(row)
        with tempfile.TemporaryDirectory() as d:
            torch.save(state.state_dict(core), Path(d) / CHECKPOINT_STATE)
            (Path(d) / CHECKPOINT_HISTORY).write_text(json.dumps(history))
            ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(d))

    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            if (Path(d) / CHECKPOINT_HISTORY).exists():
                history = json.loads((Path(d) / CHECKPOINT_HISTORY).read_text())

    def on_step(epoch: int, step: int, steps: int) -> None:
        _write_progress(folder, rank, epoch - 1, None, (step, steps))

    run_epochs(model, core, recipe.model, inputs, labels, opts, loop, seed=recipe.seed,
               rank=rank, world=world, device=device, on_epoch=on_epoch,
               on_step=on_step)  # fmt: skip
    if rank == 0:
        _save_model(run_dir, spec, config["index"], core, data, history)


def _save_model(run_dir: Path, spec: BenchmarkSpec, index: int, core: object, data: object,
                history: list[dict]) -> None:  # fmt: skip
    """Rank 0 after the last epoch: write the model folder, its transform in the descriptor.

    The evaluation pool predicts with it afterwards, through that same transform.
    """
    from engine.training.finetune import finetune_preprocess

    entry = spec.evaluate.models[index]
    preprocess = finetune_preprocess(entry.recipe.model, entry.finetune.image_size)
    save_model_folder(run_dir, entry, core.cpu(), data, history,
                      extra={"preprocess": asdict(preprocess), "weights_source": entry.weights,
                             "finetune": asdict(entry.finetune)})  # fmt: skip


def finetune_model(run_dir: Path | str, spec: BenchmarkSpec, index: int, *,
                   log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Fine-tune ``spec.evaluate.models[index]`` with one ``TorchTrainer`` fit; save its folder.

    Returns:
        ``{"name", "seconds", "weights"}``.

    Raises:
        ValueError: For a request the cluster cannot place (see :func:`check_cluster_fits`)
            or weights that do not fit the model (before any worker starts).
        RuntimeError: When the fine-tune failed after its restarts (the error chained).
    """
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    entry = spec.evaluate.models[index]
    opts = entry.finetune
    check_cluster_fits(entry.name, opts.workers, opts.cpus_per_worker, opts.gpus_per_worker)
    _check_weights(spec, entry, run_dir)
    resources = {"CPU": opts.cpus_per_worker}
    if opts.gpus_per_worker > 0:
        resources["GPU"] = opts.gpus_per_worker
    run_dir = Path(run_dir).resolve()
    trainer = TorchTrainer(
        finetune_worker,
        train_loop_config={"run_dir": str(run_dir), "spec": spec.to_dict(), "index": index},
        scaling_config=ScalingConfig(
            num_workers=opts.workers,
            use_gpu=opts.gpus_per_worker > 0,
            resources_per_worker=resources,
        ),
        run_config=RunConfig(
            name=f"finetune-{entry.name}",  # stable: a resumed run restores its checkpoint
            storage_path=str(run_dir / RAY_TRAIN_DIR),
            failure_config=FailureConfig(max_failures=opts.max_failures),
        ),
    )
    where = f"{opts.workers} worker(s) x {opts.cpus_per_worker:g} CPU" + (
        f" + {opts.gpus_per_worker:g} GPU" if opts.gpus_per_worker else "")  # fmt: skip
    log(f"[models] fine-tuning {entry.name} ({entry.recipe.model}, {opts.mode}, "
        f"{opts.epochs} epochs, {entry.weights or 'from scratch'}) on Ray Train, {where}")  # fmt: skip
    start = time.perf_counter()
    folder = model_dir(run_dir, entry.name)
    result = _fit_with_progress(trainer, folder, entry.name, opts.epochs, log)
    if getattr(result, "error", None) is not None:
        raise RuntimeError(f"fine-tuning {entry.name} failed: {result.error}") from result.error
    return {"name": entry.name, "seconds": time.perf_counter() - start,
            "weights": str(folder / WEIGHTS_FILE)}  # fmt: skip


PROGRESS_POLL_S = 2.0  # how often the driver looks at the workers' progress
STEP_LOG_S = 20.0  # seconds between step lines within a long epoch


def _fit_with_progress(trainer: object, folder: Path, name: str, epochs: int,
                       log: Callable[[str], None]) -> object:  # fmt: skip
    """``trainer.fit()`` in a thread, logging each epoch rank 0 finishes; its result."""
    from engine.distributed.cluster import fit_in_thread

    thread, outcome = fit_in_thread(trainer, f"hardbench-finetune-{name}")
    shown, last_step = 0, time.perf_counter()
    while thread.is_alive():
        thread.join(PROGRESS_POLL_S)
        try:
            rank0 = json.loads((folder / PROGRESS_FILE.format(rank=0)).read_text())
        except (OSError, ValueError):
            continue
        m, step = rank0.get("metrics") or {}, rank0.get("step")
        if m and rank0["epoch"] > shown:
            shown = rank0["epoch"]
            log(f"[models] {name} epoch {rank0['epoch']}/{epochs}: train loss "
                f"{m['train_loss']:.4f}, accuracy {m['train_accuracy']:.3f}, "
                f"{m['images_per_s']:,.0f} images/s per worker")  # fmt: skip
        elif step and time.perf_counter() - last_step >= STEP_LOG_S:
            last_step = time.perf_counter()
            log(f"[models] {name} epoch {rank0['epoch'] + 1}/{epochs}: step {step[0]}/{step[1]}")
    if "error" in outcome:
        raise RuntimeError(f"fine-tuning {name} failed: {outcome['error']}") from outcome["error"]
    return outcome["result"]


def _check_weights(spec: BenchmarkSpec, entry: object, run_dir: Path | str) -> None:
    """Weights that exist and fit the architecture (its own pretrained head), checked once here."""
    if entry.weights is None:
        return
    from engine.models import check_weights_file, get_model_config, weights_file
    from engine.spec.finetune import WEIGHTS_PRETRAINED

    name = entry.recipe.model
    path = weights_file(name) if entry.weights == WEIGHTS_PRETRAINED else Path(entry.weights)
    config = get_model_config(name)
    # a model with its own transform sees that transform's output, not the stored size
    shape = (
        None if config.preprocess is not None else tuple(load_run_data(spec, run_dir).input_shape)
    )
    check_weights_file(path, name, num_classes=config.num_classes or 0, input_shape=shape,
                       **entry.recipe.model_kwargs)  # fmt: skip
