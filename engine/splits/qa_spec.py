"""Spec of an extractive-QA benchmark (``task: qa`` in the YAML).

Same conventions as the classification spec (:mod:`engine.splits.spec`): YAML parsed
into frozen dataclasses, validated in ``__post_init__``, errors naming the dotted
field. The replicas of a QA run always train side by side in one Ray task, because
the span confusion needs the replica-mean start and end distributions and only
per-sample reductions are stored (the ``reduced`` shard form).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine._util import FieldError
from engine.shards.layout import SHARD_FORMATS
from engine.splits.spec import Metadata, TrackingSpec
from engine.training.qa import QARecipe

QA_SOURCES = ("quoref",)  # bundled QA corpora
QA_SCORES = ("confusion", "action", "aum", "forgetting", "confidence", "variability", "correctness")
QA_POOLS = ("heldout", "all")  # which samples a QA benchmark is cut from


@dataclass(frozen=True)
class QADataSpec:
    """Which questions: the bundled corpus, held-out share (by passage), split seed, limit."""

    source: str = "quoref"
    heldout_fraction: float = 0.2
    split_seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.source not in QA_SOURCES:
            raise FieldError(
                "source", f"must be one of {', '.join(QA_SOURCES)}, got {self.source!r}"
            )
        if not 0 < self.heldout_fraction < 1:
            raise FieldError("heldout_fraction", f"must be in (0, 1), got {self.heldout_fraction}")
        if self.limit is not None and self.limit < 20:
            raise FieldError("limit", f"must be >= 20 or left out, got {self.limit}")

    def load(self) -> object:
        """The tokenized :class:`engine.data.qa.QAData`."""
        from engine.data.qa import load_quoref

        return load_quoref(
            heldout_fraction=self.heldout_fraction, split_seed=self.split_seed, limit=self.limit
        )


@dataclass(frozen=True)
class QAReplicasSpec:
    """The seed ensemble: R readers with the recipe, trained in one Ray task with ``cpus``."""

    count: int = 3
    recipe: QARecipe = field(default_factory=QARecipe)
    cpus: int = 1

    def __post_init__(self) -> None:
        if self.count < 2:
            raise FieldError("count", f"a seed ensemble needs >= 2 replicas, got {self.count}")
        if self.cpus < 1:
            raise FieldError("cpus", f"must be >= 1, got {self.cpus}")

    def seeds(self) -> list[int]:
        """Seed of each replica."""
        return [self.recipe.seed + r for r in range(self.count)]


@dataclass(frozen=True)
class QAShardsSpec:
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
class QASplitsSpec:
    """The hard split (top ``hard_fraction`` of the pool by ``score``) and ``bins`` bins."""

    score: str = "confusion"
    pool: str = "heldout"
    hard_fraction: float = 0.2
    bins: int = 5

    def __post_init__(self) -> None:
        if self.pool not in QA_POOLS:
            raise FieldError("pool", f"must be one of {', '.join(QA_POOLS)}, got {self.pool!r}")
        if not 0 < self.hard_fraction < 1:
            raise FieldError("hard_fraction", f"must be in (0, 1), got {self.hard_fraction}")
        if self.bins < 2:
            raise FieldError("bins", f"must be >= 2, got {self.bins}")


@dataclass(frozen=True)
class QAModelSpec:
    """A (larger) reader trained by the engine on the training split, evaluated on the pool."""

    name: str
    recipe: QARecipe = field(default_factory=QARecipe)
    cpus: int = 1

    def __post_init__(self) -> None:
        if not self.name or self.name in ("ensemble",):
            raise FieldError(
                "name", f"must be a non-empty name other than 'ensemble', got {self.name!r}"
            )


@dataclass(frozen=True)
class QASpec:
    """An extractive-QA benchmark: data, seed ensemble, scores, splits, evaluated readers."""

    metadata: Metadata
    task: str = "qa"
    data: QADataSpec = field(default_factory=QADataSpec)
    replicas: QAReplicasSpec = field(default_factory=QAReplicasSpec)
    scores: list[str] = field(default_factory=lambda: list(QA_SCORES))
    shards: QAShardsSpec = field(default_factory=QAShardsSpec)
    splits: QASplitsSpec = field(default_factory=QASplitsSpec)
    models: list[QAModelSpec] = field(default_factory=list)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)

    def __post_init__(self) -> None:
        if self.task != "qa":
            raise FieldError("task", f"must be 'qa' for this spec, got {self.task!r}")
        for i, name in enumerate(self.scores):
            if name not in QA_SCORES:
                raise FieldError(
                    f"scores[{i}]",
                    f"{name!r} is not computable from QA's reduced shards; choose from "
                    f"{', '.join(QA_SCORES)}",
                )
        for need in ("confusion", "action"):
            if need not in self.scores:
                raise FieldError("scores", f"must include {need!r} (the QA comparison needs it)")
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
