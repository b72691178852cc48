"""An evaluated model's folder ``<run>/models/<name>/``: what it holds, how it is written and read.

One layout for every task::

    weights.pt           the state dict (loaded with ``weights_only=True``)
    model.json           classification: the descriptor that rebuilds the model from the
                         registry (name, options, classes, input shape, weights file,
                         the transform of a fine-tuned or ImageNet model)
    history.json         per-epoch training curve; written after the weights and descriptor
    predictions.parquet  classification: the evaluation pool's logits of every sample
    outputs.npz          text tasks: the per-sample outputs and the parameter count, written last
    progress-<rank>.json a Ray Train fine-tune's per-worker progress

Text models wrote their state dict as ``model.pt`` before the layout was shared; no
code reads a text model's weights back (its ``outputs.npz`` is what a resumed run
reuses), so such folders stay valid as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.layout import MODELS_DIR
from engine.shards.writer import atomic_write_bytes
from engine.spec import EvalModelSpec

WEIGHTS_FILE = "weights.pt"  # the state dict (loaded with weights_only=True)
DESCRIPTOR_FILE = "model.json"  # registry name, options, classes, input shape, weights file
HISTORY_FILE = "history.json"  # per-epoch training curve; written after weights and descriptor
PREDICTIONS_FILE = "predictions.parquet"  # sample_id, logits (K float32), from the eval pool
OUTPUTS_FILE = "outputs.npz"  # a text model's per-sample outputs and params, written last
PROGRESS_FILE = "progress-{rank}.json"  # each fine-tune worker's pid, epoch and step


def model_dir(run_dir: Path | str, name: str) -> Path:
    """The folder of evaluated model ``name`` in a run."""
    return Path(run_dir) / MODELS_DIR / name


def model_folder_done(run_dir: Path | str, name: str) -> bool:
    """Whether classification model ``name`` was trained in an earlier attempt (weights saved).

    The history is written after the weights and the descriptor, so its presence
    means the folder is complete; the predictions may still be missing.
    """
    folder = model_dir(run_dir, name)
    return all((folder / f).exists() for f in (WEIGHTS_FILE, DESCRIPTOR_FILE, HISTORY_FILE))


def model_history(run_dir: Path | str, name: str) -> list[dict]:
    """An evaluated model's per-epoch training curve (``[]`` if it has none)."""
    path = model_dir(run_dir, name) / HISTORY_FILE
    return json.loads(path.read_text()) if path.exists() else []


def save_model_folder(run_dir: Path | str, model: EvalModelSpec, net: object, data: object,
                      history: list[dict], *, extra: dict | None = None) -> Path:  # fmt: skip
    """Write a classification model's folder: weights, the descriptor, then the history (last).

    The descriptor rebuilds the model from the registry (``hardbench eval``); ``extra``
    adds to it (a fine-tuned model's transform and options). Predictions of an
    earlier training of the model are removed.

    Args:
        run_dir: The run directory.
        model: The ``evaluate.models`` entry.
        net: The trained ``torch.nn.Module``.
        data: The run's data (its ``num_classes`` and ``input_shape`` are recorded).
        history: The per-epoch training curve.
        extra: More descriptor keys.

    Returns:
        The weights' path.
    """
    import torch

    out_dir = model_dir(run_dir, model.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PREDICTIONS_FILE).unlink(missing_ok=True)
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
    return weights
