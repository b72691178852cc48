"""The one run lifecycle of every task: stages, ``run.json``, resume, mirroring, card, report, MLflow.

``run_benchmark`` starts a run, ``resume_run`` continues one whose driver died or
failed. Both go through the same stages, in order: ``ray_init``, ``ingest``,
``train_replicas``, ``score``, ``build``, ``train_models``, ``seed_ensembles``
(only with seed ensembles of evaluated models), ``evaluate``, ``track``; the task plugin (:mod:`engine.tasks`) supplies what differs per task.
After every stage ``run.json`` is rewritten and the run mirrored; whatever fails,
``run.json`` says so and every finished stage's outputs stay, so a resume redoes
only what is missing. This module imports no Ray (``engine.distributed`` does).
"""

from __future__ import annotations

import json
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine._util import has_credentials, redact_uri
from engine.data.report import data_metrics
from engine.distributed.cluster import ray_session
from engine.layout import BENCHMARK_DIR, DATA_REPORT_FILE, SCORES_FILE, SPEC_FILE
from engine.lifecycle.driver import Heartbeat, check_driver, driver_alive, driver_record
from engine.lifecycle.record import CurveFeed, open_record
from engine.lifecycle.rundir import (
    RunSetupError,
    create_run_dir,
    new_run_id,
    read_run_spec,
    read_status,
    write_status,
)
from engine.lifecycle.scoring import score_stage
from engine.lifecycle.seed_ensembles import train_seed_ensembles
from engine.processes import ALIVE, GONE
from engine.scores import get_score
from engine.shards import atomic_write_bytes
from engine.shards.integrity import quarantine_shards, verify_shards
from engine.shards.provenance import provenance
from engine.spec import CREDENTIALS_IN_URI, BenchmarkSpec
from engine.splits.card import make_card, write_card
from engine.storage import StorageError, check_new_destination, download_run, is_uri, mirror_run
from engine.tasks import get_task
from engine.tasks.base import RunContext
from engine.tasks.preflight import check_inputs
from engine.tracking.datasets import split_datasets


@dataclass
class RunResult:
    """What a finished run produced."""

    run_id: str
    run_dir: Path
    evaluations: list[dict]
    built: object
    mlflow: dict
    timings: dict[str, float]
    table: str
    card_paths: dict[str, Path] = field(default_factory=dict)
    output: str | None = None  # where the run is mirrored, if anywhere
    transfer: dict = field(default_factory=dict)


def run_benchmark(
    spec: BenchmarkSpec,
    *,
    runs_dir: Path | str = "runs",
    run_id: str | None = None,
    num_cpus: int | None = None,
    output: str | None = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Run a validated spec end to end, whatever its task.

    The run directory is created only after the spec has validated, so bad input
    leaves nothing behind; a failure later marks ``run.json`` as failed with the
    error and keeps every finished stage's outputs, from which :func:`resume_run`
    continues.

    Args:
        spec: A validated spec (``load_spec``).
        runs_dir: Parent directory of run directories.
        run_id: Run directory name; a fresh timestamped id by default.
        num_cpus: CPUs of the local Ray cluster (ignored when ``RAY_ADDRESS`` is set).
        output: Mirror the run to ``<output>/<run_id>/`` after every stage (a path or
            any pyarrow filesystem URI); default the spec's ``output.uri``.
        log: Where progress lines go.

    Returns:
        The run's result, including the printed table.

    Raises:
        RunSetupError: For a run id that is not a safe directory name, a run
            directory that already exists, or an output that cannot be used.
        SpecError: For data the spec alone makes unusable (a missing path, label-aware
            scores on an unlabelled pool: :func:`engine.tasks.preflight.check_inputs`).
    """
    for warning in check_inputs(spec, spec.metadata.name):  # refusals: before anything is written
        log(f"[run] warning: {warning}")
    run_id = run_id or new_run_id(spec)
    output = output or spec.output.uri
    dest = None
    if output and has_credentials(output):
        raise RunSetupError(f"output {redact_uri(output)} {CREDENTIALS_IN_URI}")
    if output:
        try:
            dest = check_new_destination(run_id, output)
        except StorageError as exc:
            raise RunSetupError(str(exc)) from None
    run_dir = create_run_dir(runs_dir, run_id)
    atomic_write_bytes(run_dir / SPEC_FILE, spec.to_yaml().encode())
    status: dict = {
        "run_id": run_id,
        "task": spec.task.name,
        "status": "running",
        "started": time.time(),
        "timings_s": {},
        "provenance": provenance(),
        "attempts": [driver_record()],
    }
    if dest is not None:
        status["output"] = dest.uri
    write_status(run_dir, status)
    log(f"[run] {run_id} -> {run_dir}" + (f", mirrored to {dest.uri}" if dest else ""))
    return _execute(spec, run_dir, status, num_cpus, log)


def resume_run(
    run_dir: Path | str,
    *,
    num_cpus: int | None = None,
    runs_dir: Path | str = "runs",
    force: bool = False,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Finish a run whose driver died or failed, redoing only what is not done.

    The run's shards are verified against their manifests first; corrupt or truncated
    ones are moved to ``quarantine/`` and their (replica, epoch) pairs redone. Replicas
    continue from their checkpoints and never retrain a finished (replica, epoch);
    evaluated models that finished are loaded, not retrained; scoring, splits,
    evaluation and tracking run again on the complete shards. With the same seeds the
    final scores equal those of an uninterrupted run.

    Args:
        run_dir: The run directory (holds ``spec.yaml`` and ``run.json``), or the URI
            of a mirrored run, which is first downloaded into ``runs_dir``.
        num_cpus: CPUs of the local Ray cluster.
        runs_dir: Where a mirrored run is downloaded to.
        force: Resume a run marked running by a driver on another host, which cannot be
            checked from here: needed while its heartbeat is fresh or when it left none (a
            downloaded mirror, an older version); not once no beat came for
            ``HEARTBEAT_STALE_S`` (the run is interrupted).
        log: Where progress lines go.

    Returns:
        The run's result.

    Raises:
        RunSetupError: If the directory is not a run, the run is complete, or its
            driver is still running.
    """
    if is_uri(run_dir):
        try:
            run_dir = download_run(str(run_dir), runs_dir)
        except StorageError as exc:
            raise RunSetupError(str(exc)) from None
        log(f"[run] downloaded the mirrored run to {run_dir}")
    run_dir = Path(run_dir).resolve()
    status = read_status(run_dir)
    if status.get("status") == "complete":
        raise RunSetupError(
            f"run {run_dir.name} is complete; nothing to resume "
            "(`hardbench verify RUN --repair` checks and regenerates its shards)"
        )
    attempts = status.setdefault("attempts", [])
    if status.get("status") == "running" and attempts:
        last = attempts[-1]
        if driver_alive(last):
            raise RunSetupError(
                f"run {run_dir.name} is still running (driver pid {last['pid']} on "
                f"{last['host']}); stop it before resuming"
            )
        check = check_driver(run_dir, last)  # on another host, its heartbeat tells
        elsewhere = last.get("host") != socket.gethostname()
        if elsewhere and check.state == ALIVE and not force:
            raise RunSetupError(
                f"run {run_dir.name} is still running ({check.reason}); stop it before "
                "resuming, or if that driver is gone, resume with --force"
            )
        if elsewhere and check.state != GONE and not force:
            raise RunSetupError(
                f"run {run_dir.name} is marked running by a driver on host {last.get('host')}, "
                "which this machine cannot check (it left no heartbeat); if that driver is "
                "gone, resume with --force"
            )
        if check.state == GONE:
            log(f"[run] {check.reason}: the run was interrupted")
        elif elsewhere:
            log(f"[run] --force: {check.reason}")
    spec = read_run_spec(run_dir)
    if attempts:
        attempts[-1]["ended_as"] = status.get("status")
        attempts[-1]["timings_s"] = status.get("timings_s", {})
    attempts.append(driver_record())
    for key in ("error", "traceback", "finished"):
        status.pop(key, None)
    status.update(status="running", timings_s={}, task=spec.task.name)
    log(f"[run] resuming {run_dir.name} (attempt {len(attempts)}) in {run_dir}")
    checked, problems = verify_shards(run_dir)
    for p in problems:
        log(f"[verify] {p.path.relative_to(run_dir)}: {p.reason}")
    dest = quarantine_shards(run_dir, problems)
    log(
        f"[verify] {checked} shards checked, {len(problems)} failed"
        + (f"; moved to {dest.relative_to(run_dir)} and redone" if dest else "")
    )
    status["attempts"][-1]["quarantined"] = [str(p.path.relative_to(run_dir)) for p in problems]
    write_status(run_dir, status)
    return _execute(spec, run_dir, status, num_cpus, log)


def _execute(
    spec: BenchmarkSpec,
    run_dir: Path,
    status: dict,
    num_cpus: int | None,
    log: Callable[[str], None],
) -> RunResult:
    """Run the stages, recording the outcome in ``run.json``, its mirror and MLflow whatever happens.

    The MLflow parent run is RUNNING from here on; it ends FINISHED, FAILED (any
    error) or KILLED (interrupted: Ctrl-C, or SIGTERM from ``ray job stop``).
    """

    def mirror() -> None:
        if status.get("output"):
            mirror_run(run_dir, status["output"], log=log)

    recorder = open_record(spec, run_dir, status)
    write_status(run_dir, status)
    log(f"[mlflow] parent run {recorder.parent_id} in {status['mlflow']['tracking_uri']} (RUNNING)")
    heartbeat = Heartbeat(run_dir, status["attempts"][-1], log=log).start()  # for other hosts
    try:
        result = _run_stages(spec, run_dir, num_cpus, status, log, mirror, recorder)
    except BaseException as exc:
        killed = isinstance(exc, (KeyboardInterrupt, SystemExit))
        status.update(
            status="killed" if killed else "failed",
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
        write_status(run_dir, status)
        try:
            recorder.finish("KILLED" if killed else "FAILED")
        except Exception as mlflow_exc:  # keep the run's own error; say MLflow failed too
            log(
                f"[mlflow] marking the run {'KILLED' if killed else 'FAILED'} failed too: {mlflow_exc}"
            )
        try:
            mirror()
        except Exception as mirror_exc:  # keep the run's own error; say the mirror failed too
            log(f"[output] mirroring the failed run failed too: {mirror_exc}")
        raise
    finally:
        heartbeat.stop()
    recorder.finish()
    status.update(status="complete", finished=time.time(), mlflow=result.mlflow)
    write_status(run_dir, status)
    mirror()
    return result


def _run_stages(
    spec: BenchmarkSpec,
    run_dir: Path,
    num_cpus: int | None,
    status: dict,
    log: Callable[[str], None],
    mirror: Callable[[], None],
    recorder: object,
) -> RunResult:
    run_id = status["run_id"]
    prov = status["provenance"]
    timings: dict[str, float] = status["timings_s"]
    task = get_task(spec.task.name).runtime()

    def stage_done(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 3)
        recorder.stage(name, timings[name])
        write_status(run_dir, status)
        mirror()

    t_total = time.perf_counter()
    t = time.perf_counter()
    with ray_session(num_cpus) as cluster:
        stage_done("ray_init", t)
        log(
            f"[ray] {'started local cluster' if cluster['started'] else 'attached to'} "
            f"{cluster['address']} ({cluster['cpus']:.0f} CPUs)"
        )
        t = time.perf_counter()
        data = task.load_data(spec, run_dir, log)
        ctx = RunContext(run_dir, run_id, spec, data, len(status["attempts"]), log)
        if getattr(data, "dataset", None):
            status["dataset"] = data.dataset  # fingerprint, cache folder and skipped samples
        stage_done("ingest", t)
        early = None if task.models_need_scores(spec) else task.start_models(ctx, None)
        t = time.perf_counter()
        with CurveFeed(recorder, run_dir, spec.replicas.count):
            task.train_replicas(ctx)
        stage_done("train_replicas", t)

        t = time.perf_counter()
        table, scored_on = score_stage(run_dir, run_id, spec, ctx.data, allow_partial=False)
        stage_done("score", t)
        log(
            f"[score] {table.num_rows} samples x {len(spec.scores)} scores "
            f"({', '.join(spec.scores)}) -> {SCORES_FILE}"
        )

        t = time.perf_counter()
        built = task.build_splits(ctx, table)
        stage_done("build", t)

        t = time.perf_counter()
        outputs = (early or task.start_models(ctx, table)).result()
        stage_done("train_models", t)

        if any(m.seeds > 1 for m in spec.evaluate.models):  # the paper's Figure 3
            t = time.perf_counter()
            train_seed_ensembles(run_dir, run_id, spec, ctx.data, attempt=ctx.attempt, log=log)
            stage_done("seed_ensembles", t)

    t = time.perf_counter()
    evaluation = task.evaluate(ctx, table, built, outputs)
    stage_done("evaluate", t)

    t = time.perf_counter()
    seeds = {
        "replicas": spec.replicas.seeds(),
        "split": spec.data.split_seed,
        "models": {m.name: m.recipe.seed for m in spec.evaluate.models},
    }
    card = make_card(
        spec_dict=spec.to_dict(), run_id=run_id, seeds=seeds, provenance=prov, scores=table,
        score_names=spec.scores, built=built, class_names=task.class_names(ctx.data),
        evaluations=evaluation.evaluations, timings=dict(timings), scored_on=scored_on,
        transfer=evaluation.transfer, hard_rule_text=spec.splits.describe(get_score(spec.splits.score).direction),
        dataset=getattr(ctx.data, "dataset", None),
    )  # fmt: skip
    card_paths = write_card(run_dir, card)
    report = task.build_report(run_dir)
    summary = {f"time_{k}_s": v for k, v in timings.items()}
    summary.update(
        num_samples=len(ctx.data.split),
        pool_size=len(built.sample_ids),
        hard_size=int(built.is_hard.sum()),
        **evaluation.summary,
    )
    for name, parts in card["score_statistics"].items():
        for part, s in parts.items():
            if s["mean"] is not None:
                summary[f"{name}_{part}_mean"] = s["mean"]
    for ev in evaluation.evaluations:
        summary[f"{ev['model']}_error_hard"] = ev["error_hard"]
        summary[f"{ev['model']}_error_all"] = ev["error_all"]
    extra = []
    data_report = (card.get("dataset") or {}).get("report")
    if data_report:
        summary.update(data_metrics(data_report))
        extra.append(run_dir / BENCHMARK_DIR / DATA_REPORT_FILE)
        atomic_write_bytes(extra[-1], json.dumps(data_report, indent=2).encode())
    recorder.summary(
        summary,
        [card_paths["json"], card_paths["md"], report, run_dir / SCORES_FILE, run_dir / SPEC_FILE,
         *extra, *evaluation.plots],
    )  # fmt: skip
    datasets = split_datasets(built.files, spec.splits.score)
    model_runs = {}
    for ev in evaluation.evaluations:
        name = ev["model"]
        module = task.mlflow_model(ctx, name) if name in evaluation.model_dirs else None
        model_runs[name] = recorder.log_evaluation(
            run_id, ev, history=evaluation.histories.get(name), datasets=datasets, model=module,
            artifacts_dir=None if module else evaluation.model_dirs.get(name),
        )  # fmt: skip
        status["mlflow"]["model_runs"] = dict(model_runs)  # a failure from here: redone on resume
        write_status(run_dir, status)
    mlflow_info = {**recorder.info(), "model_runs": model_runs}
    stage_done("track", t)
    timings["total"] = round(time.perf_counter() - t_total, 3)
    recorder.stage("total", timings["total"])
    log(f"[mlflow] parent run {mlflow_info['parent_run_id']} in {mlflow_info['tracking_uri']}")
    return RunResult(
        run_id=run_id, run_dir=run_dir, evaluations=evaluation.evaluations, built=built,
        mlflow=mlflow_info, timings=dict(timings), table=evaluation.table,
        card_paths=card_paths, output=status.get("output"), transfer=evaluation.transfer,
    )  # fmt: skip
