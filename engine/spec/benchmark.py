"""The whole spec: one schema for every task (:class:`BenchmarkSpec`) and its run sections."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import yaml

from engine._util import has_credentials
from engine.scores import get_score
from engine.spec.common import CREDENTIALS_IN_URI, NAME_PATTERN, SPEC_VERSION, FieldError
from engine.spec.evaluate import EvaluateSpec
from engine.spec.splits import SplitsSpec
from engine.spec.training import DataSpec, ReplicasSpec, ScoringSpec, ShardsSpec
from engine.tasks import get_task, list_tasks


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

    ``name`` is a registered task (``classification``, ``qa``, ``seq2seq``); settings
    only one task has belong in this section.
    """

    name: str = "classification"

    def __post_init__(self) -> None:
        if self.name not in list_tasks():
            raise FieldError("name", f"must be one of {', '.join(list_tasks())}, got {self.name!r}")


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
    task takes, sets its defaults and checks what only it can.

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
        task = get_task(self.task.name)
        sources = task.sources()
        if self.data.source not in sources:
            raise FieldError(
                "data.source",
                f"must be one of the {task.name} sources ({', '.join(sources)}), "
                f"got {self.data.source!r}",
            )
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

        task.validate(self)

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

    def load_data(self, run_dir: object = None, log: object = print) -> object:
        """The task's data for this spec (classification, QA or seq2seq samples).

        Args:
            run_dir: The run directory: its dataset cache is used (recorded in
                ``dataset.json`` on the first load).
            log: Where ingest progress goes.
        """
        return get_task(self.task.name).runtime().load_data(self, run_dir, log)

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
        from engine.spec.evaluate import FINETUNE_OWNS

        recipe = {k: v for k, v in recipe.items() if k not in FINETUNE_OWNS}
    elif "finetune" in section:  # a model trained from scratch: no empty fine-tune fields
        section.pop("finetune")
        if section.get("weights") is None:
            section.pop("weights", None)
    return {**section, **recipe}
