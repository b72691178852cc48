"""Spec of a text-generation benchmark: ``task: qa`` (extractive QA) or ``task: seq2seq``.

Same conventions as the classification spec (:mod:`engine.splits.spec`): YAML parsed
into frozen dataclasses, validated in ``__post_init__``, errors naming the dotted
field. The replicas always train side by side in one Ray task, because both tasks'
confusion needs the replica-mean distributions (start/end positions, next tokens)
and only per-sample reductions are stored (the ``reduced`` shard form).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine._util import FieldError
from engine.shards.layout import SHARD_FORMATS
from engine.splits.spec import Metadata, TrackingSpec
from engine.training.qa import TextRecipe

TASK_SOURCES = {"qa": ("quoref",), "seq2seq": ("qasc_fusion",)}  # bundled corpora per task
TEXT_SCORES = (
    "confusion",
    "action",
    "aum",
    "forgetting",
    "confidence",
    "variability",
    "correctness",
)
POOLS = ("heldout", "all")  # which samples a benchmark is cut from


@dataclass(frozen=True)
class TextDataSpec:
    """Which samples: a bundled corpus, held-out share (by passage or first fact), seed, limit."""

    source: str = "quoref"
    heldout_fraction: float = 0.2
    split_seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        known = [src for sources in TASK_SOURCES.values() for src in sources]
        if self.source not in known:
            raise FieldError("source", f"must be one of {', '.join(known)}, got {self.source!r}")
        if not 0 < self.heldout_fraction < 1:
            raise FieldError("heldout_fraction", f"must be in (0, 1), got {self.heldout_fraction}")
        if self.limit is not None and self.limit < 20:
            raise FieldError("limit", f"must be >= 20 or left out, got {self.limit}")

    def load(self) -> object:
        """The tokenized :class:`engine.data.qa.QAData` or :class:`engine.data.seq2seq.Seq2SeqData`."""
        from engine.data.qa import load_quoref
        from engine.data.seq2seq import load_qasc_fusion

        loader = {"quoref": load_quoref, "qasc_fusion": load_qasc_fusion}[self.source]
        return loader(
            heldout_fraction=self.heldout_fraction, split_seed=self.split_seed, limit=self.limit
        )


@dataclass(frozen=True)
class TextReplicasSpec:
    """The seed ensemble: R models with the recipe, trained in one Ray task.

    The task reserves ``cpus`` CPUs (its torch threads) and ``gpus`` GPUs (a fraction
    lets tasks share one); with a GPU the replicas train and predict on CUDA.
    """

    count: int = 3
    recipe: TextRecipe = field(default_factory=TextRecipe)
    cpus: int = 1
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 2:
            raise FieldError("count", f"a seed ensemble needs >= 2 replicas, got {self.count}")
        if self.cpus < 1:
            raise FieldError("cpus", f"must be >= 1, got {self.cpus}")
        if not 0 <= self.gpus <= 1:
            raise FieldError("gpus", f"must be in [0, 1] (one task, one GPU), got {self.gpus}")

    def seeds(self) -> list[int]:
        """Seed of each replica."""
        return [self.recipe.seed + r for r in range(self.count)]


@dataclass(frozen=True)
class TextShardsSpec:
    """Samples per reduced shard and the file format."""

    block_size: int = 2048
    format: str = "parquet"

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise FieldError("block_size", f"must be >= 1, got {self.block_size}")
        if self.format not in SHARD_FORMATS:
            raise FieldError(
                "format", f"must be one of {', '.join(SHARD_FORMATS)}, got {self.format!r}"
            )


@dataclass(frozen=True)
class TextSplitsSpec:
    """The hard split (top ``hard_fraction`` of the pool by ``score``) and ``bins`` bins."""

    score: str = "confusion"
    pool: str = "heldout"
    hard_fraction: float = 0.2
    bins: int = 5

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise FieldError("pool", f"must be one of {', '.join(POOLS)}, got {self.pool!r}")
        if not 0 < self.hard_fraction < 1:
            raise FieldError("hard_fraction", f"must be in (0, 1), got {self.hard_fraction}")
        if self.bins < 2:
            raise FieldError("bins", f"must be >= 2, got {self.bins}")


@dataclass(frozen=True)
class TextModelSpec:
    """A (larger) model trained by the engine on the training split, evaluated on the pool."""

    name: str
    recipe: TextRecipe = field(default_factory=TextRecipe)
    cpus: int = 1
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus < 1:
            raise FieldError("cpus", f"must be >= 1, got {self.cpus}")
        if not 0 <= self.gpus <= 1:
            raise FieldError("gpus", f"must be in [0, 1] (one task, one GPU), got {self.gpus}")
        if not self.name or self.name in ("ensemble",):
            raise FieldError(
                "name", f"must be a non-empty name other than 'ensemble', got {self.name!r}"
            )


@dataclass(frozen=True)
class TextTaskSpec:
    """A QA or seq2seq benchmark: data, seed ensemble, scores, splits, evaluated models."""

    metadata: Metadata
    task: str
    data: TextDataSpec = field(default_factory=TextDataSpec)
    replicas: TextReplicasSpec = field(default_factory=TextReplicasSpec)
    scores: list[str] = field(default_factory=lambda: list(TEXT_SCORES))
    shards: TextShardsSpec = field(default_factory=TextShardsSpec)
    splits: TextSplitsSpec = field(default_factory=TextSplitsSpec)
    models: list[TextModelSpec] = field(default_factory=list)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)

    def __post_init__(self) -> None:
        if self.task not in TASK_SOURCES:
            raise FieldError("task", f"must be one of {', '.join(TASK_SOURCES)}, got {self.task!r}")
        if self.data.source not in TASK_SOURCES[self.task]:
            raise FieldError(
                "data.source",
                f"{self.data.source!r} is not a {self.task} corpus; use "
                f"{' or '.join(TASK_SOURCES[self.task])}",
            )
        for i, name in enumerate(self.scores):
            if name not in TEXT_SCORES:
                raise FieldError(
                    f"scores[{i}]",
                    f"{name!r} is not computable from {self.task}'s reduced shards; choose from "
                    f"{', '.join(TEXT_SCORES)}",
                )
        for need in ("confusion", "action"):
            if need not in self.scores:
                raise FieldError("scores", f"must include {need!r} (the comparison needs it)")
        if self.splits.score not in self.scores:
            raise FieldError(
                "splits.score", f"{self.splits.score!r} is not in scores {self.scores}"
            )
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise FieldError("models", f"model names must be unique, got {names}")

    def to_dict(self) -> dict:
        """The resolved spec as plain data (what ``spec.yaml`` in the run holds)."""
        return asdict(self)
