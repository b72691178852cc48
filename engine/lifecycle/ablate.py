"""``hardbench ablate``: how much of a run a difficulty score needs, from its shards alone.

Recomputes the score for subsets of the run's epochs and replicas (settings of
:mod:`engine.evaluation.ablation`) in one pass of the scoring pool, measures each on
the run's pool against the strongest evaluated model, writes ``eval/ablation.json``,
``eval/ablation.md``, ``eval/ablation_scores.parquet`` and two figures, and logs them
on the run's MLflow parent run. Nothing is retrained.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.distributed.ablation_scoring import score_settings
from engine.distributed.cluster import ray_session
from engine.evaluation.ablation import (
    DEFAULT_DRAWS,
    DEFAULT_EPOCH_COUNTS,
    DEFAULT_REPLICA_COUNTS,
    FULL,
    ablation_settings,
    format_ablation_table,
    histogram_edges,
    setting_figures,
)
from engine.evaluation.evaluate import BOOTSTRAP_RESAMPLES
from engine.layout import (
    BENCHMARK_DIR,
    DATASET_FILE,
    EVAL_DIR,
    EVAL_PREDICTIONS_FILE,
    METRICS_FILE,
    SCORES_FILE,
    SPLITS_DIR,
)
from engine.lifecycle.rundir import RunSetupError, read_run_spec, require_complete
from engine.shards import MANIFEST_NAME, atomic_write_bytes, atomic_write_table, preds_dir
from engine.tasks import get_task, load_data

ABLATION_FILE = "ablation.json"  # under eval/: one entry per setting
ABLATION_TABLE_FILE = "ablation.md"  # under eval/: the same as a Markdown table
ABLATION_SCORES_FILE = "ablation_scores.parquet"  # under eval/: sample_id + a column per setting
ABLATION_HIST_PLOT = "ablation_histograms.png"  # under eval/: the paper's Figure 5
ABLATION_CORR_PLOT = "ablation_correlations.png"  # under eval/: the paper's Figure 6
MLFLOW_ARTIFACT_PATH = "ablation"  # the parent run's artifact folder for these files


def strongest_model(run_dir: Path) -> tuple[str | None, np.ndarray | None, np.ndarray | None]:
    """The evaluated model with the lowest pool error, and its per-sample errors.

    The scorer (``in_sample``) and label-free evaluations are not candidates.

    Returns:
        ``(model, sample_ids int64 (P,), error float64 (P,) 1 where wrong)``, or three
        None when the run evaluated no model against labels.
    """
    metrics_path = run_dir / EVAL_DIR / METRICS_FILE
    preds_path = run_dir / EVAL_DIR / EVAL_PREDICTIONS_FILE
    if not metrics_path.exists() or not preds_path.exists():
        return None, None, None
    candidates = [
        ev for ev in json.loads(metrics_path.read_text())
        if not ev.get("in_sample") and not ev.get("label_free")
        and isinstance(ev.get("error_all"), float) and not math.isnan(ev["error_all"])
    ]  # fmt: skip
    preds = pq.read_table(preds_path)
    candidates = [ev for ev in candidates if f"pred_{ev['model']}" in preds.column_names]
    if not candidates or "label" not in preds.column_names:
        return None, None, None
    best = min(candidates, key=lambda ev: ev["error_all"])["model"]
    wrong = preds.column(f"pred_{best}").to_numpy() != preds.column("label").to_numpy()
    return best, preds.column("sample_id").to_numpy(), wrong.astype(np.float64)


def _entropy_top(run_dir: Path, task: str, score: str) -> float | None:
    """The largest value of an entropy score (ln K; ln 2 per label), else None."""
    if score != "confusion":
        return None
    if task == "multilabel":
        return math.log(2)
    classes = json.loads((run_dir / DATASET_FILE).read_text()).get("class_names") or []
    return math.log(len(classes)) if len(classes) > 1 else None


def ablate_run(
    run_dir: Path | str,
    *,
    score: str = "confusion",
    epoch_counts: tuple[int, ...] = DEFAULT_EPOCH_COUNTS,
    replica_counts: tuple[int, ...] | None = None,
    draws: int = DEFAULT_DRAWS,
    seed: int | None = None,
    overwrite: bool = False,
    num_cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the epochs-and-seeds ablation of ``score`` on a complete run.

    Args:
        run_dir: A complete run directory.
        score: The registered score to recompute (default ``confusion``).
        epoch_counts: Numbers of epochs to try (all epochs always added).
        replica_counts: Numbers of replicas to try (all always added); None for the
            defaults (1 and 3), which a run whose shards keep only the replica mean
            (``shards.mode`` mean or reduced) skips with a note.
        draws: Distinct replica subsets per count.
        seed: Seed of the draws and the bootstrap (default: the run's replica seed).
        overwrite: Replace an earlier ablation's files.
        num_cpus: CPUs of a local Ray cluster.
        log: Where progress lines go.

    Returns:
        The ``eval/ablation.json`` record: ``{"score", "model", "pool", "hard_count",
        "histogram_edges", "notes", "settings": [...]}`` (each setting's figures as in
        :func:`engine.evaluation.ablation.setting_figures`).

    Raises:
        RunSetupError: For a run that is not complete, earlier ablation files without
            ``overwrite``, or replica subsets the shards cannot give.
        ValueError: For an unknown score or bad counts.
    """
    from engine.scores import get_score

    run_dir = Path(run_dir).resolve()
    require_complete(run_dir, "nothing to ablate")
    spec = read_run_spec(run_dir)
    get_score(score).refuse_as_hardness()  # it ranks samples hardest first below
    eval_dir = run_dir / EVAL_DIR
    outputs = [eval_dir / name for name in (ABLATION_FILE, ABLATION_TABLE_FILE,
               ABLATION_SCORES_FILE, ABLATION_HIST_PLOT, ABLATION_CORR_PLOT)]  # fmt: skip
    taken = [p.name for p in outputs if p.exists()]
    if taken and not overwrite:
        raise RunSetupError(
            f"{eval_dir} already holds {', '.join(taken)}; pass --overwrite to replace them"
        )
    seed = spec.replicas.recipe.seed if seed is None else seed
    manifest = json.loads((preds_dir(run_dir) / MANIFEST_NAME).read_text())
    notes: list[str] = []
    if spec.shards.mode != "full":
        if replica_counts:
            raise RunSetupError(
                f"replica subsets need each replica's predictions, and this run's shards keep "
                f"only their mean (shards.mode: {spec.shards.mode}); ablate epochs only "
                "(--replicas all) or rerun with shards.mode: full"
            )
        notes.append(f"shards.mode {spec.shards.mode}: no replica subsets (the shards keep "
                     "only the replica mean)")  # fmt: skip
        replica_counts = ()
    elif replica_counts is None:
        replica_counts = DEFAULT_REPLICA_COUNTS
    settings, more = ablation_settings(
        manifest["epochs"], manifest["replicas"], epoch_counts=tuple(epoch_counts),
        replica_counts=tuple(replica_counts), draws=draws, seed=seed,
    )  # fmt: skip
    notes += more
    log(f"[ablate] {len(settings)} settings of {score} from {len(manifest['replicas'])} "
        f"replicas x {len(manifest['epochs'])} epochs")  # fmt: skip

    scores_table = pq.read_table(run_dir / SCORES_FILE, columns=["sample_id", "split"])
    ids_all = scores_table.column("sample_id").to_numpy()
    split_values = np.asarray(scores_table.column("split").to_pylist())
    groups = np.empty(int(ids_all.max()) + 1, dtype=split_values.dtype)
    groups[ids_all] = split_values
    # a QA or seq2seq label is a span code or 0, no class: per-class steps work per split
    has_classes = (
        get_task(spec.task.name).runtime().class_names(load_data(spec, run_dir)) is not None
    )
    with ray_session(num_cpus):
        table = score_settings(
            run_dir, {s.name: {"replicas": list(s.replicas), "epochs": list(s.epochs)}
                      for s in settings},
            score=score, num_blocks=int(manifest["blocks"]), options=spec.score_options,
            groups=groups, cpus_per_actor=spec.scoring.cpus_per_actor,
            num_actors=spec.scoring.num_actors, has_classes=has_classes,
        )  # fmt: skip
    pool = pq.read_table(
        run_dir / BENCHMARK_DIR / SPLITS_DIR / "pool.parquet", columns=["sample_id", "is_hard"]
    )
    pool_ids = pool.column("sample_id").to_numpy()
    hard_count = int(np.asarray(pool.column("is_hard").to_numpy(zero_copy_only=False)).sum())
    row_of = np.searchsorted(table.column("sample_id").to_numpy(), pool_ids)
    model, model_ids, error = strongest_model(run_dir)
    if model is not None and not np.array_equal(model_ids, pool_ids):
        raise RunSetupError(
            f"{eval_dir / EVAL_PREDICTIONS_FILE} does not list the pool's samples in order"
        )
    if model is None:
        notes.append("no model was evaluated against labels: no correlations")
    on_pool = {s.name: table.column(s.name).to_numpy()[row_of] for s in settings}
    edges = histogram_edges(list(on_pool.values()), _entropy_top(run_dir, spec.task.name, score))
    figures = []
    for i, s in enumerate(settings):
        figures.append(setting_figures(
            s, score, on_pool[s.name], full_score=on_pool[FULL], sample_ids=pool_ids,
            hard_count=hard_count, edges=edges, error=error, n_boot=BOOTSTRAP_RESAMPLES,
            seed=seed,
        ))  # fmt: skip
        log(f"[ablate] {i + 1}/{len(settings)} {s.name}: mean {figures[-1]['mean']:.3f}, "
            f"r {figures[-1]['pearson_r']:+.3f}")  # fmt: skip
    record = {
        "score": score,
        "model": model,
        "pool": spec.splits.pool,
        "pool_size": len(pool_ids),
        "hard_count": hard_count,
        "seed": seed,
        "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        "histogram_edges": edges.tolist(),
        "notes": notes,
        "settings": figures,
    }
    return _write(run_dir, record, table, edges, log)


def _write(
    run_dir: Path, record: dict, table: pa.Table, edges: np.ndarray, log: Callable[[str], None]
) -> dict:
    """Write the ablation's files and log them on the run's MLflow parent run."""
    from engine.lifecycle.rundir import read_status
    from engine.tracking.ablation_plots import plot_ablation_correlations, plot_ablation_histograms

    eval_dir = run_dir / EVAL_DIR
    eval_dir.mkdir(parents=True, exist_ok=True)
    figures = record["settings"]
    columns = ["sample_id"] + [f["name"] for f in figures]
    atomic_write_table(eval_dir / ABLATION_SCORES_FILE, table.select(columns))
    text = format_ablation_table(figures, record["score"], record["model"])
    if record["notes"]:
        text += "\n" + "\n".join(f"- {note}" for note in record["notes"]) + "\n"
    atomic_write_bytes(eval_dir / ABLATION_TABLE_FILE, text.encode())
    atomic_write_bytes(
        eval_dir / ABLATION_FILE, json.dumps(record, indent=2, allow_nan=True).encode()
    )
    files = [eval_dir / ABLATION_FILE, eval_dir / ABLATION_TABLE_FILE,
             eval_dir / ABLATION_SCORES_FILE,
             plot_ablation_histograms(figures, edges, record["score"],
                                      eval_dir / ABLATION_HIST_PLOT)]  # fmt: skip
    if record["model"]:
        files.append(plot_ablation_correlations(figures, record["model"],
                                                eval_dir / ABLATION_CORR_PLOT))  # fmt: skip
    mlflow_info = read_status(run_dir).get("mlflow")
    if mlflow_info:
        from engine.tracking.mlflow_log import BuildRecorder, reconnect_uri

        spec = read_run_spec(run_dir)
        recorder = BuildRecorder(
            reconnect_uri(mlflow_info["tracking_uri"]), spec.tracking.experiment
        )
        recorder.attach(mlflow_info["parent_run_id"])
        values = {}
        for f in figures:
            values[f"ablation_{f['name']}_mean"] = f["mean"]
            for key in ("pearson_r", "auroc", "hard_overlap"):
                if not math.isnan(f[key]):
                    values[f"ablation_{f['name']}_{key}"] = f[key]
        recorder.summary(values, files, artifact_path=MLFLOW_ARTIFACT_PATH)
        log(f"[ablate] logged to MLflow run {mlflow_info['parent_run_id']}")
    log(f"[ablate] wrote {eval_dir / ABLATION_FILE} and {eval_dir / ABLATION_TABLE_FILE}")
    return record
