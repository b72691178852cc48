"""The whole spec: one schema for every task (:class:`BenchmarkSpec`) and its run sections."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import yaml

from engine._util import has_credentials
from engine.spec.common import CREDENTIALS_IN_URI, NAME_PATTERN, SPEC_VERSION, FieldError
from engine.spec.evaluate import FINETUNE_OWNS, EvaluateSpec
from engine.spec.model_recipes import TrainRecipe
from engine.spec.splits import SplitsSpec
from engine.spec.training import DataSpec, ReplicasSpec, ScoringSpec, ShardsSpec
from engine.spec.validate import check_registered


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
class TaskSpec:
    """Which task the benchmark is.

    ``name`` is a registered task (``classification``, ``qa``, ``seq2seq``; checked with
    the other registered names); settings only one task has belong in this section.
    """

    name: str = "classification"


@dataclass(frozen=True)
class TrackingSpec:
    """MLflow experiment; the store is ``MLFLOW_TRACKING_URI`` or the runs directory's ``mlflow.db``."""

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
    """A whole benchmark: task, data, seed ensemble, scores, splits, evaluation, tracking.

    The same sections and spellings for every task; ``task.name`` picks the plugin
    (:mod:`engine.tasks`) that says which sources, recipe fields and shard modes the
    task takes, sets its defaults and checks what only it can. Building one checks its
    fields, then every registered name with the task's own checks
    (:func:`engine.spec.validate.check_registered`); the task's data is loaded by
    ``engine.tasks.load_data(spec, run_dir, log)``.

    ``score_options`` maps a score to its options (``hardbench scores`` lists them),
    e.g. ``{el2n: {epoch: 2}, vog: {normalize: none}, forgetting: {counted:
    during_training}}``; a score left out uses its defaults.
    """

    metadata: Metadata
    replicas: ReplicasSpec
    task: TaskSpec = field(default_factory=TaskSpec)
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
        if len(set(self.scores)) != len(self.scores):
            raise FieldError("scores", f"must not repeat a score, got {self.scores}")
        self._check_score_options()
        epochs = self.replicas.recipe.epochs
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
        # a pack shares one vmapped model; side-by-side text replicas (TextRecipe) are
        # R whole models, each recording its own gradients
        if packed and self.shards.grad_epochs and isinstance(self.replicas.recipe, TrainRecipe):
            raise FieldError(
                "shards.grad_epochs",
                "input gradients are recorded by unpacked replicas only: set "
                "replicas.pack_size: 1 or drop grad_epochs (and the vog score)",
            )
        if "vog" in self.scores and len(self.shards.grad_epochs) < 2:
            raise FieldError(
                "shards.grad_epochs",
                "the vog score needs input gradients from at least 2 epochs: list them here",
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
        check_registered(self)  # task, sources, scores and options, models; the task's checks

    def _check_score_options(self) -> None:
        """The shape of ``score_options``; each score's own options are checked in its registry."""
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
        if self.records_presentations and self.shards.mode != "full":
            raise FieldError(
                "score_options.forgetting.counted",
                "during_training records are stored in full shards only (shards.mode: full), "
                f"not {self.shards.mode!r}",
            )

    @property
    def records_presentations(self) -> bool:
        """Whether the replicas record mini-batch presentations (Toneva forgetting)."""
        opts = self.score_options.get("forgetting") or {}
        return "forgetting" in self.scores and opts.get("counted") == "during_training"

    def to_dict(self) -> dict:
        """The resolved spec as plain YAML-ready data (recipes flattened as in the files)."""
        out = asdict(self)
        out["replicas"] = flatten_recipe(out["replicas"])
        out["evaluate"]["models"] = [flatten_recipe(m) for m in out["evaluate"]["models"]]
        return out

    def to_yaml(self) -> str:
        """The resolved spec as YAML (includes and overrides applied)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def flatten_recipe(section: dict) -> dict:
    """A replicas or model section with its nested ``recipe`` fields inlined, as in the files."""
    section = dict(section)
    recipe = section.pop("recipe")
    if section.get("finetune") is not None or section.get("weights") is not None:
        # its training options live under finetune: (or it is not trained at all)
        recipe = {k: v for k, v in recipe.items() if k not in FINETUNE_OWNS}
    elif "finetune" in section:  # a model trained from scratch: no empty fine-tune fields
        section.pop("finetune")
        if section.get("weights") is None:
            section.pop("weights", None)
    return {**section, **recipe}
