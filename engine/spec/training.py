"""Spec sections of the training side: data, the seed replicas, their shards, the scoring pool."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.data.sources import NOISE_KINDS
from engine.shards.layout import SHARD_FORMATS
from engine.spec.common import FieldError, check_gpus
from engine.training.checkpoints import KEEP_POLICIES

SHARD_MODES = ("full", "mean", "reduced")  # what a shard stores per (sample, epoch)


@dataclass(frozen=True)
class LabelNoiseSpec:
    """Injected label noise, for label-error benchmarks.

    ``fraction`` of all samples get another label, uniformly or
    (``class_conditional``) class c -> ``confusable[c]``.
    """

    fraction: float
    kind: str = "uniform"
    seed: int = 0
    confusable: list[int] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise FieldError("fraction", f"must be in (0, 1), got {self.fraction}")
        if self.kind not in NOISE_KINDS:
            raise FieldError("kind", f"must be one of {', '.join(NOISE_KINDS)}, got {self.kind!r}")


@dataclass(frozen=True)
class DataSpec:
    """The dataset: its source, fixed train/held-out split, and what a task may add.

    ``source`` is one of the task's sources (``hardbench validate`` lists them);
    ``heldout_fraction`` of the samples (stratified per class, or by passage / first
    fact for the text tasks) are never trained on; ``label_noise`` flips a known share
    of labels (classification); ``limit`` keeps only the first samples (text corpora,
    for quick runs). Each task sets its own defaults.
    """

    source: str = "sklearn_digits"
    heldout_fraction: float = 0.4
    split_seed: int = 0
    label_noise: LabelNoiseSpec | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.heldout_fraction < 1:
            raise FieldError("heldout_fraction", f"must be in (0, 1), got {self.heldout_fraction}")
        if self.limit is not None and self.limit < 20:
            raise FieldError("limit", f"must be >= 20 or left out, got {self.limit}")


@dataclass(frozen=True)
class ReplicasSpec:
    """The seed ensemble: ``count`` replicas of ``recipe``; replica r uses seed ``recipe.seed + r``.

    The recipe's fields sit in this section itself (``model``, ``epochs``, ``lr``, ...
    for classification; ``dim``, ``layers``, ``epochs``, ... for the text tasks).

    ``num_workers`` Ray Train workers share the replicas round-robin (``"auto"``:
    one per replica, capped by what the cluster's CPUs and GPUs fit); each worker
    asks for ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs, a fraction so
    several small replicas share one GPU.

    Every replica checkpoints after each epoch (``keep_checkpoints``: the newest
    only, or ``all``); a worker group that fails is restarted up to
    ``max_failures`` times and each replica continues from its checkpoint.

    ``pack_size`` > 1 (or ``"all"``) trains that many replicas together as one packed
    ensemble (torch.func ``vmap`` over stacked parameters) in one worker: the
    workers then share packs round-robin instead of single replicas.
    """

    count: int
    recipe: object  # the task's recipe (engine.tasks: TrainRecipe, TextRecipe)
    num_workers: int | str = "auto"
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 3
    keep_checkpoints: str = "last"
    pack_size: int | str = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise FieldError("count", f"must be >= 1, got {self.count}")
        if self.num_workers != "auto" and not (
            isinstance(self.num_workers, int) and self.num_workers >= 1
        ):
            raise FieldError(
                "num_workers", f"must be 'auto' or an integer >= 1, got {self.num_workers!r}"
            )
        if not self.cpus_per_worker > 0:
            raise FieldError("cpus_per_worker", f"must be > 0, got {self.cpus_per_worker}")
        check_gpus("gpus_per_worker", self.gpus_per_worker)
        if self.max_failures < 0:
            raise FieldError("max_failures", f"must be >= 0, got {self.max_failures}")
        if self.pack_size != "all" and not (
            isinstance(self.pack_size, int) and self.pack_size >= 1
        ):
            raise FieldError(
                "pack_size", f"must be 'all' or an integer >= 1, got {self.pack_size!r}"
            )
        if self.keep_checkpoints not in KEEP_POLICIES:
            raise FieldError(
                "keep_checkpoints",
                f"must be one of {', '.join(KEEP_POLICIES)}, got {self.keep_checkpoints!r}",
            )

    def seeds(self) -> list[int]:
        """The seed of every replica, in replica order."""
        return [self.recipe.seed + r for r in range(self.count)]

    def packs(self) -> list[list[int]]:
        """Replica indices of each pack, in order (one replica per pack when unpacked)."""
        size = self.count if self.pack_size == "all" else min(int(self.pack_size), self.count)
        return [list(range(s, min(s + size, self.count))) for s in range(0, self.count, size)]


@dataclass(frozen=True)
class ShardsSpec:
    """Shard layout: samples per block, storage type of probabilities, gradient epochs.

    ``grad_epochs`` lists the epochs after which input gradients are recorded (the
    ``vog`` score needs at least two). ``mode`` picks what is stored per (sample,
    epoch): ``full`` (every replica's K probabilities, loss, margin; any score),
    ``mean`` (a packed ensemble's replica-mean probabilities plus per-replica
    scalars) or ``reduced`` (the replica mean's entropy, argmax and max plus
    float16 per-replica loss, margin and correctness: no K-sized column at all).
    ``top_k`` (full mode, large K) keeps each replica's k largest probabilities and
    their classes; readers spread the rest of the mass evenly over the other classes.
    ``format`` is the file format: ``parquet`` (zstd, the default) or ``arrow``
    (uncompressed Arrow IPC, read without decoding: several times faster to score,
    about 10% larger at K=10).
    """

    block_size: int = 1024
    probs_dtype: str = "float16"
    grad_epochs: list[int] = field(default_factory=list)
    mode: str = "full"
    top_k: int | None = None
    format: str = "parquet"

    def __post_init__(self) -> None:
        if any(e < 0 for e in self.grad_epochs) or len(set(self.grad_epochs)) != len(
            self.grad_epochs
        ):
            raise FieldError(
                "grad_epochs", f"must be distinct epoch indices >= 0, got {self.grad_epochs}"
            )
        if self.block_size < 1:
            raise FieldError("block_size", f"must be >= 1, got {self.block_size}")
        if self.probs_dtype not in ("float32", "float16"):
            raise FieldError(
                "probs_dtype", f"must be one of float32, float16, got {self.probs_dtype!r}"
            )
        if self.top_k is not None and not (isinstance(self.top_k, int) and self.top_k >= 1):
            raise FieldError("top_k", f"must be an integer >= 1 or left out, got {self.top_k!r}")
        if self.top_k is not None and self.mode != "full":
            raise FieldError("top_k", f"applies to mode full, not {self.mode!r}")
        if self.top_k is not None and self.grad_epochs:
            raise FieldError("top_k", "top-k shards carry no input gradients: drop grad_epochs")
        if self.mode not in SHARD_MODES:
            raise FieldError("mode", f"must be one of {', '.join(SHARD_MODES)}, got {self.mode!r}")
        if self.format not in SHARD_FORMATS:
            raise FieldError(
                "format", f"must be one of {', '.join(SHARD_FORMATS)}, got {self.format!r}"
            )


@dataclass(frozen=True)
class ScoringSpec:
    """The scoring actor pool and what each actor reserves.

    ``num_actors`` actors (``"auto"``: one per block, as many as fit in the cluster's
    CPUs minus one left for reads), each reserving ``cpus_per_actor`` CPUs. Scoring is
    NumPy work; it asks for no GPU.
    """

    cpus_per_actor: float = 0.5
    num_actors: int | str = "auto"

    def __post_init__(self) -> None:
        if not self.cpus_per_actor > 0:
            raise FieldError("cpus_per_actor", f"must be > 0, got {self.cpus_per_actor}")
        if self.num_actors != "auto" and not (
            isinstance(self.num_actors, int) and self.num_actors >= 1
        ):
            raise FieldError(
                "num_actors", f"must be 'auto' or an integer >= 1, got {self.num_actors!r}"
            )
