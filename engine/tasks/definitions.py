"""The built-in tasks' registry entries: recipes, sources, defaults and the checks only they make."""

from __future__ import annotations

from engine.spec.common import FieldError
from engine.tasks.registry import TaskInfo, register_task
from engine.training.classification import TrainRecipe
from engine.training.qa import TextRecipe

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


def _classification_sources() -> list[str]:
    from engine.data import list_sources

    return list_sources()


def _validate_classification(spec: object) -> None:
    d = spec.data
    if spec.replicas.recipe.augment and len(spec.replicas.packs()) < spec.replicas.count:
        raise FieldError(
            "replicas.augment", "packed replicas (pack_size > 1) train without augmentation"
        )
    if d.source == "rotten_tomatoes":
        if d.limit is not None:
            raise FieldError("data.limit", "applies to ingested sources, not rotten_tomatoes")
        return
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


TEXT_TABLE_FIELDS = (
    "path",
    "id_column",
    "split_column",
    "cache_dir",
    "encoding",
)  # what a text table takes


def _check_text_source(spec: object) -> None:
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


def _validate_text(spec: object) -> None:
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
    if spec.shards.mode != "reduced" or spec.shards.top_k is not None or spec.shards.grad_epochs:
        raise FieldError(
            "shards",
            f"{name} replicas write reduced shards only: mode: reduced, no top_k, no grad_epochs",
        )
    for i, score in enumerate(spec.scores):
        if score not in TEXT_SCORES:
            raise FieldError(
                f"scores[{i}]",
                f"{score!r} is not computable from {name}'s reduced shards; choose from "
                f"{', '.join(TEXT_SCORES)}",
            )
    for need in ("confusion", "action"):
        if need not in spec.scores:
            raise FieldError("scores", f"must include {need!r} (the comparison needs it)")
    if spec.data.label_noise is not None:
        raise FieldError("data.label_noise", f"applies to classification, not {name}")
    if spec.splits.pool not in ("heldout", "all"):
        raise FieldError(
            "splits.pool", f"must be heldout or all for {name}, got {spec.splits.pool!r}"
        )
    if spec.splits.label_free or spec.splits.exports != ["parquet"] or spec.splits.hard.per_class:
        raise FieldError(
            "splits", f"{name} splits are Parquet files with their texts: no label_free, "
            "per_class or other exports"
        )  # fmt: skip
    if spec.splits.hard.rule not in ("hardest_fraction",):
        raise FieldError("splits.hard", f"{name} cuts the hardest fraction: use hardest_fraction")
    if spec.splits.bins.edges is not None:
        raise FieldError("splits.bins.edges", f"{name} uses equal-count bins: give count")
    for i, m in enumerate(spec.evaluate.models):
        if m.mitigation.method != "erm":
            raise FieldError(
                f"evaluate.models[{i}].mitigation", f"applies to classification, not {name}"
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
        name="qa",
        description="extractive QA (span readers); evaluated readers measured by EM and F1",
        recipe=TextRecipe,
        sources=lambda: ["quoref", "table"],
        plugin="engine.tasks.qa:QATask",
        defaults=_text_defaults("quoref", ensemble=True),
        validate=_validate_text,
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
    )
)
