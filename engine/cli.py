"""The ``hardbench`` command line.

hardbench run SPEC [--set section.field=value ...] [--runs-dir DIR] [--run-id ID]
hardbench run SPEC --output URI      (mirror the run to a path or s3://, gs://, ... URI)
hardbench run --resume RUN_DIR|URI
hardbench verify RUN_DIR [--repair]
hardbench audit RUN_DIR [--split all|train|heldout] [--folds 5] [--top 200]
hardbench relabel RUN_DIR --verdicts FILE
hardbench validate SPEC [--set ...]
hardbench ls [--runs-dir DIR]
hardbench models [PATTERN]
hardbench scores
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2  # the spec or arguments are invalid; nothing was written
EXIT_FAILED = 1  # the run started and failed; run.json says why
RUNS_DIR_ENV = "HARDBENCH_RUNS_DIR"  # default parent of run directories


def _default_runs_dir() -> str:
    return os.environ.get(RUNS_DIR_ENV, "runs")


def _add_spec_args(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    p.add_argument("spec", type=Path, nargs="?" if optional else None, help="benchmark spec (YAML)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. --set replicas.epochs=5 (repeatable)",
    )


def _add_address_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default=os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS"),
        help="Ray Jobs API, e.g. http://127.0.0.1:8265 (default $RAY_API_SERVER_ADDRESS "
        "or $RAY_ADDRESS)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hardbench", description="Build hard benchmarks from seed-ensemble training dynamics."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train replicas, score, build splits, evaluate, log to MLflow")
    _add_spec_args(run, optional=True)
    run.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="finish a run whose driver died or failed (no SPEC): verifies its shards, "
        "keeps every finished (replica, epoch) and model; a mirrored run's URI is "
        "downloaded into --runs-dir first",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="with --resume: resume a run marked running by a driver on another host",
    )
    run.add_argument(
        "--output",
        default=None,
        metavar="URI",
        help="mirror the run to URI/<run_id>/ after every stage: a path or a pyarrow "
        "filesystem URI such as s3://bucket/runs (default: the spec's output.uri)",
    )
    run.add_argument(
        "--runs-dir",
        default=None,
        help=f"parent of run directories (default ${RUNS_DIR_ENV} or ./runs)",
    )
    run.add_argument(
        "--run-id", default=None, help="run directory name (default: <spec>-<timestamp>-<hex>)"
    )
    run.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)"
    )

    score = sub.add_parser("score", help="re-score a run's shards (other scores, or a partial run)")
    score.add_argument("run_dir", type=Path, help="a run directory")
    score.add_argument(
        "--scores", default=None, help="comma-separated score names (default: the spec's)"
    )
    score.add_argument(
        "--allow-partial",
        action="store_true",
        help="score the finished (replica, epoch) pairs of an unfinished run",
    )
    score.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output Parquet (default <run>/scores.rescored.parquet)",
    )
    score.add_argument("--num-cpus", type=int, default=None)

    aud = sub.add_parser(
        "audit", help="rank a run's samples by how suspicious their labels are (CSV + HTML)"
    )
    aud.add_argument("run_dir", type=Path)
    aud.add_argument("--split", default="all", choices=["all", "train", "heldout"])
    aud.add_argument("--folds", type=int, default=5, help="folds of the out-of-fold probabilities")
    aud.add_argument("--top", type=int, default=200, help="samples shown in audit.html")
    rel = sub.add_parser(
        "relabel", help="make a new labels version of a run from a reviewer's verdict CSV"
    )
    rel.add_argument("run_dir", type=Path)
    rel.add_argument(
        "--verdicts", type=Path, required=True, help="CSV: sample_id,verdict,corrected_label"
    )

    ver = sub.add_parser(
        "verify", help="check a run's shards against their manifest (sha256, rows, schema)"
    )
    ver.add_argument("run_dir", type=Path)
    ver.add_argument(
        "--repair", action="store_true", help="quarantine failed shards and regenerate them"
    )
    ver.add_argument("--num-cpus", type=int, default=None)

    val = sub.add_parser("validate", help="check a spec without running it")
    _add_spec_args(val)

    sb = sub.add_parser("submit", help="run a spec on a Ray cluster as a Ray job and follow it")
    _add_spec_args(sb)
    _add_address_arg(sb)
    sb.add_argument("--runs-dir", default=None, help="run directory on the cluster (shared path)")
    sb.add_argument(
        "--working-dir", type=Path, default=Path.cwd(), help="repository uploaded with the job"
    )
    sb.add_argument("--submission-id", default=None)
    sb.add_argument("--no-wait", action="store_true", help="print the job id and return")
    for name, text in (("status", "a Ray job's status"), ("logs", "a Ray job's logs")):
        jp = sub.add_parser(name, help=text)
        jp.add_argument("job_id")
        _add_address_arg(jp)

    ev = sub.add_parser(
        "eval", help="evaluate a registered or MLflow-logged model on a finished run's splits"
    )
    ev.add_argument("run_dir", type=Path)
    which = ev.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="registered model name (hardbench models)")
    which.add_argument(
        "--model-uri", help="MLflow URI of a logged hardbench model, e.g. runs:/<id>/model"
    )
    ev.add_argument("--label", default=None, help="name in reports and MLflow")
    ev.add_argument(
        "--pretrained",
        action="store_true",
        help="load the model's weights from the local torch hub cache",
    )
    ev.add_argument("--weights-file", default=None, help="load this local state dict")
    ev.add_argument(
        "--model-kwargs",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="model options (YAML values), e.g. path=DIR for hf_sequence_classifier",
    )
    ev.add_argument("--split", default="pool", help="pool (all metrics) or hard, rest, bin_<b>")
    ev.add_argument("--num-cpus", type=int, default=None)
    ev.add_argument(
        "--cpus-per-actor", type=float, default=None, help="default: evaluate.cpus_per_actor"
    )
    ev.add_argument(
        "--gpus-per-actor",
        type=float,
        default=None,
        help="GPU share of each prediction actor (default: evaluate.gpus_per_actor)",
    )

    cmp_ = sub.add_parser(
        "compare", help="robustness table across models from an MLflow experiment"
    )
    cmp_.add_argument("experiment", help="MLflow experiment name (the spec's tracking.experiment)")
    cmp_.add_argument(
        "--tracking-uri", default=None, help="MLflow store (default $MLFLOW_TRACKING_URI)"
    )
    cmp_.add_argument("--run-id", default=None, help="only this hardbench run")

    rep = sub.add_parser(
        "report", help="(re)build a run's HTML report and log it to its MLflow run"
    )
    rep.add_argument("run_dir", type=Path)

    ls = sub.add_parser("ls", help="list runs with their status")
    ls.add_argument("--runs-dir", default=None)

    models = sub.add_parser("models", help="list registered models")
    models.add_argument("pattern", nargs="?", default="*")

    sub.add_parser("scores", help="list registered scores with direction and inputs")
    return parser


def _cmd_validate(args: argparse.Namespace) -> int:
    from engine.spec import load_spec

    spec = load_spec(args.spec, args.overrides)
    r = spec.replicas
    models = [m.name for m in spec.evaluate.models]
    if spec.evaluate.ensemble:
        models.append("ensemble (scorer, in-sample)")
    print(
        f"{args.spec}: valid {spec.task.name} spec {spec.metadata.name!r}: {r.count} replicas "
        f"({r.recipe.describe()}), {r.recipe.epochs} epochs on {spec.data.source}, "
        f"scores {', '.join(spec.scores)}, hard = {spec.splits.describe()}, "
        f"{spec.splits.bins.count} bins, evaluating {', '.join(models) or 'nothing'}"
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from engine.lifecycle import RunSetupError, read_run_spec, resume_run, run_benchmark
    from engine.spec import load_spec

    if (args.spec is None) == (args.resume is None):
        print("hardbench: give a SPEC, or --resume RUN_DIR (not both)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.resume is not None and (args.overrides or args.run_id or args.output):
        print(
            "hardbench: --resume takes the run's own spec and output; --set, --run-id and "
            "--output do not apply",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    # MLflow configures its own INFO logger on import; keep its schema chatter off the table.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    def log(line: str) -> None:
        print(line, flush=True)

    try:
        if args.resume is not None:
            result = resume_run(
                args.resume,
                num_cpus=args.num_cpus,
                runs_dir=args.runs_dir or _default_runs_dir(),
                force=args.force,
                log=log,
            )
            spec = read_run_spec(result.run_dir)
        else:
            spec = load_spec(args.spec, args.overrides)
            result = run_benchmark(
                spec,
                runs_dir=args.runs_dir or _default_runs_dir(),
                run_id=args.run_id,
                num_cpus=args.num_cpus,
                output=args.output,
                log=log,
            )
    except RunSetupError as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
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


def _cmd_score(args: argparse.Namespace) -> int:
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


def _cmd_audit(args: argparse.Namespace) -> int:
    from engine.evaluation.audit import audit_run, write_audit

    if not (args.run_dir / "spec.yaml").exists():
        print(f"hardbench: {args.run_dir} is not a run directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        audit = audit_run(args.run_dir, split=args.split, folds=args.folds)
    except ValueError as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    data = audit.data  # loaded once by the audit (text data retrains its tokenizer)
    out = write_audit(
        args.run_dir,
        audit,
        class_names=data.class_names,
        inputs=data.inputs,
        top=args.top,
        texts=data.texts,
    )
    rows = audit.table.slice(0, 10).to_pylist()
    print(f"audited {audit.table.num_rows} samples on {', '.join(audit.scores_used)}")
    print("rank  sample  given  oof_pred  audit_score")
    for row in rows:
        print(
            f"{row['rank']:>4}  {row['sample_id']:>6}  {data.class_names[row['label']]:>5}  "
            f"{data.class_names[row['oof_pred']]:>8}  {row['audit_score']:.3f}"
        )
    print(f"audit: {out / 'audit.csv'}")
    print(f"page: {out / 'audit.html'}")
    return 0


def _cmd_relabel(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from engine.evaluation.audit import apply_verdicts

    if not (args.run_dir / "spec.yaml").exists():
        print(f"hardbench: {args.run_dir} is not a run directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        out = apply_verdicts(args.run_dir, args.verdicts)
    except (ValueError, FileNotFoundError) as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"labels {out['version']}: {out['relabelled']} relabelled, {out['removed']} removed, "
        f"{out['kept']} kept -> {out['dir']}"
    )
    if out["mlflow_run"]:
        print(f"logged as MLflow run {out['mlflow_run']}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
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


def _has_address(args: argparse.Namespace) -> bool:
    if not args.address:
        print("hardbench: give --address (or set RAY_ADDRESS)", file=sys.stderr)
    return bool(args.address)


def _cmd_submit(args: argparse.Namespace) -> int:
    from engine.distributed.jobs import JobSubmitError, follow, submit_build
    from engine.spec import SpecError, load_spec

    if not _has_address(args):
        return EXIT_BAD_INPUT
    try:
        load_spec(args.spec, args.overrides)  # a bad spec never reaches the cluster
        job_id = submit_build(
            args.spec,
            args.address,
            working_dir=args.working_dir,
            runs_dir=args.runs_dir,
            overrides=args.overrides,
            submission_id=args.submission_id,
        )
    except (SpecError, JobSubmitError) as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"submitted job {job_id} to {args.address}", flush=True)
    if args.no_wait:
        return 0
    outcome = follow(job_id, args.address)
    print(f"job {job_id}: {outcome.status}")
    if outcome.run_dir:
        print(f"outputs: {outcome.run_dir}")
    return 0 if outcome.status == "SUCCEEDED" else EXIT_FAILED


def _cmd_job(args: argparse.Namespace) -> int:
    from engine.distributed.jobs import JobSubmitError, job_logs, job_status

    if not _has_address(args):
        return EXIT_BAD_INPUT
    try:
        if args.command == "status":
            print(job_status(args.job_id, args.address))
        else:
            sys.stdout.write(job_logs(args.job_id, args.address))
    except (JobSubmitError, RuntimeError) as exc:  # RuntimeError: unknown job id (HTTP 404)
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import yaml

    from engine.lifecycle import RunSetupError, evaluate_model_on_run

    model_kwargs = {}
    for item in args.model_kwargs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"hardbench: --model-kwargs takes KEY=VALUE, got {item!r}", file=sys.stderr)
            return EXIT_BAD_INPUT
        model_kwargs[key] = yaml.safe_load(value)
    try:
        ev = evaluate_model_on_run(
            args.run_dir,
            model=args.model,
            model_uri=args.model_uri,
            label=args.label,
            pretrained=args.pretrained,
            weights_file=args.weights_file,
            model_kwargs=model_kwargs or None,
            split=args.split,
            num_cpus=args.num_cpus,
            cpus_per_actor=args.cpus_per_actor,
            gpus_per_actor=args.gpus_per_actor,
        )
    except (RunSetupError, FileNotFoundError, ValueError) as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    lo, hi = ev["error_all_ci95"]
    line = f"{ev['model']} on {ev['split']}: error {100 * ev['error_all']:.1f}% (95% CI {100 * lo:.1f}..{100 * hi:.1f}%)"
    if "error_hard" in ev:
        line += f", hard {100 * ev['error_hard']:.1f}%, rest {100 * ev['error_rest']:.1f}%, Pearson rho {ev['pearson_rho']:+.3f}"
    print(line)
    if ev.get("mlflow_run"):
        print(f"logged as MLflow run {ev['mlflow_run']}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from engine.tracking.compare import fetch_model_runs, format_compare_table

    try:
        rows = fetch_model_runs(args.experiment, tracking_uri=args.tracking_uri, build=args.run_id)
    except ValueError as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_compare_table(rows))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
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


def _cmd_ls(args: argparse.Namespace) -> int:
    runs = Path(args.runs_dir or _default_runs_dir())
    if not runs.is_dir():
        print(f"no runs under {runs}")
        return 0
    rows = []
    for run_file in sorted(runs.glob("*/run.json")):
        status = json.loads(run_file.read_text())
        rows.append(
            (
                status["run_id"],
                status["status"],
                f"{status.get('timings_s', {}).get('total', float('nan')):.1f}",
            )
        )
    if not rows:
        print(f"no runs under {runs}")
        return 0
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'run':<{width}}{'status':<10}{'total s':>8}")
    for run_id, state, total in rows:
        print(f"{run_id:<{width}}{state:<10}{total:>8}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from engine.models import get_model_config, list_models

    for name in list_models(args.pattern):
        cfg = get_model_config(name)
        print(f"{name:<18}{cfg.family:<8}{cfg.description}")
    return 0


def _cmd_scores(args: argparse.Namespace) -> int:
    from engine.scores import get_score, list_scores

    for name in list_scores():
        info = get_score(name)
        labels = "labels" if info.needs_labels else "label-free"
        print(f"{name:<19}{info.direction:<17}{labels:<12}{info.description}")
        for key, opt in info.options.items():
            values = " | ".join(opt.choices) if opt.choices else opt.kind.__name__
            print(f"{'':<19}option {key}: {values} (default {opt.default}): {opt.description}")
    return 0


COMMANDS = {
    "submit": _cmd_submit,
    "status": _cmd_job,
    "logs": _cmd_job,
    "eval": _cmd_eval,
    "report": _cmd_report,
    "compare": _cmd_compare,
    "score": _cmd_score,
    "run": _cmd_run,
    "verify": _cmd_verify,
    "audit": _cmd_audit,
    "relabel": _cmd_relabel,
    "validate": _cmd_validate,
    "ls": _cmd_ls,
    "models": _cmd_models,
    "scores": _cmd_scores,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hardbench`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    from engine.spec import SpecError

    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        print(f"hardbench: invalid spec: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("hardbench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"hardbench: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
