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
    if spec.data.limit is not None:
        raise FieldError("data.limit", "applies to the text corpora, not a classification source")


def _validate_text(spec: object) -> None:
    """What the side-by-side text ensembles (QA, seq2seq) need of a spec."""
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
        sources=lambda: ["quoref"],
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
        sources=lambda: ["qasc_fusion"],
        plugin="engine.tasks.seq2seq:Seq2SeqTask",
        defaults=_text_defaults("qasc_fusion", ensemble=False),
        validate=_validate_text,
    )
)
