"""Train R small models side by side in one process, each with its own seed.

Used by the text tasks (QA, seq2seq), whose confusion needs every replica's
distributions in one place. Each replica has its own initialization (the caller
builds the models from their seeds), its own data order (a generator seeded by
``[seed, 1]``) and its own AdamW state with a linear decay of the learning rate to 0
over all steps. The replicas take turns one epoch at a time, so after each epoch
all of them can be evaluated together.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def train_side_by_side(
    models: list[torch.nn.Module],
    seeds: list[int],
    train_idx: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    batch_loss: Callable[[torch.nn.Module, np.ndarray], torch.Tensor],
    after_epoch: Callable[[int, list[float]], None],
) -> list[torch.nn.Module]:
    """Run ``epochs`` passes of minibatch AdamW over ``train_idx`` for every model.

    Args:
        models: The R models (already initialized from their seeds).
        seeds: Their seeds (data order).
        train_idx: Int sample indices to train on.
        epochs: Passes over ``train_idx``.
        batch_size: Samples per step.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        batch_loss: ``(model, sample indices) -> scalar loss`` (mean over the batch).
        after_epoch: Called with ``(epoch, mean training loss of each model)``.

    Returns:
        The trained models.
    """
    if len(train_idx) == 0:
        raise ValueError("no training samples")
    opts = [torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=weight_decay) for m in models]
    steps = epochs * -(-len(train_idx) // batch_size)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / steps) for o in opts]
    gens = [np.random.default_rng([s, 1]) for s in seeds]
    for epoch in range(epochs):
        losses = []
        for model, opt, sched, gen in zip(models, opts, scheds, gens, strict=True):
            model.train()
            order = gen.permutation(train_idx)
            total = 0.0
            for a in range(0, len(order), batch_size):
                idx = order[a : a + batch_size]
                loss = batch_loss(model, idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
            losses.append(total / len(order))
        after_epoch(epoch, losses)
    return models
