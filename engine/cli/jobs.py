"""Commands for Ray clusters: submit, status, logs (the Ray Jobs API)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from engine.cli.common import EXIT_BAD_INPUT, EXIT_FAILED

if TYPE_CHECKING:
    from engine.distributed.jobs import JobOutcome

# How a refusal line starts, the job's and the CLI's own (engine.cli.common.refuse).
REFUSAL_PREFIX = "hardbench: "


def has_address(args: argparse.Namespace) -> bool:
    """Whether ``--address`` (or ``RAY_ADDRESS``) was given; says so when not."""
    if not args.address:
        print("hardbench: give --address (or set RAY_ADDRESS)", file=sys.stderr)
    return bool(args.address)


def cmd_submit(args: argparse.Namespace) -> int:
    """``hardbench submit SPEC --address URL``: run a spec as a Ray job and follow it."""
    from engine.distributed.jobs import JobSubmitError, follow, submit_build
    from engine.spec import SpecError, load_spec

    if not has_address(args):
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
            runtime_env_file=args.runtime_env,
        )
    except (SpecError, JobSubmitError) as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"submitted job {job_id} to {args.address}", flush=True)
    if args.no_wait:
        return 0
    outcome = follow(job_id, args.address)
    print(f"job {job_id}: {outcome.status}", flush=True)
    if outcome.run_dir:
        print(f"outputs: {outcome.run_dir}")
    if outcome.status == "SUCCEEDED":
        return 0
    if is_refusal(outcome):  # e.g. the cluster's Python lacks the dependencies
        print(outcome.last_line, file=sys.stderr)
        return EXIT_BAD_INPUT
    if not outcome.started:  # Ray failed it before its entrypoint ran: only Ray says why
        print(f"hardbench: job {job_id} could not start: {outcome.message}", file=sys.stderr)
    return EXIT_FAILED


def is_refusal(outcome: JobOutcome) -> bool:
    """Whether a followed job refused its input or its interpreter.

    A refusal is a FAILED job whose last log line is ``hardbench: ...`` and whose exit
    code is the bad-input one: what ``hardbench`` prints for bad input, and what
    ``jobs/_deps.py`` prints when the cluster's Python lacks hardbench's dependencies.
    """
    return (
        outcome.status == "FAILED"
        and outcome.exit_code == EXIT_BAD_INPUT
        and outcome.last_line.startswith(REFUSAL_PREFIX)
    )


def cmd_job(args: argparse.Namespace) -> int:
    """``hardbench status|logs JOB_ID``: a Ray job's status or logs."""
    from engine.distributed.jobs import JobSubmitError, job_logs, job_status

    if not has_address(args):
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
