"""The built-in tasks' registry entries: recipes, sources, defaults and the checks only they make."""

from __future__ import annotations

from engine.spec import BenchmarkSpec
from engine.spec.common import FieldError
from engine.spec.model_recipes import TextRecipe, TrainRecipe
from engine.tasks.registry import TaskInfo, register_task

# Scores the text tasks' reduced shards can give (span or token entropy, loss, margin, correctness)
TEXT_SCORES = (
    "confusion",
    "action",
    "aum",
    "forgetting",
    "confidence",
    "variability",
    "correctness",
)

# Scores of the text tasks read from input gradients, recorded on shards.grad_epochs only
TEXT_GRADIENT_SCORES = ("vog",)

# How a text model may train: the side-by-side loop orders its samples (no loss weights)
TEXT_MITIGATIONS = ("erm", "upsample", "curriculum")

OTHER_TASK_FAMILIES = ("qa", "seq2seq")  # registered model families a classifier is not


def _classification_sources() -> list[str]:
    from engine.data import list_sources

    return list_sources()


def _check_classifiers(spec: BenchmarkSpec) -> None:
    """Refuse a registered model of another task (a span reader, an encoder-decoder)."""
    from engine.models import get_model_config

    models = [("replicas.model", spec.replicas.recipe.model)]
    models += [(f"evaluate.models[{i}].model", m.recipe.model)
               for i, m in enumerate(spec.evaluate.models)]  # fmt: skip
    for where, model in models:
        family = get_model_config(model).family
        if family in OTHER_TASK_FAMILIES:
            raise FieldError(
                where, f"{model!r} is a {family} model, not a classifier: choose a model "
                "`hardbench models` lists in another family"
            )  # fmt: skip


def _validate_classification(spec: BenchmarkSpec) -> None:
    d = spec.data
    _check_classifiers(spec)
    if d.label_lists:
        raise FieldError("data.label_lists", "a list of labels per sample is multi-label data: "
                         "set task.name: multilabel")  # fmt: skip
    if spec.replicas.recipe.augment and len(spec.replicas.packs()) < spec.replicas.count:
        raise FieldError(
            "replicas.augment", "packed replicas (pack_size > 1) train without augmentation"
        )
    if spec.shards.predict == "ray_data" and len(spec.replicas.packs()) < spec.replicas.count:
        raise FieldError("shards.predict", "ray_data predicts one replica's epochs at a time: "
                         "set replicas.pack_size: 1 or predict inline")  # fmt: skip
    if len(spec.replicas.packs()) < spec.replicas.count:
        from engine.training.packed import recipe_unpackable_reason

        reason = recipe_unpackable_reason(spec.replicas.recipe)
        if reason is not None:
            raise FieldError("replicas.pack_size", reason)
    from engine.data.registry import get_source, list_registered_sources

    sources = [("data", d)] if d.train is None else []
    sources += [(f"data.{n}", getattr(d, n)) for n in ("train", "pool") if getattr(d, n)]
    for where, src in sources:
        if src.source not in list_registered_sources():
            raise FieldError(
                f"{where}.source",
                f"must be one of {', '.join(list_registered_sources())}, got {src.source!r}",
            )
        if get_source(src.source).needs_path and not src.path:
            raise FieldError(f"{where}.path", f"the {src.source} source needs a path")
        if not get_source(src.source).needs_path and src.path:
            raise FieldError(f"{where}.path", f"the bundled {src.source} source takes no path")


SOURCE_FIELDS = ("path", "image_column", "text_column", "id_column", "split_column",
                 "class_names", "image_size", "channels", "cache_dir", "encoding")  # fmt: skip

TEXT_LABELS = {"qa": "answers", "seq2seq": "references"}  # what text samples are labelled with

TEXT_TABLE_FIELDS = (
    "path",
    "id_column",
    "split_column",
    "cache_dir",
    "encoding",
)  # what a text table takes


def _check_text_source(spec: BenchmarkSpec) -> None:
    """QA and seq2seq read their bundled corpus, or a table of fixed columns (a ``path``)."""
    d = spec.data
    table = d.source == "table"
    if table and not d.path:
        raise FieldError("data.path", f"the table source needs a path (a {spec.task.name} table)")
    for name in (*SOURCE_FIELDS, "train", "pool"):
        if getattr(d, name) is not None and not (table and name in TEXT_TABLE_FIELDS):
            raise FieldError(
                f"data.{name}",
                f"{spec.task.name} reads its bundled corpus ({d.source})"
                if not table
                else f"a {spec.task.name} table has fixed columns; "
                f"set only {', '.join(TEXT_TABLE_FIELDS)}",
            )


def _check_text_splits(spec: BenchmarkSpec) -> None:
    """What the shared split builder cannot mean for samples that are texts without classes.

    Every hard rule, bin edges, any pool and the ``hf`` export are cut as for
    classification; refused are a per-class rule and image folders (no classes, no
    images) and ``label_free`` (the samples always carry their answers or references:
    the replicas train on them and every evaluated model is measured against them).
    """
    name, splits = spec.task.name, spec.splits
    if splits.hard.per_class:
        raise FieldError(
            "splits.hard.per_class", f"{name} samples have no classes to cut the hard split within"
        )
    if "imagefolder" in splits.exports:
        raise FieldError(
            f"splits.exports[{splits.exports.index('imagefolder')}]",
            f"imagefolder writes images sorted by class; {name} samples are texts without "
            "classes: export parquet or hf",
        )
    if splits.label_free:
        raise FieldError(
            "splits.label_free",
            f"{name} samples always carry their {TEXT_LABELS[name]}: the replicas train on them "
            "and every evaluated model is measured against them (an unlabelled pool of "
            f"{name} samples is not supported); a split by confusion reads none of them anyway",
        )


def _validate_text(spec: BenchmarkSpec) -> None:
    """What the side-by-side text ensembles (QA, seq2seq) need of a spec."""
    _check_text_source(spec)
    name = spec.task.name
    r = spec.replicas
    if r.count < 2:
        raise FieldError("replicas.count", f"a seed ensemble needs >= 2 replicas, got {r.count}")
    if r.pack_size != "all":
        raise FieldError(
            "replicas.pack_size",
            f"{name} replicas train side by side in one task: must be 'all', got {r.pack_size!r}",
        )
    if r.cpus_per_worker < 1 or r.cpus_per_worker != int(r.cpus_per_worker):
        raise FieldError(
            "replicas.cpus_per_worker",
            f"must be a whole number >= 1 (torch threads), got {r.cpus_per_worker}",
        )
    if r.gpus_per_worker > 1:
        raise FieldError(
            "replicas.gpus_per_worker",
            f"must be in [0, 1] (one task, one GPU), got {r.gpus_per_worker}",
        )
    if spec.shards.predict != "inline":
        raise FieldError("shards.predict", f"{name} replicas predict inline (side by side)")
    if spec.shards.mode != "reduced" or spec.shards.top_k is not None:
        raise FieldError(
            "shards", f"{name} replicas write reduced shards only: mode: reduced, no top_k"
        )
    computable = (*TEXT_SCORES, *TEXT_GRADIENT_SCORES)
    if spec.shards.grad_epochs and not set(TEXT_GRADIENT_SCORES) & set(spec.scores):
        raise FieldError(
            "shards.grad_epochs",
            f"{name} replicas record input gradients for {', '.join(TEXT_GRADIENT_SCORES)} "
            "only: add it to scores or drop grad_epochs",
        )
    for i, score in enumerate(spec.scores):
        if score not in computable:
            raise FieldError(
                f"scores[{i}]",
                f"{score!r} is not computable from {name}'s reduced shards; choose from "
                f"{', '.join(computable)}",
            )
    for need in ("confusion", "action"):
        if need not in spec.scores:
            raise FieldError("scores", f"must include {need!r} (the comparison needs it)")
    noise = spec.data.label_noise
    if noise is not None and (noise.kind != "uniform" or noise.confusable is not None):
        raise FieldError("data.label_noise", f"{name} answers have no classes to confuse: "
                         "kind uniform (wrong spans or swapped targets), no confusable")  # fmt: skip
    _check_text_splits(spec)
    for i, m in enumerate(spec.evaluate.models):
        if m.mitigation.method not in TEXT_MITIGATIONS:
            raise FieldError(
                f"evaluate.models[{i}].mitigation",
                f"reweights per-sample losses in the classification training loop; {name} "
                f"models train without one: {m.mitigation.method} is refused, use method "
                f"{', '.join(TEXT_MITIGATIONS)}",
            )
        if m.mitigation.method != "erm" and m.mitigation.score not in computable:
            raise FieldError(
                f"evaluate.models[{i}].mitigation.score",
                f"{m.mitigation.score!r} is not computable from {name}'s reduced shards; "
                f"choose from {', '.join(computable)}",
            )
        if m.cpus < 1 or m.cpus != int(m.cpus) or m.gpus > 1:
            raise FieldError(
                f"evaluate.models[{i}]", "cpus must be a whole number >= 1 and gpus in [0, 1]"
            )
    if name == "seq2seq" and spec.evaluate.ensemble:
        raise FieldError(
            "evaluate.ensemble",
            "a seq2seq ensemble of replicas has no decoding to evaluate: set false",
        )


MULTILABEL_SOURCES = ("table", "hf_disk")  # sources whose label column can hold lists
MULTILABEL_SCORES = ("confusion", "action", "confidence", "variability", "correctness",
                     "forgetting")  # fmt: skip  # the scores a multilabel run's defaults compute


def _validate_multilabel(spec: BenchmarkSpec) -> None:
    """What a multi-label run cannot do: packs, reduced or top-k shards, per-class rules, ..."""
    from engine.scores.multilabel_registry import list_multilabel_scores

    d, r, splits = spec.data, spec.replicas, spec.splits
    _check_classifiers(spec)
    if spec.shards.predict != "inline":
        raise FieldError("shards.predict", "multi-label replicas predict inline")
    if not d.label_lists:
        raise FieldError("data.label_lists", "a multilabel run reads a list of labels per sample")
    for where, src in [("data", d), ("data.train", d.train), ("data.pool", d.pool)]:
        if src is not None and src.source not in MULTILABEL_SOURCES:
            raise FieldError(f"{where}.source", f"must be one of {', '.join(MULTILABEL_SOURCES)} "
                             f"(a label column of lists), got {src.source!r}")  # fmt: skip
    if len(r.packs()) < r.count:
        raise FieldError("replicas.pack_size", "multi-label replicas train one by one: set 1")
    if spec.shards.mode != "full" or spec.shards.top_k is not None or spec.shards.grad_epochs:
        raise FieldError("shards", "multi-label replicas write full shards: mode: full, no "
                         "top_k, no grad_epochs")  # fmt: skip
    for i, score in enumerate(spec.scores):
        if score not in list_multilabel_scores():
            raise FieldError(f"scores[{i}]", f"{score!r} has no multi-label form; choose from "
                             f"{', '.join(list_multilabel_scores())}")  # fmt: skip
    for name in ("label_noise", "pool_labels"):
        if getattr(d, name) is not None:
            raise FieldError(f"data.{name}", "takes one label per sample, not a label list")
    if splits.hard.per_class:
        raise FieldError("splits.hard.per_class",
                         "a multi-label sample has several classes: no class to cut within")  # fmt: skip
    if "imagefolder" in splits.exports:
        raise FieldError(f"splits.exports[{splits.exports.index('imagefolder')}]",
                         "imagefolder sorts images by their one class; a multi-label sample has "
                         "several: export parquet or hf")  # fmt: skip
    if splits.label_free:
        raise FieldError("splits.label_free", "multi-label runs are evaluated against label sets")
    for i, m in enumerate(spec.evaluate.models):
        if m.mitigation.method != "erm":
            raise FieldError(f"evaluate.models[{i}].mitigation",
                             "multi-label models train without one: use method erm")  # fmt: skip
        if m.weights is not None:
            raise FieldError(f"evaluate.models[{i}].weights", "multi-label models train from "
                             "scratch here (pretrained heads and fine-tuning are single-label)")  # fmt: skip


def _text_ingest(spec: BenchmarkSpec) -> str:
    """QA and seq2seq tokenize a table in their first run and read a bundled corpus in memory."""
    if spec.data.source == "table":
        return (
            f"a {spec.task.name} table is tokenized by its first run (and kept under the runs "
            "directory's _datasets for the next); there is nothing to ingest"
        )
    return f"{spec.data.source} is read in memory; there is nothing to ingest"


def _text_defaults(source: str, ensemble: bool) -> dict:
    return {
        "data": {"source": source, "heldout_fraction": 0.2},
        "replicas": {"pack_size": "all"},
        "shards": {"mode": "reduced", "block_size": 2048},
        "scores": list(TEXT_SCORES),
        "splits": {"hard": {"hardest_fraction": 0.2}},
        "evaluate": {"ensemble": ensemble},
    }


register_task(
    TaskInfo(
        name="classification",
        description="image or text classification; evaluated models measured by top-1 error",
        recipe=TrainRecipe,
        sources=_classification_sources,
        plugin="engine.tasks.classification:ClassificationTask",
        validate=_validate_classification,
    )
)
register_task(
    TaskInfo(
        name="multilabel",
        description="multi-label classification (a list of labels per sample); measured by "
        "the F1 of the predicted label set",
        recipe=TrainRecipe,
        sources=lambda: list(MULTILABEL_SOURCES),
        plugin="engine.tasks.multilabel:MultilabelTask",
        defaults={
            "data": {"source": "table", "label_lists": True},
            "scores": list(MULTILABEL_SCORES),
        },
        validate=_validate_multilabel,
    )
)
register_task(
    TaskInfo(
        name="qa",
        description="extractive QA (span readers); evaluated readers measured by EM and F1",
        recipe=TextRecipe,
        sources=lambda: ["quoref", "table"],
        plugin="engine.tasks.qa:QATask",
        defaults=_text_defaults("quoref", ensemble=True),
        validate=_validate_text,
        nothing_to_ingest=_text_ingest,
        reduced_gradients=True,
    )
)
register_task(
    TaskInfo(
        name="seq2seq",
        description="sequence to sequence (encoder-decoders); measured by ROUGE-L and reference NLL",
        recipe=TextRecipe,
        sources=lambda: ["qasc_fusion", "table"],
        plugin="engine.tasks.seq2seq:Seq2SeqTask",
        defaults=_text_defaults("qasc_fusion", ensemble=False),
        validate=_validate_text,
        nothing_to_ingest=_text_ingest,
        reduced_gradients=True,
    )
)
