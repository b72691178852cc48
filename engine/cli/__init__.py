"""The ``hardbench`` command line: ``main`` dispatches to one function per command.

hardbench run SPEC [--set section.field=value ...] [--runs-dir DIR] [--run-id ID]
hardbench run --resume RUN_DIR|URI       hardbench verify RUN_DIR [--repair]
hardbench score RUN_DIR                  hardbench report RUN_DIR
hardbench ablate RUN_DIR [--epochs 5,10,20] [--replicas 1,3]
hardbench eval RUN_DIR --model NAME | --model-uri URI
hardbench compare [EXPERIMENT]           hardbench ui [--runs-dir DIR]
hardbench audit RUN_DIR                  hardbench relabel RUN_DIR --verdicts FILE
hardbench submit SPEC --address URL      hardbench status|logs JOB_ID
hardbench run --data PATH [--recipe NAME] (a folder or table, a shipped recipe)
hardbench validate SPEC | --data PATH    hardbench ls | models | scores | tasks | sources
hardbench ingest SPEC [--runs-dir DIR]   hardbench benchmarks (the shipped specs)

The commands live by concern in ``engine.cli.runs``, ``evaluate``, ``jobs`` and
``info``; the parser in ``engine.cli.parser``.
"""

from __future__ import annotations

import signal
import sys

from engine.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, RUNS_DIR_ENV
from engine.cli.evaluate import cmd_audit, cmd_compare, cmd_eval, cmd_relabel
from engine.cli.info import (
    cmd_benchmarks,
    cmd_models,
    cmd_scores,
    cmd_sources,
    cmd_tasks,
    cmd_validate,
)
from engine.cli.jobs import cmd_job, cmd_submit
from engine.cli.parser import build_parser
from engine.cli.runs import (
    cmd_ablate,
    cmd_ingest,
    cmd_ls,
    cmd_report,
    cmd_run,
    cmd_score,
    cmd_ui,
    cmd_verify,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "RUNS_DIR_ENV", "main"]

COMMANDS = {
    "submit": cmd_submit,
    "status": cmd_job,
    "logs": cmd_job,
    "eval": cmd_eval,
    "report": cmd_report,
    "compare": cmd_compare,
    "ui": cmd_ui,
    "score": cmd_score,
    "ablate": cmd_ablate,
    "run": cmd_run,
    "verify": cmd_verify,
    "audit": cmd_audit,
    "relabel": cmd_relabel,
    "validate": cmd_validate,
    "ls": cmd_ls,
    "models": cmd_models,
    "scores": cmd_scores,
    "tasks": cmd_tasks,
    "benchmarks": cmd_benchmarks,
    "sources": cmd_sources,
    "ingest": cmd_ingest,
}


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hardbench`` console script; returns the exit code.

    SIGTERM (``ray job stop``, ``kill``) is turned into an interrupt, so a build that is
    stopped records itself as killed in ``run.json`` and MLflow before it exits.
    """
    args = build_parser().parse_args(argv)
    from engine.spec import SpecError

    previous = signal.signal(signal.SIGTERM, _interrupted)
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
    finally:
        signal.signal(signal.SIGTERM, previous)
