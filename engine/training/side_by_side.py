"""Train R small models side by side in one process, each with its own seed.

Used by the text tasks (QA, seq2seq), whose confusion needs every replica's
distributions in one place. Each replica has its own initialization (the caller
builds the models from their seeds), its own data order (a generator seeded by
``[seed, 1]``) and its own AdamW state with a linear decay of the learning rate to 0
over all steps. The replicas take turns one epoch at a time, so after each epoch
all of them can be evaluated together.

A run can stop and continue: ``on_checkpoint`` receives, after each epoch's steps,
everything the next epochs depend on (weights, optimizer and schedule states, the
data-order generators); ``resume`` takes such a state back, so the continued run
equals an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Continuation:
    """How a side-by-side run continues and what it reports.

    Attributes:
        resume: A state from ``on_checkpoint`` (as ``torch.load`` returns it), or None
            to start from the seeds.
        on_checkpoint: Called as ``on_checkpoint(epoch, state)`` after each epoch's
            steps; ``state`` loads with ``torch.load(weights_only=True)``.
        report_epochs: Epochs whose ``after_epoch`` the caller wants (default all;
            the others are trained through, a replay).
        until_epoch: Stop after this epoch (the schedule still spans every epoch).
    """

    resume: dict | None = None
    on_checkpoint: Callable[[int, dict], None] | None = None
    report_epochs: Collection[int] | None = None
    until_epoch: int | None = None


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
    continuation: Continuation | None = None,
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
        after_epoch: Called with ``(epoch, mean training loss of each model)`` for every
            epoch in ``continuation.report_epochs`` (all by default).
        continuation: Resume state, checkpoint callback and which epochs to report.

    Returns:
        The trained models.

    Raises:
        ValueError: Without training samples, or for a resume state of other models.
    """
    if len(train_idx) == 0:
        raise ValueError("no training samples")
    cont = continuation or Continuation()
    opts = [torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=weight_decay) for m in models]
    steps = epochs * -(-len(train_idx) // batch_size)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / steps) for o in opts]
    gens = [np.random.default_rng([s, 1]) for s in seeds]

    def report(epoch: int, losses: list[float]) -> None:
        if cont.report_epochs is None or epoch in cont.report_epochs:
            after_epoch(epoch, losses)

    start = 0
    if cont.resume is not None:
        state = cont.resume
        if list(state["seeds"]) != list(seeds):
            raise ValueError(f"checkpoint was written for seeds {state['seeds']}, not {seeds}")
        for i, (model, opt, sched, gen) in enumerate(zip(models, opts, scheds, gens, strict=True)):
            model.load_state_dict(state["models"][i])
            opt.load_state_dict(state["optimizers"][i])
            sched.load_state_dict(state["schedulers"][i])
            gen.bit_generator.state = _rng_state(state["rngs"][i])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["epoch"]) + 1
        report(start - 1, [float(x) for x in state["losses"]])  # may not have been reported
    last = epochs - 1 if cont.until_epoch is None else min(cont.until_epoch, epochs - 1)
    for epoch in range(start, last + 1):
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
        if cont.on_checkpoint is not None:
            cont.on_checkpoint(
                epoch,
                {
                    "epoch": epoch,
                    "seeds": list(seeds),
                    "losses": torch.tensor(losses, dtype=torch.float64),
                    "models": [
                        {k: v.detach().cpu() for k, v in m.state_dict().items()} for m in models
                    ],
                    "optimizers": [o.state_dict() for o in opts],
                    "schedulers": [s.state_dict() for s in scheds],
                    "rngs": [_rng_tensor(g.bit_generator.state) for g in gens],
                    "torch_rng": torch.get_rng_state(),
                },
            )
        report(epoch, losses)
    return models


def _rng_tensor(state: dict) -> torch.Tensor:
    """A PCG64 generator's state as a uint8 tensor (``weights_only`` loads it back)."""
    words = (state["state"]["state"], state["state"]["inc"], state["has_uint32"], state["uinteger"])
    raw = b"".join(int(w).to_bytes(16, "little") for w in words)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).clone()


def _rng_state(tensor: torch.Tensor) -> dict:
    raw = bytes(tensor.numpy().tobytes())
    state, inc, has, value = (int.from_bytes(raw[i : i + 16], "little") for i in range(0, 64, 16))
    return {
        "bit_generator": "PCG64",
        "state": {"state": state, "inc": inc},
        "has_uint32": has,
        "uinteger": value,
    }
