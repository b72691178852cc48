"""Seed ensembles of evaluated architectures: each trained like the replicas, scored the same way.

The paper's Figure 3 compares the confusion of two *seed ensembles* (one architecture,
several seeds, every epoch) by Kendall's tau. ``evaluate.models[].seeds: k`` trains
the model's recipe as a k-seed ensemble with the replica engine itself: a sub-run in
``<run>/ensembles/<name>/`` with its own spec (the run's, with that recipe as the
replicas, confusion as the only score), the run's dataset record, its per-epoch
shards and manifests, and a ``scores.parquet`` scored by the same pool. Packed (one
Ray task) when the recipe packs, else one Ray Train worker per replica; resumable
like the run (finished (replica, epoch) pairs are never redone).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from engine.distributed.replicas import train_replicas
from engine.layout import DATASET_FILE, ENSEMBLES_DIR, SCORES_FILE, SPEC_FILE
from engine.lifecycle.scoring import score_stage
from engine.shards import atomic_write_bytes
from engine.spec import BenchmarkSpec, EvalModelSpec
from engine.training.packed import recipe_unpackable_reason

ENSEMBLE_SCORE = "confusion"  # what a seed ensemble is scored by: the paper's Figure 3


def ensemble_dir(run_dir: Path | str, name: str) -> Path:
    """The sub-run folder of evaluated model ``name``'s seed ensemble."""
    return Path(run_dir) / ENSEMBLES_DIR / name


def ensemble_spec(spec: BenchmarkSpec, model: EvalModelSpec) -> BenchmarkSpec:
    """The run's spec with ``model``'s recipe as ``seeds`` replicas and confusion as the score.

    Replica r uses seed ``model.recipe.seed + r``; the shards keep what confusion
    needs (no input gradients); it packs into one task when the recipe packs.
    """
    packs = recipe_unpackable_reason(model.recipe) is None
    replicas = dataclasses.replace(
        spec.replicas, count=model.seeds, recipe=model.recipe, pack_size="all" if packs else 1
    )
    return dataclasses.replace(
        spec,
        metadata=dataclasses.replace(spec.metadata, name=f"{spec.metadata.name}-{model.name}"),
        replicas=replicas,
        scores=[ENSEMBLE_SCORE],
        score_options={},
        shards=dataclasses.replace(spec.shards, grad_epochs=[], predict="inline"),
        splits=dataclasses.replace(spec.splits, score=ENSEMBLE_SCORE),
        evaluate=dataclasses.replace(spec.evaluate, models=[], reference_models="larger"),
    )


def train_seed_ensembles(
    run_dir: Path | str,
    run_id: str,
    spec: BenchmarkSpec,
    data: object,
    *,
    attempt: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Train and score every evaluated model's seed ensemble (``seeds`` > 1); Ray must be up.

    Args:
        run_dir: The run directory (its ``dataset.json`` names the cache).
        run_id: The run's id (recorded in each ensemble's scores table).
        spec: The run's spec.
        data: The run's data (its ``split`` array).
        attempt: Which start of the run this is.
        log: Where progress lines go.

    Returns:
        Model name -> its ensemble's ``scores.parquet`` (``sample_id``, ``split``,
        ``confusion``, ...), for the models with ``seeds`` > 1.
    """
    out: dict[str, Path] = {}
    for model in spec.evaluate.models:
        if model.seeds < 2:
            continue
        sub = ensemble_dir(run_dir, model.name)
        sub.mkdir(parents=True, exist_ok=True)
        if not (sub / DATASET_FILE).exists():
            shutil.copyfile(Path(run_dir) / DATASET_FILE, sub / DATASET_FILE)
        sub_spec = ensemble_spec(spec, model)
        atomic_write_bytes(sub / SPEC_FILE, sub_spec.to_yaml().encode())

        def prefixed(line: str, name: str = model.name) -> None:
            log(f"[ensemble {name}] {line}")

        train_replicas(sub, sub_spec, attempt=attempt, log=prefixed)
        score_stage(sub, f"{run_id}/{model.name}", sub_spec, data, allow_partial=False)
        out[model.name] = sub / SCORES_FILE
        log(f"[ensembles] {model.name}: {model.seeds} seeds x {model.recipe.epochs} epochs "
            f"-> {(sub / SCORES_FILE).relative_to(run_dir)}")  # fmt: skip
    return out
