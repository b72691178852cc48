"""Text ensembles on Ray: the seed ensemble as one Ray task, evaluated models as others.

Placement only. ``train_text_ensemble`` and ``train_text_model`` are plain functions
(they also run with no cluster); :func:`run_ensemble` and :class:`TextModels` only place
them as Ray tasks. What differs per task (how its models train, how one epoch's
replica outputs reduce to shard rows, what an evaluated model's per-sample outputs
are) comes from its plugin as a :class:`TextTraining`. The ensemble writes reduced
shards: per sample and epoch ``mean_entropy``, ``ensemble_pred``, ``ensemble_conf``
and per replica ``loss``, ``margin`` and ``correct``; on the epochs of
``shards.grad_epochs`` (the vog score) also every replica's input gradient w.r.t. the
embedded tokens, NaN at padding. A gradient epoch's shards are written once, like any
epoch's, so a resumed run reads the earlier gradient epochs from disk and VoG needs no
running state in the ensemble's checkpoint.

The ensemble checkpoints after every epoch (``checkpoints/pack=0``) and never
rewrites an epoch its manifest lists, so a resumed or repaired run continues where
it stopped and writes the shards an uninterrupted run writes. An evaluated model's
outputs are saved (``models/<name>/outputs.npz``, with the trained model's parameter
count) and reused by a resumed run. An evaluated model with a mitigation (upsampling or
a curriculum) ranks its training samples by the run's scores (``scores.parquet``, read
in the score's direction), so it starts after scoring, as classification's models do.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.sources import SPLIT_TRAIN
from engine.layout import MODELS_DIR
from engine.shards import atomic_write_bytes, read_packed_manifest, record_packed_epoch
from engine.shards.layout import packed_manifest_path
from engine.shards.writer import remove_stale_temp_files, write_reduced_epoch_shards
from engine.spec import BenchmarkSpec
from engine.training.checkpoints import replica_checkpoint_dir, resume_point, save_checkpoint
from engine.training.model_folder import HISTORY_FILE, OUTPUTS_FILE, WEIGHTS_FILE

ENSEMBLE_OWNER = "pack=0"  # checkpoint folder of the side-by-side ensemble
DATA_REF = "data_ref"  # key of the data's Ray object reference in a run's scratch state
PARAMS_KEY = "params"  # key of a trained model's parameter count in its saved outputs
NO_CLASSES = 0  # text answers have no classes (only GroupDRO's "half" edges read K: refused)


@dataclass(frozen=True)
class TextTraining:
    """What a text task's plugin hands the placement: its per-task pieces, as plain functions.

    The functions travel to Ray tasks by reference, so they must be module-level.

    Attributes:
        train: ``train(data, recipe, seeds, *, on_epoch, log, device, continuation,
            mitigation, grad_epochs)`` trains one model per seed side by side and returns
            them; ``on_epoch`` (optional) gets ``(epoch, *outputs)`` after each epoch it
            reports; ``mitigation`` (optional) orders the training split's samples per
            epoch; on the epochs of ``grad_epochs`` the outputs also carry the replicas'
            input gradients (VoG).
        reduce_epoch: ``reduce_epoch(data, *outputs)``: one epoch's replica outputs
            reduced to the shard rows: ``mean_entropy``, ``ensemble_pred``,
            ``ensemble_conf`` (N,) and ``loss``, ``margin``, ``correct`` (R, N), and on a
            gradient epoch ``input_grad`` (R, N, ...) with NaN at padded positions.
        shard_labels: ``shard_labels(data)``: int (N,) stored as the shards' ``label``.
        model_outputs: ``model_outputs(model, data, device)``: a trained evaluated
            model's per-sample outputs (NumPy arrays; saved as ``outputs.npz``).
    """

    train: Callable[..., list]
    reduce_epoch: Callable[..., dict[str, np.ndarray]]
    shard_labels: Callable[[object], np.ndarray]
    model_outputs: Callable[[object, object, str], dict[str, np.ndarray]]


def data_ref(state: dict, data: object) -> object:
    """``data`` in Ray's object store: put on the first call, then the same reference.

    Args:
        state: The run's scratch state, where the reference is kept (``DATA_REF``).
        data: The task's data (the driver's copy).
    """
    import ray

    if DATA_REF not in state:
        state[DATA_REF] = ray.put(data)
    return state[DATA_REF]


def task_device(gpus: float) -> str:
    """``cuda`` when the task reserved a GPU (and sees one), else ``cpu``.

    Raises:
        RuntimeError: When a GPU was reserved but CUDA is not available in the task.
    """
    import torch

    if gpus <= 0:
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"the spec reserves {gpus} GPU for this task, but torch sees no CUDA device here"
        )
    return "cuda"


def write_reduced(run_dir: Path | str, spec: BenchmarkSpec, epoch: int, red: dict[str, np.ndarray],
                  labels: np.ndarray, split: np.ndarray, meta: dict, facts: dict) -> None:  # fmt: skip
    """Write one epoch's reductions as reduced shards and record it in the packed manifest.

    Args:
        run_dir: The run directory.
        spec: The spec (replica count and seeds, block size, file format).
        epoch: Epoch index.
        red: ``mean_entropy``, ``ensemble_pred``, ``ensemble_conf`` (N,) and ``loss``,
            ``margin``, ``correct`` (R, N); on a gradient epoch ``input_grad`` (R, N, ...)
            too, stored float32 with its NaN (padding).
        labels: Int (N,) stored as the shards' label column.
        split: (N,) data split of each sample (the learning-curve points).
        meta: Provenance for the files' metadata.
        facts: More fields for the manifest row (attempt, pid, host).
    """
    seeds = spec.replicas.seeds()
    blocks = write_reduced_epoch_shards(
        run_dir, epoch=epoch, mean_entropy=red["mean_entropy"],
        ensemble_pred=red["ensemble_pred"], ensemble_conf=red["ensemble_conf"],
        scalars={k: red[k] for k in ("loss", "margin", "correct")}, labels=labels,
        num_replicas=len(seeds), block_size=spec.shards.block_size, metadata=meta,
        fmt=spec.shards.format, checksum=spec.shards.checksum, input_grad=red.get("input_grad"),
    )  # fmt: skip
    train = split == SPLIT_TRAIN
    curves = {
        "train_loss": float(np.mean(red["loss"][:, train])),
        "train_accuracy": float(np.mean(red["correct"][:, train])),
        "heldout_accuracy": float(np.mean(red["correct"][:, ~train])),
    }
    record_packed_epoch(run_dir, replicas=list(range(len(seeds))), epoch=epoch, blocks=blocks,
                        seeds=seeds, form="reduced", **curves, **facts)  # fmt: skip


def _ensemble_writer(
    run_dir: Path, spec: BenchmarkSpec, data: object, training: TextTraining
) -> Callable:
    """The per-epoch callback of a text ensemble: write the reduced shards, record the epoch."""
    meta = {"spec": spec.metadata.name, "task": spec.task.name, "seeds": spec.replicas.seeds(),
            "replicas": spec.replicas.count}  # fmt: skip
    labels = training.shard_labels(data)

    def write(epoch: int, red: dict[str, np.ndarray], attempt: int) -> None:
        facts = {"attempt": attempt, "pid": os.getpid(), "host": socket.gethostname()}
        write_reduced(run_dir, spec, epoch, red, labels, data.split, meta, facts)

    return write


def train_text_ensemble(
    run_dir: Path | str,
    spec: BenchmarkSpec,
    data: object,
    training: TextTraining,
    *,
    attempt: int = 1,
    log: Callable = print,
) -> dict:
    """Train the spec's side-by-side seed ensemble; one reduced shard set per epoch.

    Epochs the packed manifest lists are never written again; training continues from
    the newest checkpoint at or before the first missing epoch (or replays from the
    seeds), so the shards equal an uninterrupted run's.

    Args:
        run_dir: The run directory.
        spec: The spec (replicas, shards).
        data: The task's samples.
        training: The task's training pieces (:class:`TextTraining`).
        attempt: Which start of the run this is (recorded in the manifest).
        log: Progress lines.

    Returns:
        ``{"epochs", "written", "resumed_from", "skipped", "seconds"}``.
    """
    import torch

    from engine.training.side_by_side import Continuation

    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    torch.set_num_threads(int(spec.replicas.cpus_per_worker))
    epochs = spec.replicas.recipe.epochs
    stale = remove_stale_temp_files(
        packed_manifest_path(run_dir).parent, replica_checkpoint_dir(run_dir, ENSEMBLE_OWNER)
    )
    done = set(read_packed_manifest(run_dir))
    todo, state = resume_point(run_dir, ENSEMBLE_OWNER, "ensemble", done, epochs, stale, log)
    outcome = {"epochs": epochs, "written": 0, "skipped": len(done),
               "resumed_from": None if state is None else int(state["epoch"])}  # fmt: skip
    if not todo:
        return {**outcome, "seconds": 0.0}
    write = _ensemble_writer(run_dir, spec, data, training)

    def save(epoch: int, ckpt: dict) -> None:
        save_checkpoint(run_dir, ENSEMBLE_OWNER, epoch, ckpt, keep=spec.replicas.keep_checkpoints)

    def on_epoch(epoch: int, *outputs: object) -> None:
        write(epoch, training.reduce_epoch(data, *outputs), attempt)
        outcome["written"] += 1

    continuation = Continuation(resume=state, on_checkpoint=save, report_epochs=set(todo),
                                until_epoch=todo[-1])  # fmt: skip
    training.train(data, spec.replicas.recipe, spec.replicas.seeds(), on_epoch=on_epoch, log=log,
                   device=task_device(spec.replicas.gpus_per_worker), continuation=continuation,
                   grad_epochs=frozenset(spec.shards.grad_epochs))  # fmt: skip
    return {**outcome, "seconds": round(time.perf_counter() - t0, 1)}


def finished_outputs(run_dir: Path | str, name: str) -> dict | None:
    """The saved per-sample outputs of an evaluated text model, or None if it did not finish.

    Returns:
        ``{"name", **outputs}``; ``params`` (:data:`PARAMS_KEY`) is the trained model's
        parameter count as an int, absent from a model saved before it was recorded.
    """
    path = Path(run_dir) / MODELS_DIR / name / OUTPUTS_FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            out = {k: saved[k] for k in saved.files}
    except (OSError, ValueError):
        return None
    if "texts" in out:
        out["texts"] = [str(t) for t in out["texts"]]
    if PARAMS_KEY in out:
        out[PARAMS_KEY] = int(out[PARAMS_KEY])
    return {"name": name, **out}


def train_text_model(
    run_dir: Path | str,
    spec: BenchmarkSpec,
    index: int,
    data: object,
    training: TextTraining,
    *,
    log: Callable = print,
) -> dict:
    """Train evaluated model ``spec.evaluate.models[index]`` on the training split; predict.

    A model with a mitigation ranks the training samples by its score in the run's
    ``scores.parquet`` (:func:`engine.distributed.models.mitigation_for`, as for
    classification), so it must start after scoring. The weights go to
    ``models/<name>/weights.pt``, the learning curve to ``history.json`` and the
    per-sample outputs (``training.model_outputs``) with the model's parameter count
    (:data:`PARAMS_KEY`), last, to ``outputs.npz``.

    Args:
        run_dir: The run directory.
        spec: The spec.
        index: Which evaluated model.
        data: The task's samples.
        training: The task's training pieces (:class:`TextTraining`).
        log: Progress lines.

    Returns:
        ``{"name", **outputs}`` as :func:`finished_outputs` reads them back.
    """
    import torch

    from engine.training.side_by_side import Continuation

    model_spec = spec.evaluate.models[index]
    torch.set_num_threads(int(model_spec.cpus))
    device = task_device(model_spec.gpus)
    mitigation = None
    if model_spec.mitigation.method != "erm":
        from engine.distributed.models import mitigation_for

        train_idx = np.flatnonzero(np.asarray(data.split) == SPLIT_TRAIN)
        mitigation = mitigation_for(run_dir, model_spec, train_idx, NO_CLASSES)
        log(f"[{model_spec.name}] {model_spec.mitigation.method} by "
            f"{model_spec.mitigation.score} over {len(train_idx)} training samples")  # fmt: skip
    history: list[dict] = []
    clock = [time.time()]  # when the epoch being trained started

    def keep(epoch: int, losses: list[float]) -> None:
        now = time.time()
        history.append({"epoch": epoch, "train_loss": float(losses[0]), "started": clock[0],
                        "ended": now})  # fmt: skip
        clock[0] = now

    (model,) = training.train(
        data, model_spec.recipe, [model_spec.recipe.seed],
        log=lambda line: log(f"[{model_spec.name}] {line}"), device=device,
        continuation=Continuation(on_checkpoint=lambda e, st: keep(e, st["losses"].tolist())),
        mitigation=mitigation,
    )  # fmt: skip
    out_dir = Path(run_dir) / MODELS_DIR / model_spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, out_dir / WEIGHTS_FILE)
    atomic_write_bytes(out_dir / HISTORY_FILE, json.dumps(history).encode())
    outputs = training.model_outputs(model, data, device)
    params = np.int64(sum(p.numel() for p in model.parameters()))
    tmp = out_dir / f".{OUTPUTS_FILE}.tmp.npz"
    np.savez(tmp, **outputs, **{PARAMS_KEY: params})  # an output named params: TypeError
    tmp.replace(out_dir / OUTPUTS_FILE)
    return finished_outputs(run_dir, model_spec.name)


def _check_gpus(spec: BenchmarkSpec) -> None:
    import ray

    wanted = max([spec.replicas.gpus_per_worker, *(m.gpus for m in spec.evaluate.models)])
    have = float(ray.cluster_resources().get("GPU", 0))
    if wanted > have:  # Ray would wait forever for a GPU that never comes
        raise RuntimeError(
            f"the spec asks for {wanted:g} GPU per task, but the Ray cluster has {have:g} GPUs; "
            "set replicas.gpus_per_worker and evaluate.models[].gpus to 0 to train on CPUs"
        )


def run_ensemble(run_dir: Path | str, spec: BenchmarkSpec, data_ref: object, training: TextTraining,
                 *, attempt: int) -> dict:  # fmt: skip
    """On the connected Ray cluster: the ensemble as one Ray task (retried once); waits for it.

    Args:
        run_dir: The run directory.
        spec: The spec (the task's CPUs, GPUs and retries).
        data_ref: The data in Ray's object store (:func:`data_ref`).
        training: The task's training pieces.
        attempt: Which start of the run this is.

    Returns:
        What :func:`train_text_ensemble` returns.
    """
    import ray

    _check_gpus(spec)
    task = ray.remote(num_cpus=spec.replicas.cpus_per_worker,
                      num_gpus=spec.replicas.gpus_per_worker,
                      max_retries=spec.replicas.max_failures)(train_text_ensemble)  # fmt: skip
    return ray.get(
        task.remote(str(Path(run_dir).resolve()), spec, data_ref, training, attempt=attempt)
    )


class TextModels:
    """Evaluated text models training as Ray tasks; ``result()`` waits for them."""

    def __init__(self, run_dir: Path | str, spec: BenchmarkSpec, data_ref: object,
                 training: TextTraining, log: Callable = print) -> None:  # fmt: skip
        """Start one Ray task per evaluated model that did not finish before.

        Args:
            run_dir: The run directory.
            spec: The spec (``evaluate.models``, their CPUs and GPUs).
            data_ref: The data in Ray's object store (:func:`data_ref`).
            training: The task's training pieces.
            log: Progress lines.
        """
        import ray

        _check_gpus(spec)
        self.names = [m.name for m in spec.evaluate.models]
        self.done = {n: out for n in self.names if (out := finished_outputs(run_dir, n))}
        if self.done:
            log(f"[models] finished before, not retrained: {', '.join(self.done)}")
        remote = ray.remote(max_retries=1)(train_text_model)
        self.refs = {
            m.name: remote.options(num_cpus=m.cpus, num_gpus=m.gpus).remote(
                str(Path(run_dir).resolve()), spec, i, data_ref, training, log=print
            )
            for i, m in enumerate(spec.evaluate.models)
            if m.name not in self.done
        }

    def result(self) -> dict[str, dict]:
        """Model name -> its outputs, in spec order."""
        import ray

        got = dict(zip(self.refs, ray.get(list(self.refs.values())), strict=True))
        return {n: self.done.get(n) or got[n] for n in self.names}
