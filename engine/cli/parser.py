"""The ``hardbench`` argument parser: every command and its options."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from engine.cli.common import RUNS_DIR_ENV

# What run and validate take as SPEC (load_spec reads a bare name as a shipped spec).
SPEC_OR_NAME = "benchmark spec (YAML), or a shipped benchmark's name (hardbench benchmarks)"


def _add_spec_args(
    p: argparse.ArgumentParser, *, optional: bool = False, spec_help: str = "benchmark spec (YAML)"
) -> None:
    p.add_argument("spec", type=Path, nargs="?" if optional else None, help=spec_help)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. --set replicas.epochs=5 (repeatable)",
    )


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default=None,
        metavar="PATH",
        help="benchmark a folder or table instead of a SPEC: class folders, IDX files, a "
        "datasets save_to_disk folder, .tar shards (or a glob) or a CSV/Parquet/JSONL table; "
        "the source and its columns are found from what PATH holds",
    )
    p.add_argument(
        "--recipe",
        default=None,
        metavar="NAME",
        help="with --data: the shipped benchmark whose replicas, scores, splits and models "
        "to use (default: images or texts, as PATH holds; hardbench benchmarks lists them)",
    )


def _add_address_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default=os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS"),
        help="Ray Jobs API, e.g. http://127.0.0.1:8265 (default $RAY_API_SERVER_ADDRESS "
        "or $RAY_ADDRESS)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``hardbench`` command."""
    parser = argparse.ArgumentParser(
        prog="hardbench", description="Build hard benchmarks from seed-ensemble training dynamics."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train replicas, score, build splits, evaluate, log to MLflow")
    _add_spec_args(run, optional=True, spec_help=SPEC_OR_NAME)
    _add_data_args(run)
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

    abl = sub.add_parser(
        "ablate",
        help="the score from fewer epochs and replicas, from a run's shards (no retraining)",
    )
    abl.add_argument("run_dir", type=Path)
    abl.add_argument("--score", default="confusion", help="registered score (default confusion)")
    abl.add_argument(
        "--epochs", default="5,10,20", help="numbers of epochs to try, or 'all' (default 5,10,20)"
    )
    abl.add_argument(
        "--replicas", default=None, help="numbers of replicas to try, or 'all' (default 1,3)"
    )
    abl.add_argument("--draws", type=int, default=3, help="replica subsets drawn per count")
    abl.add_argument("--seed", type=int, default=None, help="default: the run's replica seed")
    abl.add_argument("--overwrite", action="store_true", help="replace an earlier ablation")
    abl.add_argument("--num-cpus", type=int, default=None)
    aud = sub.add_parser(
        "audit", help="rank a run's samples by how suspicious their labels are (CSV + HTML)"
    )
    aud.add_argument("run_dir", type=Path)
    aud.add_argument(
        "--split",
        default="all",
        choices=["all", "train", "heldout"],
        help="samples audited (default all: train and heldout, each ranked on its own)",
    )
    aud.add_argument(
        "--pool",
        action="store_true",
        help="rank the audited splits together (one ranking, one confident-learning "
        "estimate) instead of each data split separately",
    )
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
        "verify", help="check a run's shards against their manifest (xxh3_128/sha256, rows, schema)"
    )
    ver.add_argument("run_dir", type=Path)
    ver.add_argument(
        "--repair", action="store_true", help="quarantine failed shards and regenerate them"
    )
    ver.add_argument("--num-cpus", type=int, default=None)

    val = sub.add_parser("validate", help="check a spec (or --data PATH) without running it")
    _add_spec_args(val, optional=True, spec_help=SPEC_OR_NAME)
    _add_data_args(val)

    sb = sub.add_parser("submit", help="run a spec on a Ray cluster as a Ray job and follow it")
    _add_spec_args(sb)
    _add_address_arg(sb)
    sb.add_argument("--runs-dir", default=None, help="run directory on the cluster (shared path)")
    sb.add_argument(
        "--working-dir", type=Path, default=Path.cwd(), help="repository uploaded with the job"
    )
    sb.add_argument("--submission-id", default=None)
    sb.add_argument(
        "--runtime-env",
        type=Path,
        default=None,
        metavar="FILE",
        help="give the job's Python its packages: a requirements file (.txt: a 'pip' "
        "runtime env, e.g. cluster/requirements.txt for a cluster whose Python lacks "
        "hardbench's dependencies) or a Ray runtime_env mapping (.yaml/.yml/.json: pip, "
        "conda, uv, env_vars, image_uri, ...) merged over the job's own; working_dir and "
        "excludes are refused (set by --working-dir)",
    )
    sb.add_argument("--no-wait", action="store_true", help="print the job id and return")
    for name, text in (("status", "a Ray job's status"), ("logs", "a Ray job's logs")):
        jp = sub.add_parser(name, help=text)
        jp.add_argument("job_id")
        _add_address_arg(jp)

    ev = sub.add_parser(
        "eval", help="evaluate a registered or MLflow-logged model on a finished run's splits"
    )
    ev.add_argument("run_dir", type=Path)
    which = ev.add_mutually_exclusive_group(required=False)  # or --labels alone: the build's models
    which.add_argument("--model", help="registered model name (hardbench models)")
    which.add_argument(
        "--model-uri", help="MLflow URI of a logged hardbench model, e.g. runs:/<id>/model"
    )
    ev.add_argument("--label", default=None, help="name in reports and MLflow")
    ev.add_argument(
        "--labels",
        default=None,
        metavar="VERSION",
        help="a labels version v<n> (hardbench relabel): measure on the original and the "
        "corrected labels side by side and rank the models on each; without --model/--model-uri "
        "the run's own models are re-measured from their stored predictions",
    )
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
        "--actors",
        default=None,
        help="prediction actors: a number or auto (default: evaluate.actors)",
    )
    ev.add_argument(
        "--cpus-per-actor", type=float, default=None, help="default: evaluate.cpus_per_actor"
    )
    ev.add_argument(
        "--gpus-per-actor",
        type=float,
        default=None,
        help="GPU share of each prediction actor (default: evaluate.gpus_per_actor)",
    )

    cmp_ = sub.add_parser("compare", help="robustness table across builds and models, from MLflow")
    cmp_.add_argument(
        "experiment", nargs="?", default=None,
        help="MLflow experiment (the spec's tracking.experiment; default: every experiment)",
    )  # fmt: skip
    cmp_.add_argument(
        "--tracking-uri", default=None,
        help="MLflow store (default $MLFLOW_TRACKING_URI, else the runs directory's store)",
    )  # fmt: skip
    cmp_.add_argument("--runs-dir", default=None, help=f"default ${RUNS_DIR_ENV} or ./runs")
    cmp_.add_argument("--run-id", default=None, help="only this hardbench run")
    cmp_.add_argument(
        "--labels",
        default=None,
        metavar="VERSION",
        help="add the errors on this labels version (hardbench eval RUN --labels v<n>) and "
        "the rankings on each label set",
    )

    ui = sub.add_parser("ui", help="start the MLflow UI of a runs directory's store on 127.0.0.1")
    ui.add_argument("--runs-dir", default=None, help=f"default ${RUNS_DIR_ENV} or ./runs")
    ui.add_argument("--port", type=int, default=5000)

    rep = sub.add_parser(
        "report", help="(re)build a run's HTML report and log it to its MLflow run"
    )
    rep.add_argument("run_dir", type=Path)

    ls = sub.add_parser("ls", help="list runs with their status")
    ls.add_argument("--runs-dir", default=None)

    models = sub.add_parser("models", help="list registered models")
    models.add_argument("pattern", nargs="?", default="*")

    sub.add_parser("scores", help="list registered scores with direction and inputs")
    sub.add_parser("tasks", help="list registered tasks with their sources")
    sub.add_parser(
        "benchmarks",
        help="list the shipped benchmark specs (include: NAME, --recipe NAME, run NAME)",
    )
    src = sub.add_parser("sources", help="list registered data sources")
    src.add_argument("pattern", nargs="?", default="*")
    ing = sub.add_parser(
        "ingest", help="decode a spec's data into its dataset cache (reused by later runs)"
    )
    _add_spec_args(ing)
    ing.add_argument("--runs-dir", default=None, help=f"default ${RUNS_DIR_ENV} or ./runs")
    ing.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray cluster")
    return parser
