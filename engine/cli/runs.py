"""Commands of the run lifecycle: ingest, run, resume, score, verify, report, ls, ui."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from engine.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, default_runs_dir, quiet_mlflow

UI_TRAINING_VIEW = "workflowType=machine_learning"  # MLflow 3 UI: open on training runs


def cmd_ingest(args: argparse.Namespace) -> int:
    """``hardbench ingest SPEC``: build (or find) the spec's dataset cache, with progress."""
    from engine.data.errors import BadInputError
    from engine.data.loading import cached_classification_data, run_cache
    from engine.distributed.cluster import ray_session
    from engine.distributed.ingest import chunk_map
    from engine.spec import load_spec
    from engine.tasks import get_task
    from engine.tasks.preflight import check_inputs

    spec = load_spec(args.spec, args.overrides)
    for warning in check_inputs(spec, str(args.spec)):  # a missing path: refused before Ray starts
        print(f"warning: {warning}", flush=True)
    skip = get_task(spec.task.name).nothing_to_ingest(spec)  # e.g. a corpus read in memory
    if skip is not None:
        print(f"hardbench: {skip}", file=sys.stderr)
        return EXIT_BAD_INPUT
    d, tokens = spec.data, None
    try:
        with ray_session(args.num_cpus):
            cache = run_cache(d.parts(), block_size=spec.shards.block_size,
                              runs_dir=args.runs_dir or default_runs_dir(),
                              cache_dir=d.cache_dir, map_chunks=chunk_map(),
                              log=lambda line: print(line, flush=True))  # fmt: skip
            if cache.kind == "text":  # the token ids too, for the spec's split
                data = cached_classification_data(
                    cache, heldout_fraction=d.heldout_fraction, split_seed=d.split_seed,
                    pool_labels=d.pool_labels, map_chunks=chunk_map(),
                    log=lambda line: print(line, flush=True),
                )  # fmt: skip
                tokens = data.dataset["tokens"]
    except (BadInputError, ValueError) as exc:
        print(f"hardbench: bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    size = sum(p.stat().st_size for p in cache.path.rglob("*") if p.is_file())
    meta = cache.meta
    print(f"cache: {cache.path}")
    print(f"fingerprint: {cache.fingerprint}")
    print(f"samples: {cache.num_samples:,} of shape {tuple(meta['shape'] or ())}, "
          f"{len(cache.class_names)} classes, {size / 2**20:,.1f} MiB on disk")  # fmt: skip
    if meta["skipped"]:
        print(f"skipped: {len(meta['skipped'])} (first: {meta['skipped'][0]['key']}: "
              f"{meta['skipped'][0]['reason']}); all listed in {cache.path / 'meta.json'}")  # fmt: skip
    if tokens is not None:
        print(f"tokens: {tokens['cache']} ({tokens['vocab_size']:,} words, {tokens['max_len']} "
              f"per text, {tokens['dtype']})")  # fmt: skip
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``hardbench run SPEC|--data PATH`` or ``run --resume RUN``: the lifecycle, then the table."""
    from engine.cli.info import spec_from_args
    from engine.data.errors import BadInputError
    from engine.lifecycle import RunSetupError, read_run_spec, resume_run, run_benchmark

    given = sum(x is not None for x in (args.spec, args.data, args.resume))
    if given != 1:
        print("hardbench: give a SPEC, or --resume RUN_DIR, or --data PATH (one of them)",
              file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    if args.resume is not None and (args.overrides or args.run_id or args.output or args.recipe):
        print(
            "hardbench: --resume takes the run's own spec and output; --set, --run-id and "
            "--output do not apply (nor --recipe)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    quiet_mlflow()  # MLflow configures its own INFO logger on import: off the table

    def log(line: str) -> None:
        print(line, flush=True)

    try:
        if args.resume is not None:
            result = resume_run(
                args.resume,
                num_cpus=args.num_cpus,
                runs_dir=args.runs_dir or default_runs_dir(),
                force=args.force,
                log=log,
            )
            spec = read_run_spec(result.run_dir)
        else:
            named = spec_from_args(args, log)
            if named is None:
                return EXIT_BAD_INPUT
            spec = named[0]
            result = run_benchmark(
                spec,
                runs_dir=args.runs_dir or default_runs_dir(),
                run_id=args.run_id,
                num_cpus=args.num_cpus,
                output=args.output,
                log=log,
            )
    except (RunSetupError, BadInputError) as exc:
        print(f"hardbench: {'bad input: ' if isinstance(exc, BadInputError) else ''}{exc}",
              file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    print()
    print(result.table)
    print()
    t = result.timings
    print("stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    print(f"run: {result.run_dir}")
    if result.output:
        print(f"output: {result.output}")
    print(f"card: {result.card_paths['md']}")
    print(f"report: {result.run_dir / 'report.html'}")
    print(
        f"mlflow: {result.mlflow['tracking_uri']} (experiment {spec.tracking.experiment}, run {result.mlflow['parent_run_id']})"
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """``hardbench score RUN``: re-score a run's shards into a new table."""
    from engine.lifecycle import RunSetupError, score_existing_run
    from engine.shards import ShardManifestError

    scores = [s.strip() for s in args.scores.split(",") if s.strip()] if args.scores else None
    try:
        out, used = score_existing_run(
            args.run_dir,
            scores=scores,
            allow_partial=args.allow_partial,
            out=args.out,
            num_cpus=args.num_cpus,
        )
    except (RunSetupError, ShardManifestError, ValueError) as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    state = "complete run" if used["complete"] else "PARTIAL run"
    print(
        f"scored {state}: replicas {used['replicas']}, epochs {used['epochs'][0]}..{used['epochs'][-1]} -> {out}"
    )
    return 0


def _counts(text: str, flag: str) -> tuple[int, ...]:
    """``5,10,20`` -> (5, 10, 20); ``all`` -> () (only the full run)."""
    if text.strip() == "all":
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated counts or 'all', got {text!r}") from None


def cmd_ablate(args: argparse.Namespace) -> int:
    """``hardbench ablate RUN``: the score from fewer epochs and replicas, from the shards."""
    from engine.layout import EVAL_DIR
    from engine.lifecycle import RunSetupError
    from engine.lifecycle.ablate import ABLATION_TABLE_FILE, ablate_run
    from engine.shards import ShardManifestError

    quiet_mlflow()
    try:
        ablate_run(
            args.run_dir,
            score=args.score,
            epoch_counts=_counts(args.epochs, "--epochs"),
            replica_counts=None if args.replicas is None else _counts(args.replicas, "--replicas"),
            draws=args.draws,
            seed=args.seed,
            overwrite=args.overwrite,
            num_cpus=args.num_cpus,
        )
    except (RunSetupError, ShardManifestError, ValueError) as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print((args.run_dir / EVAL_DIR / ABLATION_TABLE_FILE).read_text(), end="")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``hardbench verify RUN [--repair]``: check every shard against its manifest."""
    from engine.lifecycle import RunSetupError, verify_run

    try:
        out = verify_run(
            args.run_dir,
            repair=args.repair,
            num_cpus=args.num_cpus,
            log=lambda line: print(line, flush=True),
        )
    except RunSetupError as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if out["remaining"]:
        if not args.repair:
            print("run `hardbench verify --repair` to regenerate the failed shards")
        return EXIT_FAILED
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``hardbench report RUN``: rebuild the HTML report and log it to MLflow."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from engine.lifecycle import RunSetupError, read_status
    from engine.lifecycle.report import rebuild_report

    try:
        path, parent = rebuild_report(args.run_dir)
    except (RunSetupError, FileNotFoundError) as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"report: {path}")
    if parent:
        uri = read_status(args.run_dir)["mlflow"]["tracking_uri"]
        print(f"logged to MLflow run {parent} in {uri}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    """``hardbench ls``: the runs of a runs directory with their status.

    A run marked running whose driver is gone shows as ``interrupted``, with why and
    the command that resumes it; ``run.json`` is only read.
    """
    import shlex

    from engine.lifecycle.driver import INTERRUPTED, run_state

    runs = Path(args.runs_dir or default_runs_dir())
    if not runs.is_dir():
        print(f"no runs under {runs}")
        return 0
    rows = []
    for run_file in sorted(runs.glob("*/run.json")):
        status = json.loads(run_file.read_text())
        state = run_state(run_file.parent, status)
        total = status.get("timings_s", {}).get("total")
        rows.append((status["run_id"], state, "-" if total is None else f"{total:.1f}",
                     run_file.parent.resolve()))  # fmt: skip
    if not rows:
        print(f"no runs under {runs}")
        return 0
    width = max(len("run"), *(len(r[0]) for r in rows)) + 2
    status_width = max(len("status"), *(len(r[1].status) for r in rows)) + 2
    print(f"{'run':<{width}}{'status':<{status_width}}{'total s':>8}")
    for run_id, state, total, run_dir in rows:
        print(f"{run_id:<{width}}{state.status:<{status_width}}{total:>8}")
        if state.status == INTERRUPTED:
            print(f"  {state.reason}; resume: hardbench run --resume {shlex.quote(str(run_dir))}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """``hardbench ui``: the MLflow UI of a runs directory's store, served on 127.0.0.1."""
    from engine.tracking.mlflow_log import MLFLOW_ARTIFACTS_DIR, resolve_tracking_uri

    runs = Path(args.runs_dir or default_runs_dir()).resolve()
    uri = resolve_tracking_uri(runs)
    if not uri.startswith("sqlite:///"):
        print(f"hardbench: the store is {uri}: open that server in a browser", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not Path(uri.removeprefix("sqlite:///")).exists():
        print(f"hardbench: no MLflow store in {runs} yet: run a build first", file=sys.stderr)
        return EXIT_BAD_INPUT
    quiet_mlflow()
    from mlflow.tracking import MlflowClient

    base = f"http://127.0.0.1:{args.port}"
    command = [
        str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri", uri,
        "--default-artifact-root", str(runs / MLFLOW_ARTIFACTS_DIR),
        "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1",  # one local user
    ]  # fmt: skip
    print(f"MLflow UI of {uri} at {base} (Ctrl-C stops it)", flush=True)
    for exp in MlflowClient(tracking_uri=uri).search_experiments():
        if exp.name != "Default":
            # the UI's GenAI/Model-training toggle is a per-browser setting; the link picks
            # the training view, where builds and their nested model runs are listed
            print(f"  {exp.name}: {base}/#/experiments/{exp.experiment_id}?{UI_TRAINING_VIEW}")
    sys.stdout.flush()
    # its own process group: mlflow ui runs uvicorn and its workers as children, and
    # stopping this command (Ctrl-C, SIGTERM) must stop all of them
    server = subprocess.Popen(command, start_new_session=True)
    try:
        return server.wait()
    except KeyboardInterrupt:
        _stop_group(server)
        raise


def _stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM ``proc``'s process group, SIGKILL it if it has not exited after ``grace_s``."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
