"""Stored inputs -> model inputs: what fine-tuning and evaluation both feed a model.

Fine-tuning (:mod:`engine.training.finetune`) and every predictor
(:mod:`engine.evaluation.predictor`) turn the dataset cache's stored inputs into a
model's inputs through this one function, so a model is evaluated through exactly the
transform it was trained with.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.models import Preprocess
from engine.training.classification import as_input


def prepare_inputs(x: np.ndarray, preprocess: Preprocess | None) -> torch.Tensor:
    """Stored inputs (B, C, H, W) -> model inputs, following ``preprocess``.

    A grey image meets a 3-channel normalisation by repeating its channel; resizing
    scales the shorter side to ``resize_size`` (antialiased), then a centre crop of
    ``crop_size`` is taken and the channels are normalised. Without ``preprocess`` the
    inputs go as they are stored (token ids stay integers).
    """
    if preprocess is None:
        return as_input(x)
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
