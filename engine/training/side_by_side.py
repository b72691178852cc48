"""Train R small models side by side in one process, each with its own seed.

Used by the text tasks (QA, seq2seq), whose confusion needs every replica's
distributions in one place. Each replica has its own initialization (the caller
builds the models from their seeds), its own data order (a generator seeded by
``[seed, 1]``) and its own AdamW state with a linear decay of the learning rate to 0
over all steps. The replicas take turns one epoch at a time, so after each epoch
all of them can be evaluated together.

A :class:`~engine.training.mitigation.Mitigation` (upsampling or a curriculum, for an
evaluated model) replaces the plain shuffle: each model's epochs follow
``Mitigation.epoch_order`` drawn, as in the classification loop, from a torch generator
seeded by the model's seed. Every epoch's order is drawn before the first step, so the
learning-rate decay spans the steps actually taken (an upsampled epoch's length is
random) and a resumed run draws the same orders again from the seed.

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

from engine.training.mitigation import Mitigation

MITIGATION_KEY = "mitigation"  # checkpoint key: the method a mitigated run's orders follow


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
    mitigation: Mitigation | None = None,
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
        mitigation: Upsampling or a curriculum bound to the hardness of ``train_idx``'s
            samples (in that order), or None (or ``erm``) for a plain shuffle per epoch.

    Returns:
        The trained models.

    Raises:
        ValueError: Without training samples, for a mitigation whose scores are not one
            per training sample or that reweights losses (GroupDRO), or for a resume
            state of other models or another mitigation.
    """
    if len(train_idx) == 0:
        raise ValueError("no training samples")
    cont = continuation or Continuation()
    plans = _mitigated_orders(mitigation, train_idx, seeds, epochs)
    opts = [torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=weight_decay) for m in models]
    if plans is None:
        steps = [epochs * -(-len(train_idx) // batch_size)] * len(models)
    else:
        steps = [sum(-(-len(order) // batch_size) for order in plan) for plan in plans]
    scheds = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda t, total=total: 1 - t / total)
        for o, total in zip(opts, steps, strict=True)
    ]
    gens = [np.random.default_rng([s, 1]) for s in seeds]
    method = None if plans is None else mitigation.method

    def report(epoch: int, losses: list[float]) -> None:
        if cont.report_epochs is None or epoch in cont.report_epochs:
            after_epoch(epoch, losses)

    start = 0
    if cont.resume is not None:
        state = cont.resume
        if list(state["seeds"]) != list(seeds):
            raise ValueError(f"checkpoint was written for seeds {state['seeds']}, not {seeds}")
        if state.get(MITIGATION_KEY) != method:
            raise ValueError(
                f"checkpoint was written with mitigation {state.get(MITIGATION_KEY) or 'erm'}, "
                f"not {method or 'erm'}: the data orders differ"
            )
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
        for i, (model, opt, sched, gen) in enumerate(zip(models, opts, scheds, gens, strict=True)):
            model.train()
            order = gen.permutation(train_idx) if plans is None else plans[i][epoch]
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
                    **({} if method is None else {MITIGATION_KEY: method}),
                },
            )
        report(epoch, losses)
    return models


def _mitigated_orders(
    mitigation: Mitigation | None, train_idx: np.ndarray, seeds: list[int], epochs: int
) -> list[list[np.ndarray]] | None:
    """Every epoch's order of ``train_idx`` for each seed under ``mitigation``; None for ERM.

    The one adapter between :meth:`Mitigation.epoch_order` (positions among the training
    samples, from a torch generator) and this loop (sample indices, numpy generators):
    a generator seeded by the model's seed draws epoch 0's order, then epoch 1's, ...
    as the classification loop draws them; the positions map back through ``train_idx``.

    Raises:
        ValueError: For a mitigation with other than one score per training sample, or
            one that reweights per-sample losses (GroupDRO), which this loop does not.
    """
    if mitigation is None or mitigation.method == "erm":
        return None
    if mitigation.dro is not None:
        raise ValueError(
            "GroupDRO reweights per-sample losses; the side-by-side loop averages each "
            "batch's loss: use upsample or curriculum"
        )
    if len(mitigation.scores) != len(train_idx):
        raise ValueError(
            f"the mitigation ranks {len(mitigation.scores)} samples, but there are "
            f"{len(train_idx)} training samples"
        )
    plans = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        plans.append([train_idx[mitigation.epoch_order(e, epochs, gen).numpy()]
                      for e in range(epochs)])  # fmt: skip
    return plans


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
