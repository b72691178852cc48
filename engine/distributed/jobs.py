"""Submit hardbench work to a Ray cluster as Ray jobs and follow them (Jobs API client).

The job runs ``python -m jobs.build_benchmark SPEC ...`` in a ``working_dir`` runtime
environment holding this repository (virtualenvs, runs and caches excluded), so the
cluster runs the same code as the submitter. The run directory is read back from the
job's own log line ``run: <path>``.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

# Never uploaded with the working directory: environments, outputs and caches.
WORKING_DIR_EXCLUDES = [
    ".venv/",
    "runs/",
    ".git/",
    "**/__pycache__/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".hypothesis/",
    "*.egg-info/",
]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
RUN_LINE = re.compile(r"^run: (?P<path>\S.*)$", re.MULTILINE)


class JobSubmitError(ValueError):
    """The job cannot be submitted as asked (bad path, unreachable cluster)."""


@dataclass(frozen=True)
class JobOutcome:
    """Where a followed job ended."""

    job_id: str
    status: str
    run_dir: str | None


def _auth_headers() -> dict[str, str]:
    """A bearer token header when ``RAY_AUTH_MODE=token``, read as Ray reads it.

    Sources in Ray's order: ``RAY_AUTH_TOKEN``, the file at ``RAY_AUTH_TOKEN_PATH``,
    ``~/.ray/auth_token``. Passing it explicitly keeps a process that imported Ray
    before the variable was set working. The token is never printed or logged.
    """
    import os

    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return {}
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if not token:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
        if not path.is_file():
            raise JobSubmitError(
                f"RAY_AUTH_MODE=token but no token: set RAY_AUTH_TOKEN or put it in {path}"
            )
        token = path.read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def job_client(address: str):
    """A Ray Jobs client for ``address``, with the auth headers the environment gives.

    Raises:
        JobSubmitError: If the Jobs API cannot be reached, saying what to check.
    """
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=_auth_headers() or None)
    except (ConnectionError, RuntimeError) as exc:
        raise JobSubmitError(
            f"cannot reach the Ray Jobs API at {address}: {exc}. Is the dashboard up "
            "(ray[default]), and RAY_AUTH_MODE=token set when the cluster uses token auth?"
        ) from None


def submit_build(
    spec: Path | str,
    address: str,
    *,
    working_dir: Path | str,
    runs_dir: str | None = None,
    overrides: list[str] | None = None,
    submission_id: str | None = None,
) -> str:
    """Submit ``hardbench run SPEC`` as a Ray job; returns the job (submission) id.

    Args:
        spec: A spec file inside ``working_dir`` (it travels with it).
        address: The Jobs API address, e.g. ``http://127.0.0.1:8265``.
        working_dir: The repository uploaded as the job's working directory.
        runs_dir: Where the run lands on the cluster (a path every node can reach).
        overrides: ``--set`` overrides.
        submission_id: A caller-chosen id (Ray makes one otherwise).

    Raises:
        JobSubmitError: If the spec is outside the working directory or the cluster
            cannot be reached.
    """
    import shlex

    working_dir = Path(working_dir).resolve()
    spec_path = Path(spec).resolve()
    if not spec_path.is_file():
        raise JobSubmitError(f"spec file not found: {spec}")
    if not spec_path.is_relative_to(working_dir):
        raise JobSubmitError(
            f"spec {spec_path} is outside the working directory {working_dir}: "
            "only files inside it travel to the cluster"
        )
    argv = ["python", "-m", "jobs.build_benchmark", str(spec_path.relative_to(working_dir))]
    if runs_dir:
        argv += ["--runs-dir", runs_dir]
    for item in overrides or []:
        argv += ["--set", item]
    client = job_client(address)
    return client.submit_job(
        entrypoint=shlex.join(argv),
        submission_id=submission_id,
        runtime_env={
            "working_dir": str(working_dir),
            "excludes": WORKING_DIR_EXCLUDES,
            "env_vars": {"MLFLOW_LOGGING_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"},
        },
        metadata={"hardbench": "build", "spec": spec_path.name},
    )


def job_status(job_id: str, address: str) -> str:
    """The job's status name (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED)."""
    return str(job_client(address).get_job_status(job_id).value)


def job_logs(job_id: str, address: str) -> str:
    """Everything the job has printed so far."""
    return job_client(address).get_job_logs(job_id)


def follow(
    job_id: str,
    address: str,
    *,
    out: TextIO = sys.stdout,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
) -> JobOutcome:
    """Stream a job's new log text to ``out`` until it ends; returns where it ended.

    Raises:
        TimeoutError: If ``timeout_s`` passes first (the job keeps running).
    """
    client = job_client(address)
    shown = 0
    start = time.monotonic()
    while True:
        status = str(client.get_job_status(job_id).value)
        logs = client.get_job_logs(job_id)
        if len(logs) > shown:
            out.write(logs[shown:])
            out.flush()
            shown = len(logs)
        if status in TERMINAL:
            found = RUN_LINE.findall(logs)
            return JobOutcome(job_id, status, found[-1].strip() if found else None)
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"job {job_id} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)
