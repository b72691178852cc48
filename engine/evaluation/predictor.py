"""Predict with any registered model on built splits: a callable class Ray Data runs as actors.

The model is loaded once in ``__init__`` and applied per batch in ``__call__`` with the
model's own evaluation preprocessing (channel repeat, resize, centre crop, normalise).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.models import Preprocess, create_model, get_model_config

DESCRIPTOR_FILE = "model.json"  # registry name, options, classes, input shape, weights file


def prepare_inputs(x: np.ndarray, preprocess: Preprocess | None) -> torch.Tensor:
    """Stored inputs (B, C, H, W) -> model inputs, following ``preprocess``.

    A grey image meets a 3-channel normalisation by repeating its channel; resizing
    scales the shorter side to ``resize_size`` (antialiased), then a centre crop of
    ``crop_size`` is taken and the channels are normalised.
    """
    if preprocess is None:
        from engine.training.classification import as_input

        return as_input(x)  # token ids stay integers
    t = torch.as_tensor(x, dtype=torch.float32)
    if t.ndim != 4:
        raise ValueError(f"image preprocessing needs (B, C, H, W) inputs, got {tuple(t.shape)}")
    channels = len(preprocess.mean)
    if t.shape[1] == 1 and channels == 3:
        t = t.repeat(1, 3, 1, 1)
    if preprocess.resize_size:
        h, w = t.shape[-2:]
        scale = preprocess.resize_size / min(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        t = F.interpolate(
            t, size=size, mode=preprocess.interpolation, align_corners=False, antialias=True
        )
    if preprocess.crop_size:
        h, w = t.shape[-2:]
        c = preprocess.crop_size
        top, left = max(0, (h - c) // 2), max(0, (w - c) // 2)
        t = t[..., top : top + c, left : left + c]
    mean = torch.tensor(preprocess.mean).view(1, -1, 1, 1)
    std = torch.tensor(preprocess.std).view(1, -1, 1, 1)
    return (t - mean) / std


def describe_model_dir(path: Path | str) -> dict:
    """Read the descriptor of a saved model directory (``model.json`` + weights)."""
    path = Path(path)
    descriptor = path / DESCRIPTOR_FILE
    if not descriptor.is_file():
        raise FileNotFoundError(f"{descriptor} not found: not a hardbench model directory")
    info = json.loads(descriptor.read_text())
    info["weights_file"] = str(path / info.pop("weights"))
    return info


class SplitPredictor:
    """Callable class: a batch with ``sample_id`` and flattened ``input`` in, predictions out.

    Args:
        model: Registered model name (ignored when ``model_dir`` is given).
        input_shape: Shape of one stored input, e.g. (1, 8, 8).
        num_classes: Output size (default: the model's or the descriptor's).
        model_dir: A saved model directory (``model.json`` + weights), e.g. an MLflow
            ``runs:/<id>/model`` artifact downloaded to disk.
        pretrained: Load the registry's pretrained weights from the local hub cache.
        weights_file: Load this local state dict.
        model_kwargs: Model options.
        device: Torch device; ``"auto"`` picks CUDA when there is one.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        input_shape: tuple[int, ...],
        num_classes: int | None = None,
        model_dir: str | None = None,
        pretrained: bool = False,
        weights_file: str | None = None,
        model_kwargs: dict | None = None,
        device: str = "auto",
    ) -> None:
        kwargs = dict(model_kwargs or {})
        if model_dir is not None:
            info = describe_model_dir(model_dir)
            model, kwargs, weights_file = info["model"], info["model_kwargs"], info["weights_file"]
            num_classes = num_classes or info["num_classes"]
        if model is None:
            raise ValueError("give a registered model name or a model_dir")
        self.config = get_model_config(model)
        self.input_shape = tuple(input_shape)
        self.device = torch.device(
            "cuda"
            if device == "auto" and torch.cuda.is_available()
            else "cpu"
            if device == "auto"
            else device
        )
        self.model = (
            create_model(
                model,
                num_classes=num_classes,
                input_shape=self.input_shape,
                pretrained=pretrained,
                weights_file=weights_file,
                **kwargs,
            )
            .to(self.device)
            .eval()
        )

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict a batch: returns ``sample_id``, ``pred`` (argmax) and ``conf`` (its probability)."""
        flat = batch["input"]
        flat = np.stack(flat) if flat.dtype == object else flat
        x = prepare_inputs(flat.reshape(len(flat), *self.input_shape), self.config.preprocess).to(
            self.device
        )
        probs = torch.softmax(self.model(x).float(), dim=1).cpu().numpy()
        return {
            "sample_id": np.asarray(batch["sample_id"]),
            "pred": probs.argmax(1),
            "conf": probs.max(1),
        }
