"""The ``evaluate.models[].finetune`` section: how an evaluated model is fine-tuned on Ray Train."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.spec.common import FieldError, check_gpus
from engine.spec.model_recipes import AUGMENTATIONS

MODES = ("linear_probe", "full")  # train only the new head, or every weight
SCHEDULES = ("cosine", "constant")  # the learning rate after warm-up
OPTIMIZERS = ("adamw", "sgd")  # the optimizers a fine-tune may name
WEIGHTS_PRETRAINED = "pretrained"  # evaluate.models[].weights: the registry's own weights


@dataclass(frozen=True)
class FinetuneOptions:
    """How an evaluated model is fine-tuned (``evaluate.models[].finetune``).

    Attributes:
        mode: ``linear_probe`` (only the reset head learns; the backbone, its batch-norm
            statistics included, stays bit-identical) or ``full``.
        epochs: Passes over the training split.
        optimizer: ``adamw`` or ``sgd`` (momentum 0.9, Nesterov).
        lr: Peak learning rate.
        schedule: ``cosine`` (to 0 at the last step) or ``constant``, after warm-up.
        warmup: Fraction of all steps with a linear warm-up from 0, in [0, 1).
        batch_size: Global batch (split evenly over the workers).
        weight_decay: Decoupled (adamw) or L2 (sgd) weight decay.
        label_smoothing: Cross-entropy label smoothing in [0, 1).
        amp: Mixed precision on a GPU (bfloat16 where supported, else float16 with a
            gradient scaler); CPUs always train in float32.
        image_size: Side of the square model input (resize + centre crop); None keeps
            the model's own evaluation size (224 for ImageNet models).
        augment: Seeded augmentations of each training batch (``hflip``, ``shift``).
        workers: Ray Train workers (DDP processes).
        cpus_per_worker: CPUs each worker reserves (and its torch threads).
        gpus_per_worker: GPUs each worker reserves (0: train on CPUs).
        max_failures: Worker-group restarts (from the last epoch's checkpoint) before
            the fine-tune fails.
    """

    mode: str = "full"
    epochs: int = 3
    optimizer: str = "adamw"
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup: float = 0.0
    batch_size: int = 64
    weight_decay: float = 0.05
    label_smoothing: float = 0.0
    amp: bool = True
    image_size: int | None = None
    augment: list[str] = field(default_factory=list)
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 2

    def __post_init__(self) -> None:
        choices = (("mode", MODES), ("schedule", SCHEDULES), ("optimizer", OPTIMIZERS))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise FieldError(
                    name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        for name in ("epochs", "batch_size", "workers"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.workers:
            raise FieldError(
                "batch_size",
                f"the global batch ({self.batch_size}) must split evenly over the "
                f"{self.workers} workers",
            )
        if not self.lr > 0:
            raise FieldError("lr", f"must be > 0, got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise FieldError(
                "warmup", f"must be in [0, 1) (a fraction of the steps), got {self.warmup}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise FieldError("label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")
        if self.weight_decay < 0:
            raise FieldError("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.image_size is not None and self.image_size < 8:
            raise FieldError("image_size", f"must be >= 8 pixels, got {self.image_size}")
        bad = [a for a in self.augment if a not in AUGMENTATIONS]
        if bad or len(set(self.augment)) != len(self.augment):
            raise FieldError("augment", f"must list distinct ones of {', '.join(AUGMENTATIONS)}, "
                                        f"got {self.augment}")  # fmt: skip
        if not self.cpus_per_worker > 0:
            raise FieldError("cpus_per_worker", f"must be > 0, got {self.cpus_per_worker}")
        check_gpus("gpus_per_worker", self.gpus_per_worker)
        if self.max_failures < 0:
            raise FieldError("max_failures", f"must be >= 0, got {self.max_failures}")

    @property
    def local_batch(self) -> int:
        """Samples per step on each worker."""
        return self.batch_size // self.workers
