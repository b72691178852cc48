"""The scoring stage of every task: consolidate the manifests, score through Ray Data, write the table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from engine.distributed.cluster import ray_session
from engine.distributed.scoring import score_run
from engine.layout import SCORES_FILE
from engine.lifecycle.rundir import RunSetupError, read_run_spec
from engine.shards import atomic_write_table, consolidate_manifest, num_blocks
from engine.spec import BenchmarkSpec
from engine.tasks import get_task, load_data


def score_stage(
    run_dir: Path,
    run_id: str,
    spec: BenchmarkSpec,
    data: object,
    *,
    allow_partial: bool,
    scores: list[str] | None = None,
    out: Path | None = None,
) -> tuple[pa.Table, dict]:
    """Consolidate the manifest, score through the Ray Data pool, write the scores table.

    Needs Ray to be initialised. ``data`` is the task's data (it has a ``split``
    array, one entry per sample id). The table's schema metadata records the
    scores, the replicas and epochs used, and whether the run was complete.

    Returns:
        The table (``sample_id``, ``split``, ``label``, a column per score,
        ``ensemble_pred``, ``ensemble_conf``) and ``{"replicas", "epochs", "complete"}``.
    """
    n = len(data.split)
    n_blocks = num_blocks(n, spec.shards.block_size)
    manifest = consolidate_manifest(
        run_dir,
        replicas=spec.replicas.count,
        epochs=spec.replicas.recipe.epochs,
        blocks=n_blocks,
        allow_partial=allow_partial,
    )
    names = scores or spec.scores
    table = score_run(
        run_dir,
        replicas=manifest["replicas"],
        epochs=manifest["epochs"],
        num_blocks=n_blocks,
        scores=names,
        cpus_per_actor=spec.scoring.cpus_per_actor,
        num_actors=spec.scoring.num_actors,
        options=spec.score_options,
        groups=data.split,
        has_classes=get_task(spec.task.name).runtime().class_names(data) is not None,
    )
    if table.num_rows != n:
        raise RuntimeError(f"scores table has {table.num_rows} rows for {n} samples")
    table = table.add_column(1, "split", pa.array(data.split[table.column("sample_id").to_numpy()]))
    scored_on = {
        "replicas": manifest["replicas"],
        "epochs": manifest["epochs"],
        "complete": manifest["complete"],
    }
    meta = {"run_id": run_id, "scores": names, **scored_on}
    table = table.replace_schema_metadata({b"hardbench": json.dumps(meta).encode()})
    atomic_write_table(out or run_dir / SCORES_FILE, table)
    return table, scored_on


def score_existing_run(
    run_dir: Path | str,
    *,
    scores: list[str] | None = None,
    allow_partial: bool = False,
    out: Path | str | None = None,
    num_cpus: int | None = None,
) -> tuple[Path, dict]:
    """Re-score a run's shards (other scores, or a partial run) into a new scores table.

    Args:
        run_dir: A run directory holding ``spec.yaml`` and ``preds/``.
        scores: Score names (default: the spec's).
        allow_partial: Score the finished (replica, epoch) pairs of an unfinished run;
            the output's metadata lists which were used.
        out: Output Parquet path (default ``<run>/scores.rescored.parquet``); an existing
            file is never overwritten.
        num_cpus: CPUs of a local Ray cluster.

    Returns:
        The output path and ``{"replicas", "epochs", "complete"}`` actually used.

    Raises:
        RunSetupError: For a directory that is not a run, or an existing output file.
        ValueError: For an unknown score name.
    """
    from engine.scores import get_score

    run_dir = Path(run_dir).resolve()
    spec = read_run_spec(run_dir)
    out_path = Path(out) if out else run_dir / "scores.rescored.parquet"
    if out_path.exists():
        raise RunSetupError(
            f"{out_path} exists; pass another --out (outputs are never overwritten)"
        )
    for name in scores or []:
        get_score(name)
    data = load_data(spec, run_dir)
    with ray_session(num_cpus):
        _, scored_on = score_stage(
            run_dir, run_dir.name, spec, data, allow_partial=allow_partial, scores=scores,
            out=out_path,
        )  # fmt: skip
    return out_path, scored_on
