"""Spec sections of the training side: data, the seed replicas, their shards, the scoring pool."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from engine.spec.common import FieldError, check_gpus
from engine.spec.model_recipes import TextRecipe, TrainRecipe
from engine.spec.sources import (
    DEFAULT_MAX_PIXELS,
    ON_BAD,
    POOL_PREFIX,
    TRAIN_PREFIX,
    Part,
    SourceConfig,
)

SHARD_MODES = ("full", "mean", "reduced")  # what a shard stores per (sample, epoch)
SHARD_FORMATS = ("parquet", "arrow")  # file formats a shard may be written in
SHARD_CHECKSUMS = ("xxh3_128", "sha256")  # checksums a shard's manifest entry may record
NOISE_KINDS = ("uniform", "class_conditional")  # how injected label noise picks the new label
KEEP_POLICIES = ("last", "all")  # keep the newest checkpoint per replica, or every epoch's
PACK_ENGINES = ("auto", "vmap", "loop")  # how a pack computes (engine.training.packed)
PREDICT_MODES = ("inline", "ray_data")  # who predicts the scoring set after every epoch
MIN_CLASSES = 2  # a classifier's class list needs at least this many names


def check_encoding(encoding: str | None) -> None:
    """Refuse a ``data.encoding`` Python has no codec for.

    Raises:
        FieldError: Naming the encoding.
    """
    import codecs

    if encoding is None:
        return
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise FieldError(
            "encoding", f"unknown encoding {encoding!r}; give a Python codec name such as "
            "utf-8, cp1252 or latin-1"
        ) from None  # fmt: skip


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
class SourceSpec:
    """One source of ``data.train`` or ``data.pool``: the source-specific fields of ``data``.

    ``label_column: null`` makes the pool unlabelled (an image folder without class
    folders is unlabelled whatever it says). Images are converted and resized as
    ``data`` says, to the training source's shape.
    """

    source: str
    path: str | None = None
    image_column: str | None = None
    text_column: str | None = None
    label_column: str | None = "label"
    id_column: str | None = None
    encoding: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None and "://" not in self.path:
            object.__setattr__(self, "path", os.path.abspath(os.path.expanduser(self.path)))
        check_encoding(self.encoding)


@dataclass(frozen=True)
class DataSpec:
    """The dataset: its source and options, the train/held-out split, what a task may add.

    ``source`` is one of the task's sources (``hardbench sources`` lists them), read
    from ``path`` (a folder, a table file or a glob; relative paths are taken from
    the working directory and stored absolute). Table sources name their columns
    (``image_column`` or ``text_column``, ``label_column``, ``id_column``,
    ``split_column``); ``class_names`` fixes the class list; images are converted to
    ``channels`` (1 or 3) and resized to ``image_size`` (an int or ``[h, w]``).
    Ingest decodes the source once into a dataset cache under ``cache_dir`` (default
    ``$HARDBENCH_CACHE_DIR`` or ``<runs>/_datasets``), keyed by its fingerprint.
    A bad sample (unreadable, not an image, over ``max_pixels``, a label outside the
    class list, ...) stops the ingest with an error naming it, or with ``on_bad:
    skip`` is left out and listed in ``dataset.json`` and the card.

    The split comes from the source (a split column, IDX train/t10k files, HF
    splits) or, where it gives none, ``heldout_fraction`` of each class (or of the
    passages / first facts for the text tasks) is held out with ``split_seed``. With
    ``pool`` (a :class:`SourceSpec`), the samples come from two sources: every
    sample of ``train`` (or of the source ``data`` itself names) is trained on, every
    sample of ``pool`` is held out and scored; the pool may be unlabelled, and
    ``pool_labels`` (a CSV/Parquet/JSONL table of ``key`` and ``label``, keys as the
    pool source spells them) attaches labels to it later.
    ``label_noise`` flips a known share of labels (classification) or gives that share
    of the text samples a wrong answer (QA: another span of the window; seq2seq:
    another sample's target; :mod:`engine.data.text_noise`); ``limit`` keeps
    that many samples for a quick run (text corpora: the first; other sources:
    evenly spaced in key order within each split). ``label_lists`` reads
    ``label_column`` as a list of labels per sample (the multi-label task sets it).
    Each task sets its own defaults.
    """

    source: str = "sklearn_digits"
    path: str | None = None
    image_column: str | None = None
    text_column: str | None = None
    label_column: str | None = "label"
    id_column: str | None = None
    split_column: str | None = None
    class_names: list[str] | None = None
    image_size: int | list[int] | None = None
    channels: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    on_bad: str = "error"
    encoding: str | None = None
    cache_dir: str | None = None
    train: SourceSpec | None = None
    pool: SourceSpec | None = None
    pool_labels: str | None = None
    heldout_fraction: float = 0.4
    split_seed: int = 0
    label_noise: LabelNoiseSpec | None = None
    limit: int | None = None
    label_lists: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.heldout_fraction < 1:
            raise FieldError("heldout_fraction", f"must be in (0, 1), got {self.heldout_fraction}")
        if self.limit is not None and self.limit < 20:
            raise FieldError("limit", f"must be >= 20 or left out, got {self.limit}")
        if self.on_bad not in ON_BAD:
            raise FieldError("on_bad", f"must be one of {', '.join(ON_BAD)}, got {self.on_bad!r}")
        if self.channels not in (None, 1, 3):
            raise FieldError("channels", f"must be 1, 3 or left out, got {self.channels!r}")
        size = self.image_size
        if size is not None and not (
            (isinstance(size, int) and size >= 1)
            or (isinstance(size, list) and len(size) == 2
                and all(isinstance(v, int) and v >= 1 for v in size))
        ):  # fmt: skip
            raise FieldError("image_size", f"must be an integer >= 1 or [h, w], got {size!r}")
        if self.max_pixels < 1:
            raise FieldError("max_pixels", f"must be >= 1, got {self.max_pixels}")
        if self.class_names is not None:
            bad = [n for n in self.class_names if not isinstance(n, str) or n != n.strip() or not n]
            if bad:
                raise FieldError(
                    "class_names",
                    f"names must be non-empty, without surrounding spaces: {bad[0]!r}",
                )
            if len(set(self.class_names)) != len(self.class_names):
                raise FieldError("class_names", "must not repeat a name")
            if len(self.class_names) < MIN_CLASSES:
                raise FieldError(
                    "class_names", f"a benchmark needs at least {MIN_CLASSES} classes, got "
                    f"{self.class_names}"
                )  # fmt: skip
        check_encoding(self.encoding)
        if self.path is not None and "://" not in self.path:
            object.__setattr__(self, "path", os.path.abspath(os.path.expanduser(self.path)))
        if self.train is not None and self.pool is None:
            raise FieldError("train", "goes with data.pool (the samples to score)")
        if self.train is not None and self.path is not None:
            raise FieldError("path", "set the training source in data.train or in data, not both")
        if self.pool_labels is not None:
            if self.pool is None:
                raise FieldError("pool_labels", "attaches labels to data.pool: set a pool")
            object.__setattr__(self, "pool_labels", os.path.abspath(self.pool_labels))

    def parts(self) -> list[Part]:
        """The sources the ingest reads: this one, or ``train`` (or this) + ``pool``."""
        if self.pool is None:
            return [Part("", self.source_config())]
        lead = self.source_config(self.train)
        pool = self.source_config(self.pool)
        return [Part(TRAIN_PREFIX, lead, "train"), Part(POOL_PREFIX, pool, "heldout")]

    def source_config(self, part: SourceSpec | None = None) -> SourceConfig:
        """The options a source and the ingest read (:class:`engine.spec.sources.SourceConfig`).

        Args:
            part: ``train`` or ``pool``, whose own fields replace the source fields of
                ``data`` (the conversion options stay ``data``'s); None for ``data``.
        """
        size = self.image_size
        src = part or self
        return SourceConfig(
            source=src.source, path=src.path, image_column=src.image_column,
            text_column=src.text_column, label_column=src.label_column,
            id_column=src.id_column, split_column=None if part else self.split_column,
            class_names=tuple(self.class_names) if self.class_names else None,
            image_size=(size, size) if isinstance(size, int) else (tuple(size) if size else None),
            channels=self.channels, max_pixels=self.max_pixels, on_bad=self.on_bad,
            limit=self.limit, encoding=src.encoding, label_lists=self.label_lists,
        )  # fmt: skip


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
    ensemble in one worker: the workers then share packs round-robin instead of
    single replicas. ``pack_engine`` says how a pack computes: ``vmap`` (torch.func
    over stacked parameters: one batched kernel for all replicas), ``loop`` (the
    replicas stepped in turn, each step exactly a separate run's) or ``auto``
    (``loop`` for a convolutional model on a CPU, else ``vmap``: what was faster
    here, see docs/performance.md).
    """

    count: int
    recipe: TrainRecipe | TextRecipe  # the task's recipe, its fields inline in the YAML
    num_workers: int | str = "auto"
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 3
    keep_checkpoints: str = "last"
    pack_size: int | str = 1
    pack_engine: str = "auto"

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
        if self.pack_engine not in PACK_ENGINES:
            raise FieldError(
                "pack_engine",
                f"must be one of {', '.join(PACK_ENGINES)}, got {self.pack_engine!r}",
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
    about 10% larger at K=10). ``checksum`` is the hash of each shard's bytes recorded
    in the manifest and checked before the shard is scored: ``xxh3_128`` (the default,
    non-cryptographic, at memory speed: it catches truncation and flipped bits) or
    ``sha256`` (cryptographic, about 2 GB/s per core: also catches a shard altered on
    purpose to pass). Shards recorded with either verify, whatever this is set to.
    ``predict`` says who predicts the scoring set after every epoch: ``inline`` (the
    replica's own worker, between epochs) or ``ray_data`` (the replica hands the
    epoch's weights to a Ray Data actor pool that predicts block by block from the
    dataset cache and writes the same shards while the replica trains on; one replica
    per worker, full shards, no input gradients).
    """

    block_size: int = 1024
    probs_dtype: str = "float16"
    grad_epochs: list[int] = field(default_factory=list)
    mode: str = "full"
    top_k: int | None = None
    format: str = "parquet"
    checksum: str = "xxh3_128"
    predict: str = "inline"

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
        if self.predict not in PREDICT_MODES:
            raise FieldError(
                "predict", f"must be one of {', '.join(PREDICT_MODES)}, got {self.predict!r}"
            )
        if self.predict == "ray_data" and self.grad_epochs:
            raise FieldError("predict", "ray_data predicts without input gradients: drop "
                             "grad_epochs (and the vog score) or predict inline")  # fmt: skip
        if self.format not in SHARD_FORMATS:
            raise FieldError(
                "format", f"must be one of {', '.join(SHARD_FORMATS)}, got {self.format!r}"
            )
        if self.checksum not in SHARD_CHECKSUMS:
            raise FieldError(
                "checksum", f"must be one of {', '.join(SHARD_CHECKSUMS)}, got {self.checksum!r}"
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
