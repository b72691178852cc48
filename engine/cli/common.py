"""What every command shares: exit codes, the default runs directory, the error line."""

from __future__ import annotations

import os
import sys

EXIT_BAD_INPUT = 2  # the spec or arguments are invalid; nothing was written
EXIT_FAILED = 1  # the run started and failed; run.json says why
RUNS_DIR_ENV = "HARDBENCH_RUNS_DIR"  # default parent of run directories


def default_runs_dir() -> str:
    """``$HARDBENCH_RUNS_DIR``, else ``runs``."""
    return os.environ.get(RUNS_DIR_ENV, "runs")


def refuse(message: object) -> int:
    """Print ``hardbench: <message>`` on stderr; the bad-input exit code."""
    print(f"hardbench: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def quiet_mlflow() -> None:
    """Keep MLflow's and alembic's INFO chatter (schema set-up) off the output."""
    import logging

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
