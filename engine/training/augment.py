"""Seeded batch augmentation for image train loops: random horizontal flips and small shifts.

Each train loop draws its augmentation from its own ``torch.Generator`` (seeded from
the recipe's seed, its state saved in checkpoints), so every replica sees its own
augmented stream and a resumed run sees the same one an uninterrupted run does.
"""

from __future__ import annotations

import torch

SHIFT_PIXELS = 2  # ``shift`` moves each image by up to this many pixels, zero-filled
AUGMENT_SEED_OFFSET = 7919  # augmentation generator seed = recipe seed + this (not the order's)


def augment_batch(x: torch.Tensor, names: list[str], gen: torch.Generator) -> torch.Tensor:
    """Augment a batch of images (B, C, H, W); the draws come from ``gen`` (on the CPU).

    ``hflip`` mirrors each image left-right with probability 1/2; ``shift`` moves it by
    a whole number of pixels in [-SHIFT_PIXELS, SHIFT_PIXELS] along each axis, filling
    with zeros.

    Raises:
        ValueError: For inputs that are not (B, C, H, W) images (e.g. token ids).
    """
    if x.ndim != 4 or not torch.is_floating_point(x):
        raise ValueError(f"augment needs float image batches (B, C, H, W), got {tuple(x.shape)}")
    b, _, h, w = x.shape
    if "hflip" in names:
        flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if "shift" in names:
        s = SHIFT_PIXELS
        dy, dx = (torch.randint(-s, s + 1, (2, b), generator=gen)).to(x.device)
        padded = torch.nn.functional.pad(x, (s, s, s, s))
        rows = torch.arange(h, device=x.device)[None] + s - dy[:, None]  # (B, H)
        cols = torch.arange(w, device=x.device)[None] + s - dx[:, None]  # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(
            0, 3, 1, 2
        )
    return x.contiguous()
