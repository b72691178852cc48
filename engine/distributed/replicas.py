"""Seed replicas on Ray Train: each worker trains its share of replicas and writes shards.

``train_replica`` is a plain function (no Ray) so a replica can also run in-process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data import SPLIT_TRAIN, load_dataset
from engine.shards import read_manifest, record_epoch, write_epoch_shards
from engine.shards.provenance import git_revision
from engine.splits.spec import BenchmarkSpec, parse_spec
from engine.training import train
from engine.training.classification import softmax_and_loss

PROGRESS_POLL_S = 1.0  # how often the driver checks the manifests while replicas train
PROGRESS_EVERY_S = 5.0  # print a progress line at least this often


def train_replica(
    run_dir: Path | str, spec: BenchmarkSpec, replica: int, device: object = "cpu"
) -> None:
    """Train replica ``replica`` and write its per-epoch shards and manifest rows.

    After every epoch the replica predicts on every sample (train and held-out); the
    shards are written atomically, then the (replica, epoch) row is recorded.

    Args:
        run_dir: The run directory.
        spec: The resolved spec.
        replica: Replica index r in [0, R); its seed is ``spec.replicas.seeds()[r]``.
        device: Torch device.
    """
    data = load_dataset(
        spec.data.source,
        heldout_fraction=spec.data.heldout_fraction,
        split_seed=spec.data.split_seed,
    )
    train_idx = data.indices(SPLIT_TRAIN)
    seed = spec.replicas.seeds()[replica]
    recipe = spec.replicas.recipe.with_seed(seed)
    meta = {
        "spec": spec.metadata.name,
        "seed": seed,
        "model": recipe.model,
        "git": git_revision()["commit"],
    }
    clock = {"t": time.perf_counter()}

    def on_epoch(epoch: int, logits: np.ndarray, input_grads: np.ndarray | None) -> None:
        probs, loss, margin = softmax_and_loss(logits, data.labels)
        blocks = write_epoch_shards(
            run_dir,
            replica=replica,
            epoch=epoch,
            probs=probs,
            loss=loss,
            labels=data.labels,
            margin=margin,
            input_grad=input_grads,
            block_size=spec.shards.block_size,
            probs_dtype=spec.shards.probs_dtype,
            metadata=meta,
        )
        heldout = data.split != SPLIT_TRAIN
        now = time.perf_counter()
        record_epoch(
            run_dir,
            replica=replica,
            epoch=epoch,
            blocks=blocks,
            seed=seed,
            heldout_accuracy=float(np.mean(probs[heldout].argmax(1) == data.labels[heldout])),
            seconds=round(now - clock["t"], 4),
        )
        clock["t"] = now

    train(
        recipe,
        data.inputs[train_idx],
        data.labels[train_idx],
        num_classes=data.num_classes,
        x_score=data.inputs,
        on_epoch=on_epoch,
        device=device,
        y_score=data.labels,
        grad_epochs=set(spec.shards.grad_epochs),
    )


def _worker_loop(config: dict) -> None:
    """Ray Train worker: trains replicas rank, rank + W, rank + 2W, ..."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    spec = parse_spec(config["spec"])
    device = ray.train.torch.get_device()
    for replica in range(rank, spec.replicas.count, world):
        train_replica(config["run_dir"], spec, replica, device)


def resolve_num_workers(spec: BenchmarkSpec, cluster_cpus: float) -> int:
    """Workers to start: the spec's number, or for ``auto`` one per replica up to the CPUs."""
    if spec.replicas.num_workers != "auto":
        return int(spec.replicas.num_workers)
    fit = int(cluster_cpus // spec.replicas.cpus_per_worker)
    return max(1, min(spec.replicas.count, fit))


def train_replicas(
    run_dir: Path | str, spec: BenchmarkSpec, *, log: Callable[[str], None] = print
) -> dict:
    """Train all R replicas with one Ray Train ``TorchTrainer`` fit, printing progress.

    Replicas are independent (no gradient sync): the worker group is a pool that trains
    its replicas round-robin, which pays Ray Train's start-up cost once per run.

    Args:
        run_dir: The run directory (shards go under ``preds/``).
        spec: The resolved spec.
        log: Where progress lines go.

    Returns:
        ``{"workers": W, "seconds": wall time}``.

    Raises:
        RuntimeError: If training failed; the worker's error is chained.
    """
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    run_dir = Path(run_dir).resolve()
    workers = resolve_num_workers(spec, float(ray.cluster_resources().get("CPU", 1)))
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"run_dir": str(run_dir), "spec": spec.to_dict()},
        scaling_config=ScalingConfig(
            num_workers=workers, resources_per_worker={"CPU": spec.replicas.cpus_per_worker}
        ),
        run_config=RunConfig(
            name="replicas",
            storage_path=str(run_dir / "ray_train"),
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    total = spec.replicas.count * spec.replicas.recipe.epochs
    outcome: dict = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # surfaced in the caller's thread below
            outcome["error"] = exc

    start = time.perf_counter()
    log(
        f"[train] {spec.replicas.count} replicas x {spec.replicas.recipe.epochs} epochs on {workers} Ray Train workers"
    )
    thread = threading.Thread(target=fit, name="hardbench-train", daemon=True)
    thread.start()
    last_done, last_print = -1, start
    while thread.is_alive():
        thread.join(PROGRESS_POLL_S)
        done = len(read_manifest(run_dir))
        now = time.perf_counter()
        if (
            done != last_done
            and (now - last_print >= PROGRESS_EVERY_S or done == total)
            and done > 0
        ):
            log(f"[train] {done}/{total} (replica, epoch) pairs done, {now - start:.1f} s")
            last_done, last_print = done, now
    if "error" in outcome:
        raise RuntimeError(f"replica training failed: {outcome['error']}") from outcome["error"]
    result = outcome["result"]
    if getattr(result, "error", None) is not None:
        raise RuntimeError(f"replica training failed: {result.error}") from result.error
    seconds = time.perf_counter() - start
    log(
        f"[train] {len(read_manifest(run_dir))}/{total} (replica, epoch) pairs done in {seconds:.1f} s"
    )
    return {"workers": workers, "seconds": seconds}
