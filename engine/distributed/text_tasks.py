"""QA and seq2seq on Ray: the seed ensemble as one Ray task, evaluated models as others.

``train_text_ensemble`` and ``train_text_model`` are plain functions (they also run
with no cluster); :func:`run_ensemble` and :func:`start_models` only place them as
Ray tasks. The ensemble writes reduced shards. QA: per sample and epoch the span
entropy of the replica means, the ensemble's best span and its probability, and per
replica the span loss, margin and exact-span correctness. Seq2seq: the mean token
entropy of the replica means, the ensemble's mean gold-token probability, and per
replica the token-averaged NLL, margin and token accuracy >= 1/2 (``ensemble_pred``
and ``label`` hold 0: there is no class).

The ensemble checkpoints after every epoch (``checkpoints/pack=0``) and never
rewrites an epoch its manifest lists, so a resumed or repaired run continues where
it stopped and writes the shards an uninterrupted run writes. An evaluated model's
outputs are saved (``models/<name>/outputs.npz``) and reused by a resumed run.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data.qa import MAX_ANSWER_TOKENS, SPLIT_TRAIN, QAData
from engine.distributed.models import HISTORY_FILE, MODELS_DIR
from engine.scores.qa import best_spans, span_entropy, span_losses, span_margins
from engine.shards import atomic_write_bytes, read_packed_manifest, record_packed_epoch
from engine.shards.layout import packed_manifest_path
from engine.shards.writer import remove_stale_temp_files, write_reduced_epoch_shards
from engine.training.checkpoints import replica_checkpoint_dir, resume_point, save_checkpoint

ENSEMBLE_OWNER = "pack=0"  # checkpoint folder of the side-by-side ensemble
OUTPUTS_FILE = "outputs.npz"  # an evaluated text model's per-sample outputs, written last
WEIGHTS_FILE = "model.pt"  # an evaluated text model's state dict


def reduce_epoch(
    data: QAData, start_log_probs: np.ndarray, end_log_probs: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-sample reductions of one epoch's R replica predictions (each (R, N, L) float32).

    Returns:
        ``mean_entropy`` (N,) span entropy of the replica means; ``ensemble_pred`` (N,)
        best span of the means coded ``start * L + end``; ``ensemble_conf`` (N,) its
        probability; ``loss``, ``margin`` (R, N) and ``correct`` (R, N) bool (both
        argmaxes on the gold positions).
    """
    ps, pe = np.exp(start_log_probs), np.exp(end_log_probs)
    length = ps.shape[-1]
    bs, be, bp = best_spans(ps.mean(axis=0), pe.mean(axis=0), max_tokens=MAX_ANSWER_TOKENS)
    return {
        "mean_entropy": span_entropy(ps, pe),
        "ensemble_pred": bs * length + be,
        "ensemble_conf": bp,
        "loss": span_losses(start_log_probs, end_log_probs, data.start, data.end),
        "margin": span_margins(start_log_probs, end_log_probs, data.start, data.end),
        "correct": (start_log_probs.argmax(-1) == data.start)
        & (end_log_probs.argmax(-1) == data.end),
    }


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


def write_reduced(run_dir: Path | str, spec: object, epoch: int, red: dict[str, np.ndarray],
                  labels: np.ndarray, split: np.ndarray, meta: dict, facts: dict) -> None:  # fmt: skip
    """Write one epoch's reductions as reduced shards and record it in the packed manifest.

    Args:
        run_dir: The run directory.
        spec: The spec (replica count and seeds, block size, file format).
        epoch: Epoch index.
        red: ``mean_entropy``, ``ensemble_pred``, ``ensemble_conf`` (N,) and ``loss``,
            ``margin``, ``correct`` (R, N).
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
        fmt=spec.shards.format,
    )  # fmt: skip
    train = split == SPLIT_TRAIN
    curves = {
        "train_loss": float(np.mean(red["loss"][:, train])),
        "train_accuracy": float(np.mean(red["correct"][:, train])),
        "heldout_accuracy": float(np.mean(red["correct"][:, ~train])),
    }
    record_packed_epoch(run_dir, replicas=list(range(len(seeds))), epoch=epoch, blocks=blocks,
                        seeds=seeds, form="reduced", **curves, **facts)  # fmt: skip


def _ensemble_writer(run_dir: Path, spec: object, data: object) -> Callable:
    """The per-epoch callback of a text ensemble: reduce, write shards, record the epoch."""
    name = spec.task.name
    meta = {"spec": spec.metadata.name, "task": name, "seeds": spec.replicas.seeds(),
            "replicas": spec.replicas.count}  # fmt: skip
    if name == "qa":
        length = data.input_ids.shape[1]
        labels = data.start * length + data.end  # the gold span, coded like ensemble_pred
    else:
        labels = np.zeros(len(data.split), np.int64)

    def write(epoch: int, red: dict[str, np.ndarray], attempt: int) -> None:
        if name != "qa":
            red = {**red, "ensemble_pred": labels}
        facts = {"attempt": attempt, "pid": os.getpid(), "host": socket.gethostname()}
        write_reduced(run_dir, spec, epoch, red, labels, data.split, meta, facts)

    return write


def train_text_ensemble(
    run_dir: Path | str, spec: object, data: object, *, attempt: int = 1, log: Callable = print
) -> dict:
    """Train the spec's side-by-side seed ensemble; one reduced shard set per epoch.

    Epochs the packed manifest lists are never written again; training continues from
    the newest checkpoint at or before the first missing epoch (or replays from the
    seeds), so the shards equal an uninterrupted run's.

    Returns:
        ``{"epochs", "written", "resumed_from", "skipped", "seconds"}``.
    """
    import torch

    from engine.training.qa import train_readers
    from engine.training.seq2seq import train_seq2seq
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
    write = _ensemble_writer(run_dir, spec, data)

    def save(epoch: int, ckpt: dict) -> None:
        save_checkpoint(run_dir, ENSEMBLE_OWNER, epoch, ckpt, keep=spec.replicas.keep_checkpoints)

    continuation = Continuation(resume=state, on_checkpoint=save, report_epochs=set(todo),
                                until_epoch=todo[-1])  # fmt: skip
    device = task_device(spec.replicas.gpus_per_worker)
    if spec.task.name == "qa":

        def on_epoch(epoch: int, start_lp: np.ndarray, end_lp: np.ndarray) -> None:
            write(epoch, reduce_epoch(data, start_lp, end_lp), attempt)
            outcome["written"] += 1

        fit = train_readers
    else:

        def on_epoch(epoch: int, red: dict[str, np.ndarray]) -> None:
            write(epoch, red, attempt)
            outcome["written"] += 1

        fit = train_seq2seq
    fit(data, spec.replicas.recipe, spec.replicas.seeds(), on_epoch=on_epoch, log=log,
        device=device, continuation=continuation)  # fmt: skip
    return {**outcome, "seconds": round(time.perf_counter() - t0, 1)}


def finished_outputs(run_dir: Path | str, name: str) -> dict | None:
    """The saved per-sample outputs of an evaluated text model, or None if it did not finish."""
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
    return {"name": name, **out}


def train_text_model(
    run_dir: Path | str, spec: object, index: int, data: object, *, log: Callable = print
) -> dict:
    """Train evaluated model ``spec.evaluate.models[index]`` on the training split; predict.

    The weights go to ``models/<name>/model.pt``, the learning curve to
    ``history.json`` and the per-sample outputs, last, to ``outputs.npz``.

    Returns:
        QA: ``{"name", "start", "end", "loss"}`` (each reader's best span on every sample
        and its span loss on the gold span); seq2seq: ``{"name", "texts", "loss"}`` (the
        greedy decodings and the token-averaged NLL of each reference).
    """
    import torch

    from engine.training.qa import span_log_probs, train_readers
    from engine.training.seq2seq import predict_loss_and_text, train_seq2seq
    from engine.training.side_by_side import Continuation

    model_spec = spec.evaluate.models[index]
    torch.set_num_threads(int(model_spec.cpus))
    device = task_device(model_spec.gpus)
    qa = spec.task.name == "qa"
    history: list[dict] = []
    clock = [time.time()]  # when the epoch being trained started

    def keep(epoch: int, losses: list[float]) -> None:
        now = time.time()
        history.append({"epoch": epoch, "train_loss": float(losses[0]), "started": clock[0],
                        "ended": now})  # fmt: skip
        clock[0] = now

    fit = train_readers if qa else train_seq2seq
    (model,) = fit(
        data, model_spec.recipe, [model_spec.recipe.seed],
        log=lambda line: log(f"[{model_spec.name}] {line}"), device=device,
        continuation=Continuation(on_checkpoint=lambda e, st: keep(e, st["losses"].tolist())),
    )  # fmt: skip
    out_dir = Path(run_dir) / MODELS_DIR / model_spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, out_dir / WEIGHTS_FILE)
    atomic_write_bytes(out_dir / HISTORY_FILE, json.dumps(history).encode())
    if qa:
        s, e = span_log_probs(model, data, device)
        bs, be, _ = best_spans(np.exp(s), np.exp(e), max_tokens=MAX_ANSWER_TOKENS)
        outputs = {
            "start": bs,
            "end": be,
            "loss": span_losses(s[None], e[None], data.start, data.end)[0],
        }
    else:
        loss, texts = predict_loss_and_text(model, data, device)
        outputs = {"texts": np.asarray(texts, dtype=np.str_), "loss": loss}
    tmp = out_dir / f".{OUTPUTS_FILE}.tmp.npz"
    np.savez(tmp, **outputs)
    tmp.replace(out_dir / OUTPUTS_FILE)
    return finished_outputs(run_dir, model_spec.name)


def _check_gpus(spec: object) -> None:
    import ray

    wanted = max([spec.replicas.gpus_per_worker, *(m.gpus for m in spec.evaluate.models)])
    have = float(ray.cluster_resources().get("GPU", 0))
    if wanted > have:  # Ray would wait forever for a GPU that never comes
        raise RuntimeError(
            f"the spec asks for {wanted:g} GPU per task, but the Ray cluster has {have:g} GPUs; "
            "set replicas.gpus_per_worker and evaluate.models[].gpus to 0 to train on CPUs"
        )


def run_ensemble(run_dir: Path | str, spec: object, data_ref: object, *, attempt: int) -> dict:
    """On the connected Ray cluster: the ensemble as one Ray task (retried once); waits for it."""
    import ray

    _check_gpus(spec)
    task = ray.remote(num_cpus=spec.replicas.cpus_per_worker,
                      num_gpus=spec.replicas.gpus_per_worker,
                      max_retries=spec.replicas.max_failures)(train_text_ensemble)  # fmt: skip
    return ray.get(task.remote(str(Path(run_dir).resolve()), spec, data_ref, attempt=attempt))


class TextModels:
    """Evaluated text models training as Ray tasks; ``result()`` waits for them."""

    def __init__(self, run_dir: Path | str, spec: object, data_ref: object,
                 log: Callable = print) -> None:  # fmt: skip
        import ray

        _check_gpus(spec)
        self.names = [m.name for m in spec.evaluate.models]
        self.done = {n: out for n in self.names if (out := finished_outputs(run_dir, n))}
        if self.done:
            log(f"[models] finished before, not retrained: {', '.join(self.done)}")
        remote = ray.remote(max_retries=1)(train_text_model)
        self.refs = {
            m.name: remote.options(num_cpus=m.cpus, num_gpus=m.gpus).remote(
                str(Path(run_dir).resolve()), spec, i, data_ref, log=print
            )
            for i, m in enumerate(spec.evaluate.models)
            if m.name not in self.done
        }

    def result(self) -> dict[str, dict]:
        """Model name -> its outputs, in spec order."""
        import ray

        got = dict(zip(self.refs, ray.get(list(self.refs.values())), strict=True))
        return {n: self.done.get(n) or got[n] for n in self.names}
