"""QA and seq2seq on Ray: the seed ensemble as one Ray task, evaluated models as others.

``train_qa_replicas`` and ``train_seq2seq_replicas`` are plain functions (they also
run with no cluster); the Ray task wrappers only place them. The ensemble writes
reduced shards. QA: per sample and epoch the span entropy of the replica means, the
ensemble's best span and its probability, and per replica the span loss, margin and
exact-span correctness. Seq2seq: the mean token entropy of the replica means, the
ensemble's mean gold-token probability, and per replica the token-averaged NLL,
margin and token accuracy >= 1/2 (``ensemble_pred`` and ``label`` hold 0: there is
no class).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data.qa import MAX_ANSWER_TOKENS, QAData
from engine.distributed.models import MODELS_DIR
from engine.scores.qa import best_spans, span_entropy, span_losses, span_margins
from engine.shards import num_blocks, record_packed_epoch
from engine.shards.writer import write_reduced_epoch_shards


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
                  labels: np.ndarray, meta: dict) -> None:  # fmt: skip
    """Write one epoch's reductions as reduced shards and record it in the packed manifest.

    Args:
        run_dir: The run directory.
        spec: The text-task spec (replica count and seeds, block size, file format).
        epoch: Epoch index.
        red: ``mean_entropy``, ``ensemble_pred``, ``ensemble_conf`` (N,) and ``loss``,
            ``margin``, ``correct`` (R, N).
        labels: Int (N,) stored as the shards' label column.
        meta: Provenance for the files' metadata.
    """
    seeds = spec.replicas.seeds()
    blocks = write_reduced_epoch_shards(
        run_dir, epoch=epoch, mean_entropy=red["mean_entropy"],
        ensemble_pred=red["ensemble_pred"], ensemble_conf=red["ensemble_conf"],
        scalars={k: red[k] for k in ("loss", "margin", "correct")}, labels=labels,
        num_replicas=len(seeds), block_size=spec.shards.block_size, metadata=meta,
        fmt=spec.shards.format,
    )  # fmt: skip
    record_packed_epoch(run_dir, replicas=list(range(len(seeds))), epoch=epoch,
                        blocks=blocks, seeds=seeds, form="reduced")  # fmt: skip


def _fit_ensemble(run_dir: Path | str, spec: object, data: object | None, fit: Callable,
                  make_on_epoch: Callable[[object, dict], Callable], log: Callable) -> dict:  # fmt: skip
    """Load the data (unless given), train the seed ensemble with ``fit``, summarize.

    ``make_on_epoch(data, meta)`` builds the per-epoch callback that writes the shards.
    """
    import torch

    torch.set_num_threads(int(spec.replicas.cpus_per_worker))
    t0 = time.perf_counter()
    data = data if data is not None else spec.load_data()
    seeds = spec.replicas.seeds()
    meta = {
        "spec": spec.metadata.name,
        "task": spec.task.name,
        "seeds": seeds,
        "replicas": len(seeds),
    }
    fit(data, spec.replicas.recipe, seeds, on_epoch=make_on_epoch(data, meta), log=log,
        device=task_device(spec.replicas.gpus_per_worker))  # fmt: skip
    return {
        "epochs": spec.replicas.recipe.epochs,
        "samples": len(data),
        "blocks": num_blocks(len(data), spec.shards.block_size),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _fit_model(run_dir: Path | str, spec: object, index: int, data: object | None,
               fit: Callable, log: Callable) -> tuple[object, object, str]:  # fmt: skip
    """Train evaluated model ``spec.evaluate.models[index]`` with ``fit`` and save its weights.

    The weights go to ``<run>/models/<name>/model.pt`` (on the CPU).

    Returns:
        ``(model, data, device)``.
    """
    import torch

    model_spec = spec.evaluate.models[index]
    torch.set_num_threads(int(model_spec.cpus))
    data = data if data is not None else spec.load_data()
    device = task_device(model_spec.gpus)
    (model,) = fit(
        data, model_spec.recipe, [model_spec.recipe.seed],
        log=lambda line: log(f"[{model_spec.name}] {line}"), device=device,
    )  # fmt: skip
    out = Path(run_dir) / MODELS_DIR / model_spec.name
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, out / "model.pt")
    return model, data, device


def train_qa_replicas(
    run_dir: Path | str, spec: object, data: QAData | None = None, *, log: Callable = print
) -> dict:
    """Train the spec's QA seed ensemble and write one reduced shard set per epoch.

    Args:
        run_dir: The run directory.
        spec: A :class:`engine.spec.BenchmarkSpec`.
        data: The spec's data, already loaded (default: load it here).
        log: Progress lines.

    Returns:
        ``{"epochs", "samples", "blocks", "seconds"}``.
    """
    from engine.training.qa import train_readers

    def make_on_epoch(data: QAData, meta: dict) -> Callable:
        length = data.input_ids.shape[1]
        labels = data.start * length + data.end  # the gold span, coded like ensemble_pred

        def on_epoch(epoch: int, start_lp: np.ndarray, end_lp: np.ndarray) -> None:
            red = reduce_epoch(data, start_lp, end_lp)
            write_reduced(run_dir, spec, epoch, red, labels, meta)

        return on_epoch

    return _fit_ensemble(run_dir, spec, data, train_readers, make_on_epoch, log)


def train_qa_model(
    run_dir: Path | str, spec: object, index: int, data: QAData | None = None, *,
    log: Callable = print,
) -> dict:  # fmt: skip
    """Train evaluated reader ``spec.evaluate.models[index]`` on the training split; predict spans.

    Returns:
        ``{"name", "start" (N,), "end" (N,), "loss" (N,)}``: the reader's best span on
        every sample and its span loss on the gold span.
    """
    from engine.training.qa import span_log_probs, train_readers

    reader, data, device = _fit_model(run_dir, spec, index, data, train_readers, log)
    s, e = span_log_probs(reader, data, device)
    bs, be, _ = best_spans(np.exp(s), np.exp(e), max_tokens=MAX_ANSWER_TOKENS)
    loss = span_losses(s[None], e[None], data.start, data.end)[0]
    return {"name": spec.evaluate.models[index].name, "start": bs, "end": be, "loss": loss}


def train_seq2seq_replicas(
    run_dir: Path | str, spec: object, data: object | None = None, *, log: Callable = print
) -> dict:
    """Train the spec's seq2seq seed ensemble and write one reduced shard set per epoch.

    Returns:
        ``{"epochs", "samples", "blocks", "seconds"}``.
    """
    from engine.training.seq2seq import train_seq2seq

    def make_on_epoch(data: object, meta: dict) -> Callable:
        zeros = np.zeros(len(data), np.int64)

        def on_epoch(epoch: int, red: dict[str, np.ndarray]) -> None:
            write_reduced(run_dir, spec, epoch, {**red, "ensemble_pred": zeros}, zeros, meta)

        return on_epoch

    return _fit_ensemble(run_dir, spec, data, train_seq2seq, make_on_epoch, log)


def train_seq2seq_model(
    run_dir: Path | str, spec: object, index: int, data: object | None = None, *,
    log: Callable = print,
) -> dict:  # fmt: skip
    """Train evaluated model ``spec.evaluate.models[index]``; greedy-decode every sample.

    Returns:
        ``{"name", "texts" (N strings), "loss" (N,)}``: the greedy decodings and the
        token-averaged NLL of each reference.
    """
    from engine.training.seq2seq import predict_loss_and_text, train_seq2seq

    model, data, device = _fit_model(run_dir, spec, index, data, train_seq2seq, log)
    loss, texts = predict_loss_and_text(model, data, device)
    return {"name": spec.evaluate.models[index].name, "texts": texts, "loss": loss}


TASK_FUNCTIONS = {
    "qa": (train_qa_replicas, train_qa_model),
    "seq2seq": (train_seq2seq_replicas, train_seq2seq_model),
}  # task -> (seed ensemble, evaluated model)


def run_text_tasks(run_dir: Path | str, spec: object, data: object) -> tuple[dict, list[dict]]:
    """On the connected Ray cluster: the ensemble task and one task per evaluated model.

    All run at once where the cluster's CPUs allow. ``data`` (the driver's loaded copy)
    goes to the object store once and every task reads it from there instead of
    tokenizing the corpus again. Returns the ensemble's summary and each model's
    predictions.
    """
    import ray

    ensemble_fn, model_fn = TASK_FUNCTIONS[spec.task.name]
    wanted = max([spec.replicas.gpus_per_worker, *(m.gpus for m in spec.evaluate.models)])
    have = float(ray.cluster_resources().get("GPU", 0))
    if wanted > have:  # Ray would wait forever for a GPU that never comes
        raise RuntimeError(
            f"the spec asks for {wanted:g} GPU per task, but the Ray cluster has {have:g} GPUs; "
            "set replicas.gpus_per_worker and evaluate.models[].gpus to 0 to train on CPUs"
        )
    ensemble = ray.remote(num_cpus=spec.replicas.cpus_per_worker, num_gpus=spec.replicas.gpus_per_worker,
                          max_retries=1)(ensemble_fn)  # fmt: skip
    model = ray.remote(max_retries=1)(model_fn)
    run_dir = str(Path(run_dir).resolve())
    data_ref = ray.put(data)
    refs = [ensemble.remote(run_dir, spec, data_ref, log=print)]
    refs += [
        model.options(num_cpus=m.cpus, num_gpus=m.gpus).remote(
            run_dir, spec, i, data_ref, log=print
        )
        for i, m in enumerate(spec.evaluate.models)
    ]
    out = ray.get(refs)
    return out[0], out[1:]
