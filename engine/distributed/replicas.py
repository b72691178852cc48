"""Seed replicas on Ray Train: each worker trains its share of replicas and writes shards.

``train_replica`` is a plain function (no Ray) so a replica can also run in-process.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data import SPLIT_TRAIN, ClassificationData
from engine.data.cache import take_rows
from engine.data.loading import ensure_run_cache
from engine.data.multilabel_data import MultiLabelData
from engine.distributed.cluster import fit_in_thread
from engine.distributed.epoch_predictions import EpochPredictions, curve_loss
from engine.distributed.ingest import load_run_data
from engine.layout import RAY_TRAIN_DIR
from engine.scores import entropy, replica_scalars
from engine.scores.dynamics import NOT_PRESENTED
from engine.scores.multilabel import DECISION_THRESHOLD
from engine.shards import (
    read_manifest,
    read_packed_manifest,
    read_replica_manifest,
    record_epoch,
    record_packed_epoch,
    replica_manifest_path,
    write_epoch_shards,
    write_packed_epoch_shards,
)
from engine.shards.layout import packed_manifest_path
from engine.shards.provenance import git_revision
from engine.shards.writer import remove_stale_temp_files, write_reduced_epoch_shards
from engine.spec import BenchmarkSpec, parse_spec
from engine.training import train
from engine.training.checkpoints import replica_checkpoint_dir, resume_point, save_checkpoint
from engine.training.objectives import MULTI_LABEL, SINGLE_LABEL, softmax_and_loss
from engine.training.packed import train_packed

PROGRESS_POLL_S = 1.0  # how often the driver checks the manifests while replicas train
PROGRESS_EVERY_S = 5.0  # print a progress line at least this often


def _replica_folders(run_dir: Path, replica: int) -> tuple[Path, Path]:
    """The folders one replica's writer owns: its shards and its checkpoints."""
    return replica_manifest_path(run_dir, replica).parent, replica_checkpoint_dir(run_dir, replica)


def train_replica(
    run_dir: Path | str,
    spec: BenchmarkSpec,
    replica: int,
    device: object = "cpu",
    *,
    attempt: int = 1,
    log: Callable[[str], None] = print,
) -> dict:
    """Train replica ``replica`` and write its per-epoch shards and manifest rows.

    After every epoch the replica checkpoints, then predicts on every sample (train and
    held-out); the shards are written atomically, then the (replica, epoch) row is
    recorded. Epochs already in the replica's manifest are never predicted again: a
    restarted replica continues from its newest checkpoint at or before its first
    unfinished epoch (or replays from the start, writing only the missing epochs), so
    its shards are the ones an uninterrupted run writes.

    Args:
        run_dir: The run directory.
        spec: The resolved spec.
        replica: Replica index r in [0, R); its seed is ``spec.replicas.seeds()[r]``.
        device: Torch device.
        attempt: Which start of the run this is (1, then 2, ... after ``--resume``);
            recorded in each manifest row.
        log: Where progress lines go (a worker's log on Ray).

    Returns:
        ``{"replica", "written": epochs written now, "resumed_from": checkpoint epoch
        or None, "skipped": epochs already done}``.
    """
    run_dir = Path(run_dir)
    epochs = spec.replicas.recipe.epochs
    stale = remove_stale_temp_files(*_replica_folders(run_dir, replica))
    done = set(read_replica_manifest(run_dir, replica))
    outcome = {"replica": replica, "written": 0, "resumed_from": None, "skipped": len(done)}
    todo, state = resume_point(run_dir, replica, f"replica {replica}", done, epochs, stale, log)
    if not todo:
        return outcome
    outcome["resumed_from"] = None if state is None else int(state["epoch"])
    data = load_run_data(spec, run_dir)
    train_idx = data.indices(SPLIT_TRAIN)
    seed = spec.replicas.seeds()[replica]
    recipe = spec.replicas.recipe.with_seed(seed)
    meta = {
        "spec": spec.metadata.name,
        "seed": seed,
        "model": recipe.model,
        "git": git_revision()["commit"],
    }
    presented: dict[int, np.ndarray] = {}  # epoch -> records of the whole scoring set

    def on_presentations(epoch: int, records: np.ndarray) -> None:
        presented[epoch] = scoring_set_records(records, train_idx, len(data.split))

    on_epoch = _epoch_writer(run_dir, spec, data, replica, meta, presented, outcome,
                             attempt=attempt, seed=seed)  # fmt: skip

    def on_checkpoint(epoch: int, state: dict) -> None:
        save_checkpoint(run_dir, replica, epoch, state, keep=spec.replicas.keep_checkpoints)

    objective = MULTI_LABEL if data.multilabel else SINGLE_LABEL
    targets = data.label_sets if data.multilabel else data.labels
    predictions = None
    if spec.shards.predict == "ray_data":  # a Ray Data pool predicts while this trains on
        predictions = EpochPredictions(run_dir, spec, replica, meta, seed=seed, attempt=attempt,
                                       num_samples=len(data.labels))  # fmt: skip

        def on_epoch_weights(epoch: int, weights: dict) -> None:
            predictions.submit(epoch, weights, presented.pop(epoch, None))

    train(
        recipe,
        take_rows(data.inputs, train_idx),
        targets[train_idx],
        num_classes=data.num_classes,
        x_score=data.inputs,
        on_epoch=on_epoch if predictions is None else None,
        device=device,
        y_score=None if data.multilabel else data.labels,
        objective=objective,
        grad_epochs=set(spec.shards.grad_epochs),
        resume=state,
        on_checkpoint=on_checkpoint,
        report_epochs=set(todo),
        until_epoch=todo[-1],
        on_presentations=on_presentations if spec.records_presentations else None,
        on_epoch_weights=None if predictions is None else on_epoch_weights,
    )
    if predictions is not None:
        outcome["written"] = predictions.finish()
    return outcome


def _epoch_writer(
    run_dir: Path, spec: BenchmarkSpec, data: ClassificationData | MultiLabelData, replica: int,
    meta: dict, presented: dict[int, np.ndarray], outcome: dict, *, attempt: int, seed: int,
) -> Callable[[int, np.ndarray, np.ndarray | None], None]:  # fmt: skip
    """A replica's ``on_epoch``: its scoring-set records as shards, then its manifest row.

    Single-label data: softmax probabilities, cross-entropy, margin and argmax
    (labels left out for an unlabelled pool). Multi-label data
    (:class:`MultiLabelData`): per-label sigmoids, summed BCE and the label sets
    (:data:`engine.training.objectives.MULTI_LABEL`); the learning curve's accuracy is
    then the share of samples with every label right.
    """
    clock = {"t": time.perf_counter()}
    host = socket.gethostname()
    shard_labels = None if data.multilabel or not data.labelled else data.labels

    def on_epoch(epoch: int, logits: np.ndarray, input_grads: np.ndarray | None) -> None:
        common = {"replica": replica, "epoch": epoch, "block_size": spec.shards.block_size,
                  "probs_dtype": spec.shards.probs_dtype, "metadata": meta,
                  "fmt": spec.shards.format, "train_correct": presented.pop(epoch, None),
                  "checksum": spec.shards.checksum}  # fmt: skip
        if data.multilabel:
            rec = MULTI_LABEL.records(logits, data.label_sets)
            blocks = write_epoch_shards(run_dir, probs=rec.probs, loss=rec.loss, labels=None,
                                        label_sets=data.label_sets, **common)  # fmt: skip
            curves = multilabel_curves(rec.probs, rec.loss, data.label_sets, data.split)
        else:
            probs, loss, margin = softmax_and_loss(logits, shard_labels)
            blocks = write_epoch_shards(
                run_dir, probs=probs, loss=loss, labels=shard_labels, margin=margin,
                input_grad=input_grads, top_k=spec.shards.top_k, pred=logits.argmax(axis=1),
                **common,
            )  # fmt: skip
            curves = epoch_curves(
                logits.argmax(axis=1)[None],
                curve_loss(logits, data.labels, loss)[None],
                data.labels,
                data.split,
            )
        now = time.perf_counter()
        record_epoch(
            run_dir,
            replica=replica,
            epoch=epoch,
            blocks=blocks,
            seed=seed,
            **curves,
            seconds=round(now - clock["t"], 4),
            attempt=attempt,
            pid=os.getpid(),
            host=host,
        )
        outcome["written"] += 1
        clock["t"] = now

    return on_epoch


def multilabel_curves(
    probs: np.ndarray, loss: np.ndarray, label_sets: np.ndarray, split: np.ndarray
) -> dict[str, float]:
    """A multi-label epoch's learning-curve points (as :func:`epoch_curves`).

    Args:
        probs: Float (N, L) sigmoid probabilities of one replica.
        loss: Float (N,) its summed BCE per sample.
        label_sets: Uint8 (N, L) multi-hot truth.
        split: (N,) data split of each sample.

    Returns:
        ``train_loss``, ``train_accuracy`` and ``heldout_accuracy``: accuracy is the
        share of samples with every label right at the decision threshold.
    """
    train = split == SPLIT_TRAIN
    right = ((probs > DECISION_THRESHOLD) == (label_sets > 0)).all(axis=1)
    return {
        "train_loss": float(np.mean(loss[train])),
        "train_accuracy": float(np.mean(right[train])),
        "heldout_accuracy": float(np.mean(right[~train])) if (~train).any() else float("nan"),
    }


def epoch_curves(
    pred: np.ndarray, loss: np.ndarray, labels: np.ndarray, split: np.ndarray
) -> dict[str, float]:
    """A finished epoch's learning-curve points for the manifest row (and MLflow).

    Args:
        pred: Int (R, N) each replica's predicted class on every sample.
        loss: Float (R, N) each replica's loss on every sample.
        labels: Int (N,).
        split: (N,) data split of each sample.

    Returns:
        ``train_loss``, ``train_accuracy`` and ``heldout_accuracy``: means over the
        replicas and the samples of each split.
    """
    train = split == SPLIT_TRAIN
    right = pred == labels
    held = ~train & (labels >= 0)  # an unlabelled pool has no held-out accuracy
    return {
        "train_loss": float(np.mean(loss[:, train])),
        "train_accuracy": float(np.mean(right[:, train])),
        "heldout_accuracy": float(np.mean(right[:, held])) if held.any() else float("nan"),
    }


def scoring_set_records(records: np.ndarray, train_idx: np.ndarray, n: int) -> np.ndarray:
    """Presentation records of the training samples placed in the whole scoring set.

    Args:
        records: Int8 (..., N_train) records of the training samples, in ``train_idx`` order.
        train_idx: Int (N_train,) their sample ids.
        n: N, the scoring set's size.

    Returns:
        Int8 (..., N): the records at the training ids, ``NOT_PRESENTED`` elsewhere.
    """
    out = np.full((*records.shape[:-1], n), NOT_PRESENTED, dtype=np.int8)
    out[..., train_idx] = records
    return out


def train_pack(
    run_dir: Path | str,
    spec: BenchmarkSpec,
    pack: int,
    device: object = "cpu",
    *,
    attempt: int = 1,
    log: Callable[[str], None] = print,
) -> dict:
    """Train pack ``pack`` (replicas ``spec.replicas.packs()[pack]``) as one packed ensemble.

    Shards follow ``spec.shards.mode``: ``full`` writes each replica's shards and
    manifest rows exactly as unpacked replicas do; ``mean`` and ``reduced`` reduce over
    the pack in the worker and write one packed-form shard per (epoch, block). The
    pack checkpoints after every epoch and resumes like a replica: epochs already in
    the manifests are never predicted again.

    Returns:
        ``{"pack", "replicas", "written", "resumed_from", "skipped"}``.
    """
    run_dir = Path(run_dir)
    replicas = spec.replicas.packs()[pack]
    owner = f"pack={pack}"
    epochs = spec.replicas.recipe.epochs
    mode = spec.shards.mode
    stale = remove_stale_temp_files(
        *(f for r in replicas for f in _replica_folders(run_dir, r)),
        packed_manifest_path(run_dir).parent,
        replica_checkpoint_dir(run_dir, owner),
    )
    if mode == "full":
        done_by_replica = {r: set(read_replica_manifest(run_dir, r)) for r in replicas}
        done = set.intersection(*done_by_replica.values())
    else:
        done = set(read_packed_manifest(run_dir))
        done_by_replica = {r: done for r in replicas}
    outcome = {"pack": pack, "replicas": replicas, "written": 0, "resumed_from": None,
               "skipped": len(done)}  # fmt: skip
    todo, state = resume_point(run_dir, owner, f"pack {pack}", done, epochs, stale, log)
    if not todo:
        return outcome
    outcome["resumed_from"] = None if state is None else int(state["epoch"])
    data = load_run_data(spec, run_dir)
    train_idx = data.indices(SPLIT_TRAIN)
    all_seeds = spec.replicas.seeds()
    seeds = [all_seeds[r] for r in replicas]
    recipe = spec.replicas.recipe
    host, clock = socket.gethostname(), {"t": time.perf_counter()}
    labels = data.labels
    if not data.labelled and mode != "full":
        raise ValueError(
            f"shards.mode {mode!r} stores label-aware values: an unlabelled pool needs mode full"
        )
    shard_labels = labels if data.labelled else None
    presented: dict[int, np.ndarray] = {}  # epoch -> (R, N) records of the scoring set

    def on_presentations(epoch: int, records: np.ndarray) -> None:
        presented[epoch] = scoring_set_records(records, train_idx, len(labels))

    def facts(pred: np.ndarray, loss: np.ndarray) -> dict:
        now = time.perf_counter()
        out = {
            **epoch_curves(pred, loss, labels, data.split),
            "seconds": round(now - clock["t"], 4),
            "attempt": attempt,
            "pid": os.getpid(),
            "host": host,
            "pack": pack,
        }
        clock["t"] = now
        return out

    def on_epoch(epoch: int, logits: np.ndarray) -> None:
        parts = [softmax_and_loss(lg, shard_labels) for lg in logits]  # per replica
        probs = np.stack([p for p, _, _ in parts])  # (R, N, K)
        pred = logits.argmax(axis=-1)  # (R, N) from the float32 logits, not rounded probs
        records = presented.pop(epoch, None)
        meta = {"spec": spec.metadata.name, "model": recipe.model, "git": git_revision()["commit"]}
        if mode == "full":
            for i, r in enumerate(replicas):
                if epoch in done_by_replica[r]:
                    continue
                blocks = write_epoch_shards(
                    run_dir, replica=r, epoch=epoch, probs=probs[i], loss=parts[i][1],
                    labels=shard_labels, margin=parts[i][2], block_size=spec.shards.block_size,
                    probs_dtype=spec.shards.probs_dtype, metadata={**meta, "seed": seeds[i]},
                    top_k=spec.shards.top_k, fmt=spec.shards.format, pred=pred[i],
                    train_correct=None if records is None else records[i],
                    checksum=spec.shards.checksum,
                )  # fmt: skip
                record_epoch(run_dir, replica=r, epoch=epoch, blocks=blocks, seed=seeds[i],
                             **facts(pred[i : i + 1],
                                     curve_loss(logits[i], labels, parts[i][1])[None]))  # fmt: skip
        else:
            mean = probs.mean(axis=0)
            loss = np.stack([p[1] for p in parts])
            margin = np.stack([p[2] for p in parts])
            correct = pred == labels
            meta = {**meta, "seeds": seeds, "replicas": len(replicas)}
            if mode == "mean":
                extra = replica_scalars(labels, probs[:, None].astype(np.float64))
                blocks = write_packed_epoch_shards(
                    run_dir, epoch=epoch, mean_probs=mean, labels=labels,
                    scalars={"loss": loss, "margin": margin, "p_true": extra["p_true"][:, 0],
                             "el2n": extra["el2n"][:, 0], "correct": correct},
                    block_size=spec.shards.block_size, probs_dtype=spec.shards.probs_dtype,
                    metadata=meta, fmt=spec.shards.format, ensemble_pred=mean.argmax(axis=1),
                    checksum=spec.shards.checksum,
                )  # fmt: skip
            else:
                blocks = write_reduced_epoch_shards(
                    run_dir, epoch=epoch, mean_entropy=entropy(mean),
                    ensemble_pred=mean.argmax(axis=1), ensemble_conf=mean.max(axis=1),
                    scalars={"loss": loss, "margin": margin, "correct": correct},
                    labels=labels, num_replicas=len(replicas),
                    block_size=spec.shards.block_size, metadata=meta, fmt=spec.shards.format,
                    checksum=spec.shards.checksum,
                )  # fmt: skip
            record_packed_epoch(run_dir, replicas=replicas, epoch=epoch, blocks=blocks,
                                seeds=seeds, form=mode, **facts(pred, loss))  # fmt: skip
        outcome["written"] += 1

    def on_checkpoint(epoch: int, ckpt: dict) -> None:
        save_checkpoint(run_dir, owner, epoch, ckpt, keep=spec.replicas.keep_checkpoints)

    train_packed(
        recipe,
        seeds,
        take_rows(data.inputs, train_idx),
        labels[train_idx],
        num_classes=data.num_classes,
        x_score=data.inputs,
        on_epoch=on_epoch,
        device=device,
        resume=state,
        on_checkpoint=on_checkpoint,
        report_epochs=set(todo),
        until_epoch=todo[-1],
        on_presentations=on_presentations if spec.records_presentations else None,
        engine=spec.replicas.pack_engine,
    )
    return outcome


def _worker_loop(config: dict) -> None:
    """Ray Train worker: trains replicas rank, rank + W, rank + 2W, ...

    After a worker-group restart each replica continues from its own checkpoint.
    """
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    spec = parse_spec(config["spec"])
    device = ray.train.torch.get_device()
    packs = spec.replicas.packs()
    for pack in range(rank, len(packs), world):
        if len(packs) == spec.replicas.count:  # unpacked: one replica per pack
            train_replica(
                config["run_dir"], spec, packs[pack][0], device, attempt=config["attempt"]
            )
        else:
            train_pack(config["run_dir"], spec, pack, device, attempt=config["attempt"])


def resolve_num_workers(spec: BenchmarkSpec, cluster_cpus: float, cluster_gpus: float = 0.0) -> int:
    """Workers to start: the spec's number, or for ``auto`` one per pack up to what fits.

    Unpacked, a pack is one replica.

    Raises:
        ValueError: If the spec asks for GPUs and the cluster has none.
    """
    gpus = spec.replicas.gpus_per_worker
    if gpus > 0 and cluster_gpus <= 0:
        raise ValueError(
            f"replicas.gpus_per_worker is {gpus} but the Ray cluster has no GPUs; "
            "set it to 0 to train on CPUs"
        )
    if spec.replicas.num_workers != "auto":
        return int(spec.replicas.num_workers)
    fit = int(cluster_cpus // spec.replicas.cpus_per_worker)
    if gpus > 0:
        fit = min(fit, int(cluster_gpus // gpus))
    return max(1, min(len(spec.replicas.packs()), fit))


def replica_scaling_config(spec: BenchmarkSpec, workers: int) -> object:
    """The Ray Train ``ScalingConfig`` for ``workers`` replica workers as the spec asks.

    A fractional ``gpus_per_worker`` packs several replica workers onto one GPU.
    """
    from ray.train import ScalingConfig

    resources = {"CPU": spec.replicas.cpus_per_worker}
    if spec.replicas.gpus_per_worker > 0:
        resources["GPU"] = spec.replicas.gpus_per_worker
    return ScalingConfig(
        num_workers=workers,
        use_gpu=spec.replicas.gpus_per_worker > 0,
        resources_per_worker=resources,
    )


def _pack_task(run_dir: str, spec_dict: dict, pack: int, attempt: int, use_gpu: bool) -> dict:
    import torch

    spec = parse_spec(spec_dict)
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    cpus = max(1, int(spec.replicas.cpus_per_worker))
    torch.set_num_threads(cpus)
    return train_pack(run_dir, spec, pack, device, attempt=attempt)


def _train_packs(
    run_dir: Path, spec: BenchmarkSpec, *, attempt: int, already: int, log: Callable[[str], None]
) -> dict:
    """Train the packs as Ray tasks (one process each, placed by their CPU/GPU request).

    A pack is one process with no gradient to share, so it needs none of Ray Train's
    worker-group and process-group set-up (about 10 s per fit here). A task whose
    worker dies is retried by Ray up to ``replicas.max_failures`` times and the pack
    continues from its checkpoint, as a Ray Train worker group restart would.
    """
    import ray

    packs = spec.replicas.packs()
    total = spec.replicas.count * spec.replicas.recipe.epochs
    gpus = spec.replicas.gpus_per_worker
    resources = ray.cluster_resources()
    resolve_num_workers(spec, float(resources.get("CPU", 1)), float(resources.get("GPU", 0)))
    task = ray.remote(
        num_cpus=spec.replicas.cpus_per_worker,
        num_gpus=gpus,
        max_retries=spec.replicas.max_failures,
    )(_pack_task)
    start = time.perf_counter()
    log(
        f"[train] {spec.replicas.count} replicas x {spec.replicas.recipe.epochs} epochs as "
        f"{len(packs)} packed ensemble(s) of up to {len(packs[0])} replicas, one Ray task each "
        f"({spec.replicas.cpus_per_worker} CPU{f', {gpus} GPU' if gpus else ''} each)"
        + (f"; {already}/{total} pairs done before, not retrained" if already else "")
    )
    spec_dict = spec.to_dict()
    pending = [
        task.remote(str(run_dir), spec_dict, p, attempt, gpus > 0) for p in range(len(packs))
    ]
    last_print, last_done = start, -1
    while pending:
        ready, pending = ray.wait(pending, num_returns=len(pending), timeout=PROGRESS_POLL_S)
        try:
            ray.get(ready)
        except Exception as exc:  # a pack failed after its retries: stop the others
            for ref in pending:
                ray.cancel(ref, force=True)
            raise RuntimeError(f"packed training failed: {exc}") from exc
        done = len(read_manifest(run_dir))
        now = time.perf_counter()
        if done != last_done and (now - last_print >= PROGRESS_EVERY_S or not pending):
            log(f"[train] {done}/{total} (replica, epoch) pairs done, {now - start:.1f} s")
            last_done, last_print = done, now
    seconds = time.perf_counter() - start
    done = len(read_manifest(run_dir))
    if done < total:
        raise RuntimeError(f"packed training ended with {done}/{total} (replica, epoch) pairs")
    log(f"[train] {done}/{total} (replica, epoch) pairs done in {seconds:.1f} s")
    return {"workers": len(packs), "seconds": seconds, "already_done": already}


def train_replicas(
    run_dir: Path | str,
    spec: BenchmarkSpec,
    *,
    attempt: int = 1,
    log: Callable[[str], None] = print,
) -> dict:
    """Train all R replicas with one Ray Train ``TorchTrainer`` fit, printing progress.

    Replicas are independent (no gradient sync): the worker group is a pool that trains
    its replicas round-robin, which pays Ray Train's start-up cost once per run. When
    a worker dies, Ray Train restarts the group (up to ``replicas.max_failures``
    times) and every replica continues from its newest checkpoint; (replica, epoch)
    pairs already in the manifest are never redone, so there is exactly one shard
    per (replica, epoch, block) whatever fails.

    Args:
        run_dir: The run directory (shards go under ``preds/``).
        spec: The resolved spec.
        attempt: Which start of the run this is (recorded in the manifest rows).
        log: Where progress lines go.

    Returns:
        ``{"workers": W, "seconds": wall time, "already_done": pairs done before}``.

    Raises:
        RuntimeError: If training failed; the worker's error is chained.
    """
    import ray
    from ray.train import FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    run_dir = Path(run_dir).resolve()
    # the cache exists before any task reads it
    ensure_run_cache(run_dir, lambda: load_run_data(spec, run_dir, log))
    resources = ray.cluster_resources()
    workers = resolve_num_workers(
        spec, float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
    )
    total = spec.replicas.count * spec.replicas.recipe.epochs
    already = len(read_manifest(run_dir))
    if already >= total:
        log(f"[train] all {total} (replica, epoch) pairs were done before; nothing to train")
        return {"workers": 0, "seconds": 0.0, "already_done": already}
    packs = spec.replicas.packs()
    if len(packs) < spec.replicas.count:
        return _train_packs(run_dir, spec, attempt=attempt, already=already, log=log)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"run_dir": str(run_dir), "spec": spec.to_dict(), "attempt": attempt},
        scaling_config=replica_scaling_config(spec, workers),
        run_config=RunConfig(
            name=f"replicas-attempt{attempt}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(run_dir / RAY_TRAIN_DIR),
            failure_config=FailureConfig(max_failures=spec.replicas.max_failures),
        ),
    )
    start = time.perf_counter()
    gpu = f", {spec.replicas.gpus_per_worker} GPU" if spec.replicas.gpus_per_worker else ""
    log(
        f"[train] {spec.replicas.count} replicas x {spec.replicas.recipe.epochs} epochs on {workers} "
        f"Ray Train workers ({spec.replicas.cpus_per_worker} CPU{gpu} each)"
        + (f"; {already}/{total} pairs done before, not retrained" if already else "")
    )
    thread, outcome = fit_in_thread(trainer, "hardbench-train")
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
    return {"workers": workers, "seconds": seconds, "already_done": already}
