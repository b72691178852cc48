"""Spec sections of the evaluation: the models trained and measured on the benchmark."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from engine.spec.common import NAME_PATTERN, FieldError, check_gpus
from engine.spec.finetune import WEIGHTS_PRETRAINED, FinetuneOptions
from engine.spec.model_recipes import TextRecipe, TrainRecipe

REFERENCE_LARGER = "larger"  # evaluate.reference_models default: models bigger than the ensemble
METHODS = ("erm", "groupdro", "upsample", "curriculum")  # how an evaluated model is trained
PACINGS = ("linear", "root")  # how the curriculum's share of the samples grows over the epochs
GROUP_EDGES_HALF = "half"  # mitigation.group_edges: the paper's two bands, confusion < ln K / 2


@dataclass(frozen=True)
class MitigationOptions:
    """Settings of the mitigations (:class:`MitigationSpec` extends these with the method).

    Attributes:
        groups: Number of quantile groups (GroupDRO).
        group_edges: Fixed GroupDRO group edges in the score's units instead of quantile
            groups (ascending; ``len + 1`` groups), or ``half``: the paper's two bands,
            confusion below and at or above ln K / 2.
        eta: GroupDRO step size.
        factor: Upsampling factor of the hard samples.
        hard_fraction: Share of training samples counted hard (upsampling).
        start_fraction: Curriculum's first-epoch share.
        ramp_fraction: Share of the epochs over which the curriculum reaches all data.
        pacing: ``linear`` or ``root``.
    """

    groups: int = 4
    group_edges: list[float] | str | None = None
    eta: float = 0.01
    factor: float = 3.0
    hard_fraction: float = 0.1
    start_fraction: float = 0.3
    ramp_fraction: float = 0.5
    pacing: str = "linear"


@dataclass(frozen=True)
class MitigationSpec(MitigationOptions):
    """How an evaluated model is trained: ``erm`` or a confusion-based mitigation.

    ``score`` (one of the run's scores, read in its own direction: the lowest AUM is
    the hardest) ranks the training samples;
    ``groupdro`` uses ``groups`` equal-count bins of it (or the fixed ``group_edges``)
    and step size ``eta``;
    ``upsample`` repeats the hardest ``hard_fraction`` ``factor`` times per epoch;
    ``curriculum`` trains easy to hard, from ``start_fraction`` of the samples to all
    of them over the first ``ramp_fraction`` of the epochs (``pacing`` linear or root).
    """

    method: str = "erm"
    score: str = "confusion"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise FieldError("method", f"must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.groups < 2:
            raise FieldError("groups", f"must be >= 2, got {self.groups}")
        edges = self.group_edges
        if isinstance(edges, str):
            if edges != GROUP_EDGES_HALF:
                raise FieldError(
                    "group_edges",
                    f"must be a list of numbers or {GROUP_EDGES_HALF!r}, got {edges!r}",
                )
            if self.score != "confusion":
                raise FieldError(
                    "group_edges",
                    f"{GROUP_EDGES_HALF!r} splits confusion at ln K / 2 nats; score {self.score!r} "
                    "is in other units: give its edges as a list",
                )
        elif edges is not None:
            if (
                not edges
                or not all(isinstance(e, int | float) for e in edges)
                or any(b <= a for a, b in itertools.pairwise(edges))
            ):
                raise FieldError(
                    "group_edges", f"must be a non-empty strictly ascending list, got {edges}"
                )
        if edges is not None and self.method != "groupdro":
            raise FieldError("group_edges", f"applies to groupdro, not {self.method!r}")
        if not self.eta > 0:
            raise FieldError("eta", f"must be > 0, got {self.eta}")
        if self.factor < 1:
            raise FieldError("factor", f"must be >= 1, got {self.factor}")
        for name in ("hard_fraction", "start_fraction", "ramp_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise FieldError(name, f"must be in (0, 1], got {getattr(self, name)}")
        if self.pacing not in PACINGS:
            raise FieldError("pacing", f"must be one of {', '.join(PACINGS)}, got {self.pacing!r}")


IMAGENET_CLASSES = 1000  # an ImageNet head: what an entry with weights and no finetune needs
FINETUNE_OWNS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "augment")
# recipe fields a fine-tuned entry sets under finetune: instead (refused at the top level)


@dataclass(frozen=True)
class EvalModelSpec:
    """A model trained by the engine on the training split and evaluated on the splits.

    Trained from scratch, its Ray task reserves ``cpus`` CPUs and ``gpus`` GPUs (a
    fraction shares a GPU). With ``finetune`` it is fine-tuned on Ray Train instead
    (:class:`FinetuneOptions`: workers, their CPUs and GPUs, mode, schedule...), from
    ``weights``: ``pretrained`` (the registry's weights, read from local disk), a
    state-dict file, or none (from scratch); the pretrained head is reset to the
    benchmark's classes. The recipe's ``model``, ``model_kwargs`` and ``seed`` apply.
    With ``weights`` and no ``finetune``, an ImageNet model is evaluated as it is, on a
    benchmark whose classes are ImageNet classes (its head cut to them, see
    :mod:`engine.models.imagenet`), in its Ray task of ``cpus`` and ``gpus``. What the
    model registry says of ``model`` (an ImageNet head, a classifier to reset) is
    checked with the other registered names (:func:`engine.spec.validate.check_registered`).
    ``seeds: k`` (classification) also trains the recipe as a k-seed ensemble (seeds
    ``seed`` .. ``seed + k - 1``) that records its per-epoch predictions like the
    replicas, under ``<run>/ensembles/<name>/``, so the architecture gets a confusion
    score of its own by the same formula (the paper's Figure 3); the model measured
    on the splits stays the single seed.
    """

    name: str
    recipe: TrainRecipe | TextRecipe  # the task's recipe, its fields inline in the YAML entry
    cpus: float = 1.0
    gpus: float = 0.0
    mitigation: MitigationSpec = field(default_factory=MitigationSpec)
    weights: str | None = None
    finetune: FinetuneOptions | None = None
    seeds: int = 1

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise FieldError("name", f"must match {NAME_PATTERN.pattern}, got {self.name!r}")
        if not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 1:
            raise FieldError("seeds", f"must be a whole number >= 1, got {self.seeds!r}")
        if self.seeds > 1 and (self.finetune is not None or self.weights is not None):
            raise FieldError(
                "seeds",
                "a seed ensemble trains the recipe from scratch like the replicas; a model "
                "with weights or finetune is measured with one seed (seeds: 1)",
            )
        if not self.cpus > 0:
            raise FieldError("cpus", f"must be > 0, got {self.cpus}")
        check_gpus("gpus", self.gpus)
        if self.finetune is not None:
            if self.mitigation.method != "erm":
                raise FieldError("mitigation", "a fine-tuned model trains with erm only")
            if self.weights is not None and self.weights != WEIGHTS_PRETRAINED:
                from pathlib import Path

                if not Path(self.weights).is_file():
                    raise FieldError("weights", f"must be {WEIGHTS_PRETRAINED!r} or a state-dict "
                                                f"file; {self.weights} is not a file")  # fmt: skip
            if self.finetune.mode == "linear_probe" and self.weights is None:
                raise FieldError("finetune.mode", "linear_probe needs weights (pretrained or a "
                                                  "file): a random backbone has nothing to probe")  # fmt: skip


@dataclass(frozen=True)
class EvaluateSpec:
    """Which models are evaluated; ``ensemble`` adds the replicas' final-epoch ensemble.

    The ensemble is the scorer itself: its bins are cut from its own confusion, so its
    row is in-sample and is labelled so, never a transfer result.
    ``reference_models`` are the models whose ensemble confusion the small ensemble's
    score is compared with (Kendall's tau): ``larger`` (the default) takes every
    evaluated model with more parameters than the whole replica ensemble (R times one
    replica), or list the names.

    Every evaluated model predicts every sample through a Ray Data actor pool
    (:mod:`engine.distributed.evaluation`), its predictions streamed to Parquet:
    ``actors`` of them (``"auto"``: one per block, as many as fit in the cluster's CPUs
    minus one, which Ray Data's reads need, and in its GPUs), each reserving
    ``cpus_per_actor`` CPUs and ``gpus_per_actor`` GPUs. ``hardbench eval`` uses the same
    defaults (the CLI can override them).
    """

    models: list[EvalModelSpec] = field(default_factory=list)
    ensemble: bool = True
    reference_models: list[str] | str = REFERENCE_LARGER
    actors: int | str = "auto"
    cpus_per_actor: float = 0.5
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
        if self.actors != "auto" and not (
            isinstance(self.actors, int) and not isinstance(self.actors, bool) and self.actors >= 1
        ):
            raise FieldError("actors", f"must be 'auto' or an integer >= 1, got {self.actors!r}")
        if not self.cpus_per_actor > 0:
            raise FieldError("cpus_per_actor", f"must be > 0, got {self.cpus_per_actor}")
        check_gpus("gpus_per_actor", self.gpus_per_actor)
