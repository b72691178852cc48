"""Train the evaluated models as Ray tasks, in parallel, and return their predictions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data import SPLIT_TRAIN, load_dataset
from engine.evaluation.predictor import DESCRIPTOR_FILE
from engine.shards import atomic_write_bytes
from engine.splits.spec import BenchmarkSpec, EvalModelSpec, parse_spec
from engine.training import infer, train

MODELS_DIR = "models"  # under the run directory: one folder per evaluated model
WEIGHTS_FILE = "weights.pt"  # the state dict (loaded with weights_only=True)


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
    data = load_dataset(
        spec.data.source,
        heldout_fraction=spec.data.heldout_fraction,
        split_seed=spec.data.split_seed,
    )
    idx = data.indices(SPLIT_TRAIN)
    net = train(model.recipe, data.inputs[idx], data.labels[idx], num_classes=data.num_classes)
    logits = infer(net, data.inputs)
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
    }
    atomic_write_bytes(out_dir / DESCRIPTOR_FILE, json.dumps(descriptor, indent=2).encode())
    return {
        "name": model.name,
        "logits": logits,
        "seconds": time.perf_counter() - start,
        "weights": str(weights),
    }


def _remote_entry(run_dir: str, spec_dict: dict, index: int) -> dict:
    spec = parse_spec(spec_dict)
    return train_eval_model(run_dir, spec, spec.evaluate.models[index])


def train_eval_models(
    run_dir: Path | str, spec: BenchmarkSpec, *, log: Callable[[str], None] = print
) -> dict[str, np.ndarray]:
    """Train every ``evaluate.models`` entry as a Ray task (CPUs as the spec asks).

    Returns:
        Model name -> float32 logits of shape (N, K) for all samples.
    """
    import ray

    run_dir = str(Path(run_dir).resolve())
    spec_dict = spec.to_dict()
    pending = {
        ray.remote(num_cpus=m.cpus)(_remote_entry).remote(run_dir, spec_dict, i): m.name
        for i, m in enumerate(spec.evaluate.models)
    }
    log(f"[models] training {len(pending)} evaluated models: {', '.join(pending.values())}")
    out: dict[str, np.ndarray] = {}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        result = ray.get(done[0])
        pending.pop(done[0])
        log(f"[models] {result['name']} trained in {result['seconds']:.1f} s")
        out[result["name"]] = result["logits"]
    return {m.name: out[m.name] for m in spec.evaluate.models}
