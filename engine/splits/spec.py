"""Benchmark specs: YAML parsed into validated dataclasses.

A spec file may name a base with ``include: other.yaml`` (resolved relative to
the including file); its keys are deep-merged over the base. An include must be a
``.yaml``/``.yml`` file inside the spec root: ``$HARDBENCH_SPEC_ROOT`` if set, else
the top-level spec's project (nearest ancestor with ``pyproject.toml`` or ``.git``),
else its directory, so a spec cannot make the engine read arbitrary files. ``load_spec`` also
takes ``--set``-style overrides (``replicas.epochs=3``). Every field error names
the field's dotted path and the allowed values.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from engine._util import FieldError, has_credentials
from engine.data import ClassificationData, list_sources, load_dataset
from engine.data.sources import NOISE_KINDS, flip_labels
from engine.scores import get_score
from engine.shards.layout import SHARD_FORMATS
from engine.training import TrainRecipe
from engine.training.checkpoints import KEEP_POLICIES
from engine.training.mitigation import METHODS as MITIGATIONS
from engine.training.mitigation import PACINGS, MitigationOptions

SPLIT_POOLS = ("heldout", "train", "all")  # which samples hard splits and bins are cut from
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # spec and model labels
MAX_INCLUDE_DEPTH = 8  # guards against include cycles
SPEC_VERSION = 1  # the spec format this engine reads
# One per hard split. hardest_fraction reads the score's direction; the literal spellings
# (highest/lowest values, thresholds) are accepted only where they pick the hard side.
HARD_RULES = ("hardest_fraction", "top_fraction", "bottom_fraction", "min_score", "max_score")
FRACTION_RULES = ("hardest_fraction", "top_fraction", "bottom_fraction")
REFERENCE_LARGER = "larger"  # evaluate.reference_models default: models bigger than the ensemble
EXPORTS = ("parquet", "imagefolder", "hf")  # formats the split builder can write
SHARD_MODES = ("full", "mean", "reduced")  # what a shard stores per (sample, epoch)


CREDENTIALS_IN_URI = (
    "holds credentials; give them in the environment instead (e.g. AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY for s3://): specs and output locations are logged"
)


def _check_gpus(name: str, value: float) -> None:
    """A GPU request: 0, a fraction (GPU sharing) or a whole number of GPUs."""
    if value < 0 or (value > 1 and value != int(value)):
        raise FieldError(
            name, f"must be 0, a fraction in (0, 1] or a whole number of GPUs, got {value}"
        )


class SpecError(ValueError):
    """A spec that cannot be run; the message names the field and allowed values."""


@dataclass(frozen=True)
class Metadata:
    """Who the benchmark is: ``name`` labels runs; ``version`` is the spec format."""

    name: str
    version: int = SPEC_VERSION
    description: str = ""

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise FieldError("name", f"must match {NAME_PATTERN.pattern}, got {self.name!r}")
        if self.version != SPEC_VERSION:
            raise FieldError(
                "version", f"this engine reads spec version {SPEC_VERSION}, got {self.version}"
            )


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
    """The dataset source and its fixed train/held-out split (and optional label noise)."""

    source: str = "sklearn_digits"
    heldout_fraction: float = 0.4
    split_seed: int = 0
    label_noise: LabelNoiseSpec | None = None

    def __post_init__(self) -> None:
        if self.source not in list_sources():
            raise FieldError(
                "source", f"must be one of {', '.join(list_sources())}, got {self.source!r}"
            )
        if not 0 < self.heldout_fraction < 1:
            raise FieldError("heldout_fraction", f"must be in (0, 1), got {self.heldout_fraction}")

    def load(self) -> ClassificationData:
        """The dataset with its split, and the injected label noise if the spec asks."""
        data = load_dataset(
            self.source, heldout_fraction=self.heldout_fraction, split_seed=self.split_seed
        )
        noise = self.label_noise
        if noise is not None:
            noisy, _ = flip_labels(
                data.labels, fraction=noise.fraction, kind=noise.kind, seed=noise.seed,
                num_classes=data.num_classes, confusable=noise.confusable,
            )  # fmt: skip
            data = dataclasses.replace(data, labels=noisy, clean_labels=data.labels)
        return data


@dataclass(frozen=True)
class ReplicasSpec:
    """The seed ensemble: ``count`` replicas of ``recipe``; replica r uses seed ``recipe.seed + r``.

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
    recipe: TrainRecipe
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
        _check_gpus("gpus_per_worker", self.gpus_per_worker)
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
class HardSpec:
    """The hard split: exactly one rule, optionally applied per class.

    Rules: ``hardest_fraction`` (the hardest share of the pool by the score's
    direction: highest confusion, lowest AUM; the default, 0.1, when no rule is
    given), or the literal spellings ``top_fraction`` (highest values),
    ``bottom_fraction`` (lowest values), ``min_score`` (score >= value) and
    ``max_score`` (score <= value), each accepted only for a score whose hard side it
    names (``top_fraction``/``min_score`` for higher-is-harder scores,
    ``bottom_fraction``/``max_score`` for lower-is-harder ones; the spec refuses the
    other way round, which would call the easiest samples hard). ``per_class`` applies
    a fraction rule inside each class, taking at least ``min_per_class`` samples of
    every class (or the whole class if smaller).
    """

    hardest_fraction: float | None = None
    top_fraction: float | None = None
    bottom_fraction: float | None = None
    min_score: float | None = None
    max_score: float | None = None
    per_class: bool = False
    min_per_class: int = 0

    def __post_init__(self) -> None:
        rules = [r for r in HARD_RULES if getattr(self, r) is not None]
        if not rules:
            object.__setattr__(self, "hardest_fraction", 0.1)
            rules = ["hardest_fraction"]
        if len(rules) > 1:
            raise FieldError(
                rules[1],
                f"give exactly one of {', '.join(HARD_RULES)}; got {', '.join(rules)} "
                "(set the others to null when overriding an included spec)",
            )
        for name in FRACTION_RULES:
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise FieldError(name, f"must be in (0, 1), got {value}")
        if self.min_per_class < 0:
            raise FieldError("min_per_class", f"must be >= 0, got {self.min_per_class}")
        if self.per_class and rules[0] not in FRACTION_RULES:
            raise FieldError("per_class", f"applies to {', '.join(FRACTION_RULES)}, not {rules[0]}")
        if self.min_per_class and not self.per_class:
            raise FieldError("min_per_class", "needs per_class: true")

    @property
    def rule(self) -> str:
        """The rule in force, e.g. ``"hardest_fraction"``."""
        return next(r for r in HARD_RULES if getattr(self, r) is not None)

    @property
    def value(self) -> float:
        """The rule's fraction or threshold."""
        return getattr(self, self.rule)

    def check_direction(self, score: str) -> None:
        """Refuse a literal rule that would select the easiest samples of ``score``.

        Raises:
            FieldError: Naming the rule, which way the score points and the spelling to use.
        """
        info = get_score(score)
        rule, value = self.rule, self.value
        easy_side = {
            "top_fraction": not info.higher_is_harder,
            "min_score": not info.higher_is_harder,
            "bottom_fraction": info.higher_is_harder,
            "max_score": info.higher_is_harder,
        }.get(rule, False)
        if not easy_side:
            return
        if rule in FRACTION_RULES:
            which = "highest" if rule == "top_fraction" else "lowest"
            what = f"selects the {which} {score} values"
            fix = f"use hardest_fraction: {value:g} (the hardest by the score's direction)"
        else:
            what = f"keeps {score} {'>=' if rule == 'min_score' else '<='} {value:g}"
            other = "max_score" if rule == "min_score" else "min_score"
            fix = f"the hard side of a threshold on {score} is {other}"
        raise FieldError(
            rule, f"{what}, which are the easiest samples ({score}: {info.direction}); {fix}"
        )


@dataclass(frozen=True)
class BinsSpec:
    """Score bins over the pool, numbered from the easiest: bin 0 = easiest, always.

    ``count`` equal-count bins by rank of the score read in its direction, or fixed
    thresholds ``edges`` (ascending, in the score's units): for a higher-is-harder
    score bin b holds ``edges[b-1] <= score < edges[b]`` (the paper's confusion < 5 vs
    >= 5 is ``edges: [5]``); for a lower-is-harder score with B bins the intervals are
    numbered from the top, ``edges[B-2-b] < score <= edges[B-1-b]``, so bin 0 still
    holds the easiest (highest) values. A value on an edge always goes to the harder bin.
    """

    count: int | None = None
    edges: list[float] | None = None

    def __post_init__(self) -> None:
        if self.edges is not None:
            if not self.edges or any(
                b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)
            ):
                raise FieldError(
                    "edges", f"must be a non-empty strictly ascending list, got {self.edges}"
                )
            if self.count is not None and self.count != len(self.edges) + 1:
                raise FieldError(
                    "count",
                    f"must be len(edges) + 1 = {len(self.edges) + 1} or unset, got {self.count}",
                )
            object.__setattr__(self, "count", len(self.edges) + 1)
        elif self.count is None:
            object.__setattr__(self, "count", 5)
        if self.count < 2:
            raise FieldError("count", f"must be >= 2, got {self.count}")


@dataclass(frozen=True)
class SplitsSpec:
    """How hard splits are cut: which score, from which pool, how, and what is exported.

    ``label_free``: the selection never looks at labels (the score must be label-free,
    no per-class rule) and the exported splits carry no label column.
    ``exports``: any of ``parquet`` (always written), ``imagefolder``
    (``<split>/<class>/<id>.png``), ``hf`` (a ``datasets.DatasetDict`` saved to disk).
    """

    score: str = "confusion"
    pool: str = "heldout"
    hard: HardSpec = field(default_factory=HardSpec)
    bins: BinsSpec = field(default_factory=BinsSpec)
    label_free: bool = False
    exports: list[str] = field(default_factory=lambda: ["parquet"])

    def __post_init__(self) -> None:
        if self.pool not in SPLIT_POOLS:
            raise FieldError("pool", f"must be one of {', '.join(SPLIT_POOLS)}, got {self.pool!r}")
        for i, name in enumerate(self.exports):
            if name not in EXPORTS:
                raise FieldError(
                    f"exports[{i}]", f"must be one of {', '.join(EXPORTS)}, got {name!r}"
                )
        if self.label_free and self.hard.per_class:
            raise FieldError(
                "hard.per_class", "needs labels; it cannot be used with label_free: true"
            )
        if self.label_free and "imagefolder" in self.exports:
            raise FieldError(
                "exports",
                "imagefolder sorts images by class label; it cannot be used with label_free",
            )
        if get_score(self.score).needs_labels and self.label_free:
            raise FieldError(
                "score", f"{self.score!r} needs labels; label_free needs a label-free score"
            )
        try:
            self.hard.check_direction(self.score)
        except FieldError as exc:
            raise exc.prefixed("hard") from None

    def describe(self) -> str:
        """The hard rule in words, e.g. ``hardest 10% by aum (lower = harder)``."""
        hard, info = self.hard, get_score(self.score)
        if hard.rule in FRACTION_RULES:
            text = f"hardest {100 * hard.value:g}% by {self.score}"
            if hard.per_class:
                text += f" within each class (at least {hard.min_per_class})"
        else:
            text = f"{self.score} {'>=' if hard.rule == 'min_score' else '<='} {hard.value:g}"
        return f"{text} ({info.direction})"


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


@dataclass(frozen=True)
class MitigationSpec(MitigationOptions):
    """How an evaluated model is trained: ``erm`` or a confusion-based mitigation.

    ``score`` (one of the run's scores, read in its own direction: the lowest AUM is
    the hardest) ranks the training samples;
    ``groupdro`` uses ``groups`` equal-count bins of it and step size ``eta``;
    ``upsample`` repeats the hardest ``hard_fraction`` ``factor`` times per epoch;
    ``curriculum`` trains easy to hard, from ``start_fraction`` of the samples to all
    of them over the first ``ramp_fraction`` of the epochs (``pacing`` linear or root).
    """

    method: str = "erm"
    score: str = "confusion"

    def __post_init__(self) -> None:
        if self.method not in MITIGATIONS:
            raise FieldError(
                "method", f"must be one of {', '.join(MITIGATIONS)}, got {self.method!r}"
            )
        if self.groups < 2:
            raise FieldError("groups", f"must be >= 2, got {self.groups}")
        if not self.eta > 0:
            raise FieldError("eta", f"must be > 0, got {self.eta}")
        if self.factor < 1:
            raise FieldError("factor", f"must be >= 1, got {self.factor}")
        for name in ("hard_fraction", "start_fraction", "ramp_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise FieldError(name, f"must be in (0, 1], got {getattr(self, name)}")
        if self.pacing not in PACINGS:
            raise FieldError("pacing", f"must be one of {', '.join(PACINGS)}, got {self.pacing!r}")


@dataclass(frozen=True)
class EvalModelSpec:
    """A model trained by the engine on the training split and evaluated on the splits.

    Its Ray task reserves ``cpus`` CPUs and ``gpus`` GPUs (a fraction shares a GPU).
    """

    name: str
    recipe: TrainRecipe
    cpus: float = 1.0
    gpus: float = 0.0
    mitigation: MitigationSpec = field(default_factory=MitigationSpec)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise FieldError("name", f"must match {NAME_PATTERN.pattern}, got {self.name!r}")
        if not self.cpus > 0:
            raise FieldError("cpus", f"must be > 0, got {self.cpus}")
        _check_gpus("gpus", self.gpus)


@dataclass(frozen=True)
class EvaluateSpec:
    """Which models are evaluated; ``ensemble`` adds the replicas' final-epoch ensemble.

    The ensemble is the scorer itself: its bins are cut from its own confusion, so its
    row is in-sample and is labelled so, never a transfer result.
    ``reference_models`` are the models whose ensemble confusion the small ensemble's
    score is compared with (Kendall's tau): ``larger`` (the default) takes every
    evaluated model with more parameters than the whole replica ensemble (R times one
    replica), or list the names. ``cpus_per_actor`` and ``gpus_per_actor`` are the
    defaults of ``hardbench eval``'s prediction actors (the CLI can override them).
    """

    models: list[EvalModelSpec] = field(default_factory=list)
    ensemble: bool = True
    reference_models: list[str] | str = REFERENCE_LARGER
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise FieldError("models", f"model names must be unique, repeated: {', '.join(dupes)}")
        if "ensemble" in names:
            raise FieldError("models", "'ensemble' is reserved for the replicas' ensemble")
        if not self.models and not self.ensemble:
            raise FieldError("models", "nothing to evaluate: list models or set ensemble: true")
        if isinstance(self.reference_models, str):
            if self.reference_models != REFERENCE_LARGER:
                raise FieldError(
                    "reference_models",
                    f"must be {REFERENCE_LARGER!r} or a list of evaluated model names, "
                    f"got {self.reference_models!r}",
                )
        else:
            unknown = [n for n in self.reference_models if n not in names]
            if unknown or not self.reference_models:
                raise FieldError(
                    "reference_models",
                    f"must name evaluated models ({', '.join(names) or 'none listed'}), "
                    f"got {self.reference_models}",
                )
        if not self.cpus_per_actor > 0:
            raise FieldError("cpus_per_actor", f"must be > 0, got {self.cpus_per_actor}")
        _check_gpus("gpus_per_actor", self.gpus_per_actor)


@dataclass(frozen=True)
class TrackingSpec:
    """MLflow experiment; the store is ``MLFLOW_TRACKING_URI`` or a sqlite db in the run dir."""

    experiment: str = "hardbench"

    def __post_init__(self) -> None:
        if not self.experiment.strip():
            raise FieldError("experiment", "must be a non-empty name")


@dataclass(frozen=True)
class OutputSpec:
    """Where a run's outputs are mirrored.

    ``uri`` is a local path or a pyarrow filesystem URI (``s3://bucket/runs``); the
    run lands in ``<uri>/<run_id>/``. Unset: the run directory is the only copy.
    """

    uri: str | None = None

    def __post_init__(self) -> None:
        if self.uri is not None and not str(self.uri).strip():
            raise FieldError("uri", "must be a path or URI, or left out")
        if self.uri is not None and has_credentials(str(self.uri)):
            raise FieldError("uri", CREDENTIALS_IN_URI)


@dataclass(frozen=True)
class BenchmarkSpec:
    """A whole benchmark: data, seed ensemble, scores, splits, evaluation, tracking.

    ``score_options`` maps a score to its options (``hardbench scores`` lists them),
    e.g. ``{el2n: {epoch: 2}, vog: {normalize: none}, forgetting: {counted:
    during_training}}``; a score left out uses its defaults.
    """

    metadata: Metadata
    replicas: ReplicasSpec
    data: DataSpec = field(default_factory=DataSpec)
    scores: list[str] = field(default_factory=lambda: ["confusion", "action"])
    score_options: dict = field(default_factory=dict)
    shards: ShardsSpec = field(default_factory=ShardsSpec)
    scoring: ScoringSpec = field(default_factory=ScoringSpec)
    splits: SplitsSpec = field(default_factory=SplitsSpec)
    evaluate: EvaluateSpec = field(default_factory=EvaluateSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    output: OutputSpec = field(default_factory=OutputSpec)

    def __post_init__(self) -> None:
        if not self.scores:
            raise FieldError("scores", "must list at least one score")
        for i, name in enumerate(self.scores):
            try:
                get_score(name)
            except ValueError as exc:
                raise FieldError(f"scores[{i}]", str(exc)) from None
        if len(set(self.scores)) != len(self.scores):
            raise FieldError("scores", f"must not repeat a score, got {self.scores}")
        epochs = self.replicas.recipe.epochs
        self._check_score_options(epochs)
        if any(e >= epochs for e in self.shards.grad_epochs):
            raise FieldError(
                "shards.grad_epochs",
                f"must be epoch indices below replicas.epochs={epochs}, got {self.shards.grad_epochs}",
            )
        packed = len(self.replicas.packs()) < self.replicas.count
        if self.shards.mode != "full" and len(self.replicas.packs()) != 1:
            raise FieldError(
                "shards.mode",
                f"{self.shards.mode!r} reduces over all replicas in the worker: it needs "
                "replicas.pack_size: all (one pack)",
            )
        if packed and self.shards.grad_epochs:
            raise FieldError(
                "shards.grad_epochs",
                "input gradients are recorded by unpacked replicas only: set "
                "replicas.pack_size: 1 or drop grad_epochs (and the vog score)",
            )
        options = self.resolved_score_options()
        if self.shards.mode == "reduced":
            unsupported = [
                name
                for name in self.scores
                if set(get_score(name).inputs(options[name]))
                - {"mean_entropy", "loss", "margin", "correct", "p_true"}
            ]
            if unsupported:
                raise FieldError(
                    "scores",
                    f"{', '.join(unsupported)} need K-sized probabilities or gradients, which "
                    "reduced shards (shards.mode: reduced) do not store; use mode full or mean",
                )
        if "vog" in self.scores and len(self.shards.grad_epochs) < 2:
            raise FieldError(
                "shards.grad_epochs",
                "the vog score needs input gradients from at least 2 epochs: list them here",
            )
        for i, m in enumerate(self.evaluate.models):
            if m.mitigation.method != "erm" and m.mitigation.score not in self.scores:
                raise FieldError(
                    f"evaluate.models[{i}].mitigation.score",
                    f"must be one of the computed scores ({', '.join(self.scores)}), "
                    f"got {m.mitigation.score!r}",
                )
        if self.splits.score not in self.scores:
            raise FieldError(
                "splits.score",
                f"must be one of the computed scores ({', '.join(self.scores)}), got {self.splits.score!r}",
            )
        if (
            self.records_presentations
            and self.splits.score == "forgetting"
            and self.splits.pool != "train"
        ):
            raise FieldError(
                "splits.pool",
                "forgetting counted during training exists for training samples only (held-out "
                f"samples are never presented); cut it from pool: train, not {self.splits.pool!r}",
            )

    def _check_score_options(self, epochs: int) -> None:
        if not isinstance(self.score_options, dict):
            raise FieldError("score_options", "must map score names to their options")
        for name, given in self.score_options.items():
            path = f"score_options.{name}"
            if name not in self.scores:
                raise FieldError(
                    path, f"{name!r} is not a computed score ({', '.join(self.scores)})"
                )
            if not isinstance(given, dict):
                raise FieldError(path, f"must be a mapping of options, got {given!r}")
            try:
                resolved = get_score(name).resolve_options(given)
            except ValueError as exc:
                raise FieldError(path, str(exc)) from None
            epoch = resolved.get("epoch")
            if epoch is not None and not -epochs <= epoch < epochs:
                raise FieldError(
                    f"{path}.epoch",
                    f"must be in [{-epochs}, {epochs}) for {epochs} epochs, got {epoch}",
                )
        if self.records_presentations and self.shards.mode != "full":
            raise FieldError(
                "score_options.forgetting.counted",
                "during_training records are stored in full shards only (shards.mode: full), "
                f"not {self.shards.mode!r}",
            )

    def resolved_score_options(self) -> dict[str, dict]:
        """Every computed score's options, defaults filled in."""
        return {n: get_score(n).resolve_options(self.score_options.get(n)) for n in self.scores}

    @property
    def records_presentations(self) -> bool:
        """Whether the replicas record mini-batch presentations (Toneva forgetting)."""
        opts = self.score_options.get("forgetting") or {}
        return "forgetting" in self.scores and opts.get("counted") == "during_training"

    def to_dict(self) -> dict:
        """The resolved spec as plain YAML-ready data (recipes flattened as in the files)."""
        out = asdict(self)
        out["replicas"] = _flatten_recipe(out["replicas"])
        out["evaluate"]["models"] = [_flatten_recipe(m) for m in out["evaluate"]["models"]]
        return out

    def to_yaml(self) -> str:
        """The resolved spec as YAML (includes and overrides applied)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _flatten_recipe(section: dict) -> dict:
    recipe = section.pop("recipe")
    return {**section, **recipe}


def _recipe_sections() -> dict[type, str]:
    """Dataclasses whose YAML mapping also carries the fields of a TrainRecipe."""
    return {ReplicasSpec: "recipe", EvalModelSpec: "recipe"}


def _coerce(value: object, hint: object, path: str) -> object:
    """Convert YAML ``value`` to the annotated type ``hint`` or raise a FieldError."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, path)
            except FieldError as exc:
                errors.append(exc.reason)
        raise FieldError(path, " or ".join(errors))
    if origin is list:
        if not isinstance(value, list):
            raise FieldError(path, f"must be a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(hint) or (object,)
        return [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise FieldError(path, f"must be a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise FieldError(path, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(path, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(path, f"must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise FieldError(path, f"must be a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: object, path: str) -> object:
    """Build dataclass ``cls`` from a YAML mapping, naming unknown and missing fields."""
    if not isinstance(data, dict):
        raise FieldError(path, f"must be a mapping, got {type(data).__name__} {data!r}")
    data = dict(data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    nested_recipe = _recipe_sections().get(cls)
    kwargs: dict[str, object] = {}
    if nested_recipe:
        recipe_fields = {f.name for f in dataclasses.fields(TrainRecipe)}
        recipe_data = {k: data.pop(k) for k in list(data) if k in recipe_fields}
        kwargs[nested_recipe] = _build(TrainRecipe, recipe_data, path)
    allowed = sorted(set(fields) - {nested_recipe}) + (
        sorted(recipe_fields) if nested_recipe else []
    )
    for key, value in data.items():
        if key not in fields or key == nested_recipe:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FieldError(
                _join(path, str(key)), f"unknown field{hint}; allowed fields: {', '.join(allowed)}"
            )
        kwargs[key] = _coerce(value, hints[key], _join(path, key))
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in kwargs and no_default:
            raise FieldError(_join(path, name), "is required")
    try:
        return cls(**kwargs)
    except FieldError as exc:
        raise exc.prefixed(path) from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _deep_merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def spec_root(top: Path) -> Path:
    """The directory that includes of the spec ``top`` must stay inside (see module doc)."""
    env = os.environ.get("HARDBENCH_SPEC_ROOT")
    if env:
        return Path(env).resolve()
    for parent in top.resolve().parents:
        if (parent / "pyproject.toml").exists() or (parent / ".git").exists():
            return parent
    return top.resolve().parent


def _read_yaml(path: Path, depth: int = 0, root: Path | None = None) -> dict:
    root = root or spec_root(path)
    if depth > MAX_INCLUDE_DEPTH:
        raise SpecError(f"{path}: include chain deeper than {MAX_INCLUDE_DEPTH} (a cycle?)")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping, got {type(data).__name__}")
    include = data.pop("include", None)
    if include is None:
        return data
    if not isinstance(include, str):
        raise SpecError(f"{path}: include must be a file name, got {include!r}")
    target = (path.parent / include).resolve()
    if target.suffix not in (".yaml", ".yml"):
        raise SpecError(f"{path}: include must name a .yaml or .yml file, got {include!r}")
    if not target.is_relative_to(root):
        raise SpecError(
            f"{path}: include {include!r} resolves to {target}, outside the spec root {root} "
            "(set HARDBENCH_SPEC_ROOT to widen it)"
        )
    base = _read_yaml(target, depth + 1, root)
    return _deep_merge(base, data)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to spec data.

    Raises:
        SpecError: On an override without ``=`` or that descends into a non-mapping.
    """
    data = _deep_merge({}, data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SpecError(f"override {item!r} must look like section.field=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError(f"override {item!r}: {part!r} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def parse_spec(data: dict, source: str = "<spec>") -> BenchmarkSpec:
    """Validate spec data (a mapping as read from YAML) into a :class:`BenchmarkSpec`.

    ``task: qa`` or ``task: seq2seq`` gives a :class:`engine.splits.text_spec.TextTaskSpec`.

    Raises:
        SpecError: With ``source``, the field's dotted path, and what is allowed.
    """
    try:
        task = data.get("task", "classification") if isinstance(data, dict) else None
        if task in ("qa", "seq2seq"):
            from engine.splits.text_spec import TextTaskSpec

            return _build(TextTaskSpec, data, "")  # type: ignore[return-value]
        if task not in (None, "classification"):
            raise FieldError("task", f"must be classification, qa or seq2seq, got {task!r}")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "task"}
        spec = _build(BenchmarkSpec, data, "")
    except FieldError as exc:
        raise SpecError(f"{source}: {exc}") from None
    return spec  # type: ignore[return-value]


def load_spec(path: Path | str, overrides: list[str] | None = None) -> BenchmarkSpec:
    """Read, resolve (includes, overrides) and validate a spec file.

    Args:
        path: YAML file.
        overrides: ``section.field=value`` strings applied after includes.

    Returns:
        The validated spec.

    Raises:
        SpecError: For a missing file, bad YAML, or an invalid field.
    """
    path = Path(path)
    data = apply_overrides(_read_yaml(path.resolve()), overrides or [])
    return parse_spec(data, str(path))
