"""The spec's one validation step that reads the registries: tasks, sources, scores, models.

Every spec section checks its own fields when it is built and reads no registry, so
``import engine.spec`` loads no task, score, data or model code. What only a registry
can say is checked here, inside the functions (the registries sit in higher layers and
are imported on the first check):

- :func:`registered_task`: the task a spec names, whose recipe and defaults the loader
  needs before it builds the sections;
- :func:`check_registered`: every other registered name and option of a built spec
  (the task's sources, the scores and their options, that the split and the
  mitigations use computed scores, that the split's score measures hardness (not
  ``variability``: ambiguity), the models and what their registry entries allow, the
  direction of the split's score), then the task's own checks.
  :class:`engine.spec.BenchmarkSpec` runs it last when it is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.spec.common import FieldError
from engine.spec.evaluate import IMAGENET_CLASSES, EvalModelSpec
from engine.spec.model_recipes import TrainRecipe

if TYPE_CHECKING:
    from engine.scores.registry import ScoreInfo
    from engine.spec.benchmark import BenchmarkSpec
    from engine.tasks.registry import TaskInfo

SEED_ENSEMBLE_TASK = "classification"  # the task whose evaluated models train as seed ensembles

# what the reduced shards (shards.mode: reduced) store per sample: the scores' inputs they serve
REDUCED_INPUTS = frozenset({"mean_entropy", "loss", "margin", "correct", "p_true"})


def registered_task(name: object) -> TaskInfo:
    """The registered task ``name`` (the spec's ``task.name``).

    Raises:
        FieldError: At ``task.name``, listing the registered tasks.
    """
    from engine.tasks import get_task, list_tasks

    if name not in list_tasks():
        raise FieldError("task.name", f"must be one of {', '.join(list_tasks())}, got {name!r}")
    return get_task(name)


def check_registered(spec: BenchmarkSpec) -> None:
    """Check every registered name and option of ``spec``, then the task's own checks.

    Raises:
        FieldError: Naming the field's full path (``scores[1]``, ``evaluate.models[0].model``,
            ``splits.hard.top_fraction``...) and what the registry allows.
    """
    from engine.scores import get_score, list_scores

    task = registered_task(spec.task.name)
    sources = task.sources()
    if spec.data.source not in sources:
        raise FieldError(
            "data.source",
            f"must be one of the {task.name} sources ({', '.join(sources)}), "
            f"got {spec.data.source!r}",
        )

    def score(name: str, where: str) -> ScoreInfo:
        try:
            return get_score(name)
        except ValueError as exc:
            raise FieldError(where, str(exc)) from None

    def model(recipe: object, where: str) -> object:
        """The model config of a classification recipe (None for a recipe naming no model)."""
        if not isinstance(recipe, TrainRecipe):
            return None
        from engine.models import check_model_kwargs, get_model_config

        try:
            config = get_model_config(recipe.model)
        except ValueError as exc:
            raise FieldError(f"{where}.model", str(exc)) from None
        try:
            check_model_kwargs(recipe.model, recipe.model_kwargs)
        except ValueError as exc:
            raise FieldError(f"{where}.model_kwargs", str(exc)) from None
        return config

    infos = {name: score(name, f"scores[{i}]") for i, name in enumerate(spec.scores)}
    epochs = spec.replicas.recipe.epochs
    options = {}
    for name, info in infos.items():
        path = f"score_options.{name}"
        try:
            options[name] = info.resolve_options(spec.score_options.get(name))
        except ValueError as exc:
            raise FieldError(path, str(exc)) from None
        epoch = options[name].get("epoch")
        if epoch is not None and not -epochs <= epoch < epochs:
            raise FieldError(
                f"{path}.epoch",
                f"must be in [{-epochs}, {epochs}) for {epochs} epochs, got {epoch}",
            )
    if spec.splits.score in list_scores():  # one that measures no hardness cuts no hard split
        try:
            get_score(spec.splits.score).refuse_as_hardness()
        except ValueError as exc:
            raise FieldError("splits.score", str(exc)) from None
    for i, m in enumerate(spec.evaluate.models):
        if m.seeds > 1 and (
            spec.task.name != SEED_ENSEMBLE_TASK or not isinstance(m.recipe, TrainRecipe)
        ):
            raise FieldError(
                f"evaluate.models[{i}].seeds",
                f"seed ensembles of evaluated models are built for {SEED_ENSEMBLE_TASK} runs (the "
                f"replica engine trains them); a {spec.task.name} run measures each model with "
                "one seed (seeds: 1)",
            )
        if m.seeds > 1 and "confusion" not in spec.scores:
            raise FieldError(
                f"evaluate.models[{i}].seeds",
                "a seed ensemble's confusion is compared with the replicas' confusion (Kendall "
                "tau): add confusion to scores",
            )
    used = [(f"evaluate.models[{i}].mitigation.score", m.mitigation.score)
            for i, m in enumerate(spec.evaluate.models) if m.mitigation.method != "erm"]  # fmt: skip
    for where, name in [*used, ("splits.score", spec.splits.score)]:
        if name not in infos:
            raise FieldError(
                where,
                f"must be one of the computed scores ({', '.join(spec.scores)}), got {name!r}",
            )
    if spec.shards.mode == "reduced":
        stored = REDUCED_INPUTS | ({"input_grad"} if task.reduced_gradients else set())
        unsupported = [n for n, info in infos.items() if set(info.inputs(options[n])) - stored]
        if unsupported:
            raise FieldError(
                "scores",
                f"{', '.join(unsupported)} need K-sized probabilities or gradients, which "
                "reduced shards (shards.mode: reduced) do not store; use mode full or mean",
            )

    replicas = model(spec.replicas.recipe, "replicas")
    if "vog" in infos and replicas is not None:
        from engine.models.text import TOKEN_ID_FAMILIES, embeds_tokens

        recipe = spec.replicas.recipe
        if replicas.family in TOKEN_ID_FAMILIES and not embeds_tokens(
            recipe.model, recipe.model_kwargs
        ):
            raise FieldError(
                "replicas.model",
                f"vog on token ids differentiates the embedded tokens, and {recipe.model!r} "
                "exposes no token_embedding() layer with a padding id: train text_mlp or "
                "text_transformer replicas, or drop vog from scores",
            )
    for i, entry in enumerate(spec.evaluate.models):
        _check_eval_model(entry, model(entry.recipe, f"evaluate.models[{i}]"), i)

    splits = spec.splits
    info = infos[splits.score]
    if info.needs_labels and splits.label_free:
        raise FieldError(
            "splits.score", f"{splits.score!r} needs labels; label_free needs a label-free score"
        )
    try:
        splits.hard.check_direction(
            splits.score, higher_is_harder=info.higher_is_harder, direction=info.direction
        )
    except FieldError as exc:
        raise exc.prefixed("splits.hard") from None

    task.validate(spec)


def _check_eval_model(entry: EvalModelSpec, config: object, index: int) -> None:
    """What the model registry says an evaluated model's ``weights`` and ``finetune`` allow.

    Args:
        entry: ``evaluate.models[index]``.
        config: Its model's registry config (None for a recipe naming no registered model).
        index: Its position, for the field path.

    Raises:
        FieldError: For weights without finetune on a model with no ImageNet head, or
            weights to fine-tune on a model without a classifier head to reset.
    """
    if config is None or entry.weights is None:
        return
    where = f"evaluate.models[{index}]"
    if entry.finetune is None:  # evaluated as it is
        if config.num_classes != IMAGENET_CLASSES or config.classifier is None:
            raise FieldError(
                f"{where}.weights",
                f"{entry.recipe.model!r} is no ImageNet model to evaluate as it is: add a "
                "finetune: section (mode: linear_probe or full)",
            )
    elif config.classifier is None:
        raise FieldError(
            f"{where}.model",
            f"{entry.recipe.model!r} has no classifier head to reset for fine-tuning",
        )
