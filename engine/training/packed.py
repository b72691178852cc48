"""Packed seed ensembles: R replicas of one small model trained in one process with torch.func.

The R replicas' parameters and buffers are stacked along a new leading dimension
(``stack_module_state``) and one ``vmap`` of ``functional_call`` runs all R forward
and backward passes as batched kernels. Each replica keeps everything a separate run
would have: its own seed (initialisation), its own data order (a generator seeded
like :func:`engine.training.train`'s), its own optimizer state (SGD and AdamW act
elementwise, so one optimizer over the stacked tensors is R independent ones) and its
own BatchNorm statistics: in train mode BatchNorm normalises each replica's batch by
that batch's statistics and updates that replica's slice of the stacked running mean
and variance in place (vmap maps the in-place update onto the slice), in eval mode it
reads them. The logits of replica r therefore equal those of
``train(recipe.with_seed(seeds[r]))`` up to floating-point reassociation inside the
batched kernels.

Why ``vmap`` rather than a hand-packed network of grouped convolutions
(Packed-Ensembles: R replicas as one model with ``groups=R``): on the CPUs here both
run a packed BatchNorm CNN step at the same speed (19-26 ms against 20-23 ms for 8
replicas of ``strided_cnn`` at batch 128: torch's batching rule for a convolution
with stacked weights is that grouped convolution), and ``vmap`` packs any registered
model with BatchNorm as it is, where grouping needs a packed twin of every
architecture. Dropout is refused: its masks would come from one generator for all R
replicas, unlike separate runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from engine.models import create_model
from engine.scores.dynamics import NOT_PRESENTED
from engine.spec.model_recipes import TrainRecipe
from engine.spec.training import PACK_ENGINES
from engine.training.classification import (
    INFER_BATCH_SIZE,
    as_input,
    batch_fetcher,
    has_batchnorm,
    infer,
    make_optimizer,
    recipe_key,
)

PackedEpochCallback = Callable[[int, np.ndarray], None]  # (epoch, logits (R, N, K))


DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                   nn.FeatureAlphaDropout)  # fmt: skip  # draw random masks in train mode


class PackedModelError(ValueError):
    """A model that cannot be packed (it draws random numbers in its forward pass)."""


def unpackable_reason(model: nn.Module, name: str) -> str | None:
    """Why ``model`` cannot train as a packed replica, or None when it can.

    Args:
        model: An instance of the replica architecture (a meta-device one will do).
        name: The registry name, for the message.
    """
    for module in model.modules():
        if isinstance(module, DROPOUT_MODULES) and module.p > 0:
            return (
                f"model {name!r} uses dropout ({type(module).__name__}, p={module.p}), whose "
                "random masks in a packed ensemble would differ from separate runs: set "
                "replicas.pack_size: 1 (one worker per replica) or a model without dropout"
            )
    return None


NOMINAL_INPUT_SHAPES = ((3, 32, 32), (48,))  # an image and a token-id row, to build a model


def recipe_unpackable_reason(recipe: TrainRecipe) -> str | None:
    """Why ``recipe``'s model cannot pack, found before any data is read (spec validation).

    The model is built on the meta device (no memory, no weights) for a nominal image
    and a nominal token-id input; the modules, not their sizes, decide. None when it
    packs, or when no nominal input builds it (the check at training time still runs).
    """
    for shape in NOMINAL_INPUT_SHAPES:
        try:
            with torch.device("meta"):
                model = create_model(
                    recipe.model, num_classes=2, input_shape=shape, **recipe.model_kwargs
                )
        except Exception:  # another input kind, or weights the meta device cannot hold
            continue
        return unpackable_reason(model, recipe.model)
    return None


class PackedEnsemble:
    """R copies of one architecture with stacked parameters.

    Attributes:
        base: A meta-device copy of the model that ``functional_call`` runs.
        params: Name -> stacked parameter of shape (R, *shape), a leaf that requires grad.
        buffers: Name -> stacked buffer of shape (R, *shape).
    """

    def __init__(self, models: list[nn.Module]) -> None:
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        self.buffers = buffers
        self.base = copy.deepcopy(models[0]).to("meta")
        self.size = len(models)
        self.batchnorm = has_batchnorm(self.base)

    def forward_one(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        """One replica's logits (B, K) from its own parameters and buffers (what vmap maps)."""
        return functional_call(self.base, (params, buffers), (x,))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per-replica logits for per-replica inputs: (R, B, ...) -> (R, B, K)."""
        return vmap(self.forward_one)(self.params, self.buffers, x)

    def logits_shared(self, x: torch.Tensor) -> torch.Tensor:
        """Every replica's logits for the same inputs: (B, ...) -> (R, B, K)."""
        return vmap(self.forward_one, in_dims=(0, 0, None))(self.params, self.buffers, x)

    def replica_state_dict(self, r: int) -> dict[str, torch.Tensor]:
        """Replica r's parameters and buffers as an ordinary ``state_dict``."""
        return {k: v[r].detach().clone() for k, v in {**self.params, **self.buffers}.items()}


def resolve_pack_engine(engine: str, model: nn.Module, device: str | torch.device) -> str:
    """The engine a pack runs: ``vmap`` or ``loop`` (``auto``: by model and device).

    ``vmap`` batches the R replicas' kernels; ``loop`` steps the replicas one after the
    other inside the pack (each step exactly a separate run's). ``auto`` picks ``loop``
    for a model with convolutions on a CPU and ``vmap`` otherwise, as measured on 2 CPU
    cores: the MLP digits replicas train 1.47x faster under ``vmap`` than in a loop
    (tests/perf/results/training.md), the BatchNorm CNN Fashion-MNIST replicas 0.76x
    (tests/perf/results/replicas.md: a convolution batched over replicas is one
    grouped convolution, which oneDNN runs slower than R plain ones at these widths).
    """
    if engine not in PACK_ENGINES:
        raise ValueError(f"pack engine must be one of {', '.join(PACK_ENGINES)}, got {engine!r}")
    if engine != "auto":
        return engine
    convolutional = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return "loop" if convolutional and torch.device(device).type == "cpu" else "vmap"


class _VmapStepper:
    """The R replicas as one stacked network: one batched step for all of them."""

    def __init__(
        self,
        models: list[nn.Module],
        recipe: TrainRecipe,
        total_steps: int,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.autocast = autocast
        self.pack = PackedEnsemble(models)
        holder = nn.Module()  # lets make_optimizer see the stacked tensors as parameters
        for i, p in enumerate(self.pack.params.values()):
            holder.register_parameter(f"p{i}", nn.Parameter(p, requires_grad=True))
        self.pack.params = dict(zip(self.pack.params, holder.parameters(), strict=True))
        self.optimizer = make_optimizer(recipe, holder)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=total_steps
        )
        pack = self.pack

        def loss_one(
            params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            logits = pack.forward_one(params, buffers, x)
            return F.cross_entropy(logits, y), (logits.argmax(dim=1) == y).to(torch.int8)

        self.batched_loss = vmap(loss_one)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step of every replica on its own batch: (R, B, ...) -> int8 (R, B)."""
        self.pack.base.train()
        with torch.autocast(x.device.type, dtype=self.autocast or torch.float32,
                            enabled=self.autocast is not None):  # fmt: skip
            losses, correct = self.batched_loss(self.pack.params, self.pack.buffers, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # replica r's gradient only reaches its own slice
        self.optimizer.step()
        self.scheduler.step()
        return correct.detach()

    def state(self) -> dict:
        """Stacked parameters and buffers, the one optimizer and schedule."""
        return {"params": {k: v.detach() for k, v in self.pack.params.items()},
                "buffers": {k: v.detach() for k, v in self.pack.buffers.items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}  # fmt: skip

    @torch.no_grad()
    def load(self, state: dict) -> None:
        """Continue from :meth:`state`'s dict (a checkpoint before buffers were saved has none)."""
        for name, value in state["params"].items():
            self.pack.params[name].copy_(value)
        for name, value in state.get("buffers", {}).items():  # BatchNorm statistics
            self.pack.buffers[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def logits(self, inputs: np.ndarray, device: str | torch.device) -> np.ndarray:
        """Every replica's eval-mode logits on ``inputs``: float32 (R, N, K)."""
        return infer_packed(self.pack, inputs, device=device, autocast=self.autocast)

    def ensemble(self) -> PackedEnsemble:
        """The trained replicas, stacked."""
        return self.pack


class _LoopStepper:
    """The R replicas as R modules, each with its own optimizer and schedule, stepped in turn."""

    def __init__(self, models: list[nn.Module], recipe: TrainRecipe, total_steps: int) -> None:
        self.models = models
        self.optimizers = [make_optimizer(recipe, m) for m in models]
        self.schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total_steps)
                           for o in self.optimizers]  # fmt: skip

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step of every replica on its own batch: (R, B, ...) -> int8 (R, B)."""
        correct = []
        for r, (model, opt, sched) in enumerate(
            zip(self.models, self.optimizers, self.schedulers, strict=True)
        ):
            model.train()
            logits = model(x[r])
            loss = F.cross_entropy(logits, y[r])
            correct.append((logits.detach().argmax(dim=1) == y[r]).to(torch.int8))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        return torch.stack(correct)

    def state(self) -> dict:
        """Stacked parameters and buffers (as the vmap engine's), per-replica optimizers."""
        stacked = {k: torch.stack([m.state_dict()[k].detach() for m in self.models])
                   for k in self.models[0].state_dict()}  # fmt: skip
        names = dict(self.models[0].named_parameters())
        return {"params": {k: v for k, v in stacked.items() if k in names},
                "buffers": {k: v for k, v in stacked.items() if k not in names},
                "optimizers": [o.state_dict() for o in self.optimizers],
                "schedulers": [s.state_dict() for s in self.schedulers]}  # fmt: skip

    @torch.no_grad()
    def load(self, state: dict) -> None:
        """Continue from :meth:`state`'s dict."""
        for r, model in enumerate(self.models):
            model.load_state_dict({k: v[r] for k, v in {**state["params"],
                                                        **state["buffers"]}.items()})  # fmt: skip
        for opt, saved in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        for sched, saved in zip(self.schedulers, state["schedulers"], strict=True):
            sched.load_state_dict(saved)

    def logits(self, inputs: np.ndarray, device: str | torch.device) -> np.ndarray:
        """Every replica's eval-mode logits on ``inputs``: float32 (R, N, K)."""
        return np.stack([infer(m, inputs, device=device) for m in self.models])

    def ensemble(self) -> PackedEnsemble:
        """The trained replicas, stacked."""
        return PackedEnsemble(self.models)


def train_packed(
    recipe: TrainRecipe,
    seeds: list[int],
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    num_classes: int,
    x_score: np.ndarray | None = None,
    on_epoch: PackedEpochCallback | None = None,
    device: str | torch.device = "cpu",
    resume: dict | None = None,
    on_checkpoint: Callable[[int, dict], None] | None = None,
    report_epochs: Collection[int] | None = None,
    until_epoch: int | None = None,
    on_presentations: Callable[[int, np.ndarray], None] | None = None,
    engine: str = "vmap",
    autocast: torch.dtype | None = None,
) -> PackedEnsemble:
    """Train ``len(seeds)`` replicas of ``recipe.model`` at once; replica r uses ``seeds[r]``.

    Args:
        recipe: Model and optimisation settings (its ``seed`` is ignored: ``seeds`` rule).
        seeds: One seed per replica (initialisation and data order).
        x_train: Float32 inputs of shape (N_train, *input_shape).
        y_train: Int labels of shape (N_train,).
        num_classes: K.
        x_score: Inputs (N_score, *input_shape) predicted after every epoch.
        on_epoch: Called as ``on_epoch(epoch, logits)`` with float32 logits of shape
            (R, N_score, K) after each epoch in ``report_epochs``.
        device: Torch device.
        resume: A state from ``on_checkpoint``; training continues after its epoch.
        on_checkpoint: Called as ``on_checkpoint(epoch, state)`` after each epoch's
            steps; ``state`` loads with ``torch.load(weights_only=True)``.
        report_epochs: Epochs whose predictions ``on_epoch`` receives (default all).
        until_epoch: Stop after this epoch (the schedule still spans ``recipe.epochs``).
        on_presentations: Called as ``on_presentations(epoch, records)`` after each
            epoch's steps with int8 (R, N_train) presentation records, as in
            :func:`engine.training.train` (1 right, 0 wrong, -1 not presented).
        engine: ``vmap``, ``loop`` or ``auto`` (:func:`resolve_pack_engine`); both
            engines train the same replicas (the loop's steps are exactly separate runs').
        autocast: Run the ``vmap`` engine's forward passes under autocast to this
            dtype (``torch.bfloat16`` on a GPU; the GPU benchmark's mixed precision);
            None (the default) trains in float32 as separate runs do.

    Returns:
        The trained ensemble.

    Raises:
        PackedModelError: For a model with dropout.
        ValueError: If ``resume`` was written for another recipe, seeds or engine.
    """
    if on_epoch is not None and x_score is None:
        raise ValueError("on_epoch needs x_score, the inputs to predict on after every epoch")
    models = []
    for seed in seeds:
        torch.manual_seed(seed)  # the same initialisation as train() with this seed
        models.append(
            create_model(
                recipe.model,
                num_classes=num_classes,
                input_shape=tuple(x_train.shape[1:]),
                **recipe.model_kwargs,
            )
        )
    reason = unpackable_reason(models[0], recipe.model)
    if reason is not None:
        raise PackedModelError(reason)
    engine = resolve_pack_engine(engine, models[0], device)
    batchnorm = has_batchnorm(models[0])
    models = [m.to(device) for m in models]
    steps_per_epoch = max(1, -(-len(x_train) // recipe.batch_size))
    total_steps = recipe.epochs * steps_per_epoch
    if engine == "vmap":
        stepper = _VmapStepper(models, recipe, total_steps, autocast)
    elif autocast is not None:
        raise ValueError("autocast applies to the vmap pack engine")
    else:
        stepper = _LoopStepper(models, recipe, total_steps)
    fetch = batch_fetcher(x_train, device)
    yt = torch.as_tensor(y_train, dtype=torch.long, device=device)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    key = {"recipe": recipe_key(recipe.with_seed(0)), "seeds": list(seeds)}

    def report(epoch: int) -> None:
        if on_epoch is None or (report_epochs is not None and epoch not in report_epochs):
            return
        on_epoch(epoch, stepper.logits(x_score, device))

    start_epoch = 0
    if resume is not None:
        if {k: resume.get(k) for k in key} != key:
            raise ValueError("checkpoint was written for another packed recipe or seeds")
        if resume.get("engine", "vmap") != engine:  # checkpoints before engines were vmap's
            raise ValueError(
                f"checkpoint was written by the {resume.get('engine', 'vmap')} pack engine, "
                f"not {engine}: resume with replicas.pack_engine: {resume.get('engine', 'vmap')}"
            )
        stepper.load(resume)
        for g, state in zip(gens, resume["order_rng"], strict=True):
            g.set_state(state)
        start_epoch = int(resume["epoch"]) + 1
        if on_presentations is not None and "presented" in resume:
            on_presentations(start_epoch - 1, resume["presented"].numpy())
        report(start_epoch - 1)

    last = recipe.epochs - 1 if until_epoch is None else min(until_epoch, recipe.epochs - 1)
    for epoch in range(start_epoch, last + 1):
        perms = torch.stack([torch.randperm(len(x_train), generator=g) for g in gens]).to(device)
        presented = torch.full(
            (len(seeds), len(x_train)), NOT_PRESENTED, dtype=torch.int8, device=device
        )
        for start in range(0, len(x_train), recipe.batch_size):
            idx = perms[:, start : start + recipe.batch_size]  # (R, B)
            if idx.shape[1] < 2 and batchnorm:
                continue  # BatchNorm cannot normalise a batch of one (as train() skips it)
            presented.scatter_(1, idx, stepper.step(fetch(idx), yt[idx]))
        if on_presentations is not None:
            on_presentations(epoch, presented.cpu().numpy())
        if on_checkpoint is not None:
            state = {**key, "engine": engine, "epoch": epoch, **stepper.state(),
                     "order_rng": [g.get_state() for g in gens]}  # fmt: skip
            if on_presentations is not None:
                state["presented"] = presented.cpu()
            on_checkpoint(epoch, state)
        report(epoch)
    return stepper.ensemble()


@torch.no_grad()
def infer_packed(
    pack: PackedEnsemble,
    inputs: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = INFER_BATCH_SIZE,
    autocast: torch.dtype | None = None,
) -> np.ndarray:
    """Every replica's logits on ``inputs`` (N, ...) in eval mode: float32 (R, N, K).

    BatchNorm reads each replica's running statistics; the pack's mode is restored after.
    ``autocast`` (e.g. ``torch.bfloat16``) runs the forward passes under autocast.
    """
    was_training = pack.base.training
    pack.base.eval()
    try:
        out = []
        for start in range(0, len(inputs), batch_size):
            x = as_input(inputs[start : start + batch_size], device)
            with torch.autocast(x.device.type, dtype=autocast or torch.float32,
                                enabled=autocast is not None):  # fmt: skip
                out.append(pack.logits_shared(x).float().cpu())
    finally:
        pack.base.train(was_training)
    return torch.cat(out, dim=1).numpy()
