"""Fine-tuning a (pretrained) registered model: options, transforms, the per-worker loop.

The loop runs on every Ray Train worker (:mod:`engine.distributed.finetune`) and, with
``world == 1`` and no process group, in a plain process. Each worker takes its shard of
every epoch's permutation the way ``torch.utils.data.DistributedSampler`` does
(``perm[rank::world]``), in local batches of ``batch_size / world``, so the global
batch of W workers is exactly the batch of one worker and DDP's averaged gradient is
the single-worker gradient. The last incomplete global batch is dropped (as
``drop_last``), which keeps every worker's step count equal.

Inputs come from the dataset cache a batch at a time (uint8 -> float32 for just those
rows), go through the model's transform (:func:`finetune_preprocess`: grey repeated to
RGB, resize to ``image_size``, centre crop, normalise; the same at build time and in
``hardbench eval``), then the seeded augmentation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.models import Preprocess, classifier_of, create_model, get_model_config
from engine.spec.finetune import WEIGHTS_PRETRAINED, FinetuneOptions
from engine.training.augment import AUGMENT_SEED_OFFSET, augment_batch
from engine.training.inputs import prepare_inputs


def finetune_preprocess(model: str, image_size: int | None) -> Preprocess:
    """The transform a fine-tuned ``model`` sees, in training and in every evaluation.

    The registry's preprocessing (mean, std, interpolation), resized and centre-cropped
    to ``image_size`` when given. A model without one (trained from scratch on the
    stored inputs) gets only the resize.
    """
    base = get_model_config(model).preprocess or Preprocess()
    if image_size is None:
        return base
    return Preprocess(image_size, image_size, base.mean, base.std, base.interpolation)


def build_model(name: str, *, num_classes: int, input_shape: tuple[int, ...],
                weights: str | None, model_kwargs: dict, seed: int) -> nn.Module:  # fmt: skip
    """The model to fine-tune: pretrained weights with a fresh K-class head, or from scratch.

    Args:
        name: Registered model.
        num_classes: K, the benchmark's classes.
        input_shape: One stored input (C, H, W) (for models built from it).
        weights: ``pretrained`` (the registry's weights), a state-dict file, or None.
        model_kwargs: Model options.
        seed: Seeds the new head (and a from-scratch model's initialisation).

    Raises:
        FileNotFoundError: For missing weights (the message says where it looked).
        ValueError: For weights of another architecture (``WeightsError``).
    """
    torch.manual_seed(seed)
    if get_model_config(name).preprocess is not None:
        input_shape = None  # it sees the transform's output, not the stored size
    if weights is None:
        return create_model(name, num_classes=num_classes, input_shape=input_shape, **model_kwargs)
    return create_model(
        name, num_classes=num_classes, input_shape=input_shape, reset_head=True,
        pretrained=weights == WEIGHTS_PRETRAINED,
        weights_file=None if weights == WEIGHTS_PRETRAINED else weights, **model_kwargs,
    )  # fmt: skip


def freeze_backbone(model: nn.Module, name: str) -> list[nn.Parameter]:
    """Linear probe: every parameter but the head's stops learning; returns the head's."""
    head = classifier_of(model, name)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    return list(head.parameters())


def transform(x: np.ndarray, preprocess: Preprocess, device: torch.device) -> torch.Tensor:
    """Stored float inputs (B, C, H, W) -> model inputs on ``device`` (see :func:`finetune_preprocess`)."""
    return prepare_inputs(np.asarray(x, np.float32), preprocess).to(device)


def lr_factor(step: int, total: int, warmup_steps: int, schedule: str) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of ``total``: warm-up, then the schedule."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / span))


def epoch_shard(
    n: int, epoch: int, seed: int, rank: int, world: int, global_batch: int
) -> np.ndarray:
    """This worker's positions (into the training split) for ``epoch``, in step order.

    One permutation per epoch (seeded), cut to whole global batches (at least one:
    all of a split smaller than a batch), then ``perm[rank::world]``: step i of every
    worker together covers ``perm[i * B : (i + 1) * B]``.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).numpy()
    used = max(global_batch, (n // global_batch) * global_batch) if n >= global_batch else n
    return perm[:used][rank::world]


@dataclass
class LoopState:
    """What a checkpoint holds: the model, optimizer, scheduler, epoch and RNG."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    augment_gen: torch.Generator
    epoch: int = 0  # epochs completed

    def state_dict(self, core: nn.Module) -> dict:
        """A picklable checkpoint (``core``: the model without its DDP wrapper)."""
        return {
            "model": core.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "augment_gen": self.augment_gen.get_state(),
            "epoch": self.epoch,
        }

    def load(self, core: nn.Module, state: dict) -> None:
        """Restore a checkpoint of :meth:`state_dict` into this loop."""
        core.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.augment_gen.set_state(state["augment_gen"])
        self.epoch = int(state["epoch"])


def make_loop(core: nn.Module, trainable: list[nn.Parameter], opts: FinetuneOptions,
              steps_per_epoch: int, device: torch.device, seed: int, rank: int) -> LoopState:  # fmt: skip
    """Optimizer, warm-up + schedule, AMP scaler and augmentation generator for a loop."""
    if opts.optimizer == "sgd":
        optimizer = torch.optim.SGD(trainable, lr=opts.lr, momentum=0.9, nesterov=True,
                                    weight_decay=opts.weight_decay)  # fmt: skip
    else:
        optimizer = torch.optim.AdamW(trainable, lr=opts.lr, weight_decay=opts.weight_decay)
    total = opts.epochs * steps_per_epoch
    warm = round(opts.warmup * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warm, opts.schedule)
    )
    scaler = None
    if amp_dtype(opts, device) == torch.float16:
        scaler = torch.amp.GradScaler("cuda")
    gen = torch.Generator().manual_seed(seed + AUGMENT_SEED_OFFSET + 104729 * rank)
    return LoopState(core, optimizer, scheduler, scaler, gen)


def amp_dtype(opts: FinetuneOptions, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bfloat16 or float16 on a GPU with ``amp``, else None (float32)."""
    if not opts.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


EpochEnd = Callable[[int, dict, LoopState], None]  # (epoch done, metrics, state) after each epoch
StepDone = Callable[[int, int, int], None]  # (epoch being trained, steps done, steps in it)
STEP_EVERY_S = 5.0  # seconds between step callbacks


def run_epochs(model: nn.Module, core: nn.Module, name: str, inputs: object, labels: np.ndarray,
               opts: FinetuneOptions, loop: LoopState, *, seed: int, rank: int, world: int,
               device: torch.device, on_epoch: EpochEnd,
               on_step: StepDone | None = None) -> None:  # fmt: skip
    """Train from ``loop.epoch`` to ``opts.epochs``, calling ``on_epoch`` after each.

    Args:
        model: What the forward pass calls (the DDP wrapper on several workers).
        core: The model itself (its head for a linear probe; its state for checkpoints).
        name: Registered model name.
        inputs: The training split's stored inputs (array or cached view), (N, C, H, W).
        labels: Int64 (N,) class indices.
        opts: The fine-tune options.
        loop: Optimizer and co. (restored from a checkpoint when resuming).
        seed: Seeds every epoch's permutation (the same on every worker).
        rank: This worker's rank (its shard of each permutation).
        world: The number of workers.
        device: Where the model is.
        on_epoch: Called with (epoch number, ``{"train_loss", "train_accuracy",
            "seconds", "images_per_s"}`` of this worker, the state) after each epoch.
        on_step: Called with (epoch number, steps done, steps in the epoch) at most
            every ``STEP_EVERY_S`` seconds (progress).
    """
    import time

    preprocess = finetune_preprocess(name, opts.image_size)
    dtype = amp_dtype(opts, device)
    head = classifier_of(core, name) if opts.mode == "linear_probe" else None
    shape = tuple(inputs.shape[1:])
    for epoch in range(loop.epoch, opts.epochs):
        if head is not None:
            core.eval()  # frozen backbone: batch-norm statistics and dropout stay as trained
            head.train()
        else:
            model.train()
        pos = epoch_shard(len(labels), epoch, seed, rank, world, opts.batch_size)
        local = max(1, opts.local_batch if len(labels) >= opts.batch_size else len(pos))
        total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
        steps, told = len(pos) // local, start
        for s in range(0, len(pos) - local + 1, local):
            idx = np.sort(pos[s : s + local])  # sorted rows read the memory map in order
            x = transform(inputs[idx].reshape(len(idx), *shape), preprocess, device)
            if opts.augment:
                x = augment_batch(x, opts.augment, loop.augment_gen)
            y = torch.as_tensor(labels[idx], dtype=torch.long, device=device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=opts.label_smoothing)
            loop.optimizer.zero_grad(set_to_none=True)
            if loop.scaler is not None:
                loop.scaler.scale(loss).backward()
                loop.scaler.step(loop.optimizer)
                loop.scaler.update()
            else:
                loss.backward()
                loop.optimizer.step()
            loop.scheduler.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(idx)
            if on_step is not None and time.perf_counter() - told >= STEP_EVERY_S:
                told = time.perf_counter()
                on_step(epoch + 1, s // local + 1, steps)
        loop.epoch = epoch + 1
        seconds = time.perf_counter() - start
        on_epoch(epoch + 1, {"train_loss": total_loss / max(seen, 1),
                             "train_accuracy": correct / max(seen, 1), "seconds": seconds,
                             "images_per_s": seen / max(seconds, 1e-9)}, loop)  # fmt: skip
