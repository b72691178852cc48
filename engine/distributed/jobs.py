"""Submit hardbench work to a Ray cluster as Ray jobs and follow them (Jobs API client).

The job runs ``python -m jobs.build_benchmark SPEC ...`` in a ``working_dir`` runtime
environment holding this repository (virtualenvs, runs and caches excluded), so the
cluster runs the same code as the submitter; a ``--runtime-env`` file (a requirements
file, or a runtime_env mapping) is merged over it. The run directory is read back from
the job's own log line ``run: <path>``; a job that ends with an exit code and a last
log line is reported with both, so the caller can show a job's one-line refusal.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

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
# Environment every build job gets; a --runtime-env file's env_vars are merged over it.
JOB_ENV_VARS = {"MLFLOW_LOGGING_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
# runtime_env keys hardbench submit sets itself from --working-dir: a file may not set them.
OWN_RUNTIME_ENV_KEYS = ("working_dir", "excludes")
# --runtime-env file suffixes read as pip requirements files (one requirement a line).
REQUIREMENTS_SUFFIXES = (".txt", ".in")
# --runtime-env file suffixes read as a runtime_env mapping.
MAPPING_SUFFIXES = (".yaml", ".yml", ".json")
# Requirement-file options that name another local file, which does not travel with the job.
FILE_OPTIONS = ("-r", "--requirement", "-c", "--constraint")
# Ray's job error type of an entrypoint that ran and exited non-zero (its log says why).
ENTRYPOINT_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"


class JobSubmitError(ValueError):
    """The job cannot be submitted as asked (bad path, unreachable cluster)."""


@dataclass(frozen=True)
class JobOutcome:
    """Where a followed job ended.

    Attributes:
        job_id: The job (submission) id.
        status: SUCCEEDED, FAILED or STOPPED.
        run_dir: The run directory the job's log named, if any.
        exit_code: The entrypoint's exit code; None if it never ran or was stopped.
        last_line: The job log's last non-blank line ("" for an empty log).
        error_type: Ray's error type of a failed job (e.g. RUNTIME_ENV_SETUP_FAILURE).
        message: Ray's status message (why a job that never started failed).
    """

    job_id: str
    status: str
    run_dir: str | None
    exit_code: int | None = None
    last_line: str = ""
    error_type: str | None = None
    message: str = ""

    @property
    def started(self) -> bool:
        """Whether the entrypoint ran (False: Ray failed it before, e.g. its runtime env)."""
        return self.exit_code is not None or self.error_type in (None, ENTRYPOINT_ERROR)


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
    runtime_env_file: Path | str | None = None,
) -> str:
    """Submit ``hardbench run SPEC`` as a Ray job; returns the job (submission) id.

    Args:
        spec: A spec file inside ``working_dir`` (it travels with it).
        address: The Jobs API address, e.g. ``http://127.0.0.1:8265``.
        working_dir: The repository uploaded as the job's working directory.
        runs_dir: Where the run lands on the cluster (a path every node can reach).
        overrides: ``--set`` overrides.
        submission_id: A caller-chosen id (Ray makes one otherwise).
        runtime_env_file: A requirements file or runtime_env mapping merged over the
            job's runtime env (see :func:`read_runtime_env`).

    Raises:
        JobSubmitError: If the spec is outside the working directory, the runtime env
            file cannot be used, or the cluster cannot be reached.
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
    extra = read_runtime_env(runtime_env_file) if runtime_env_file is not None else {}
    runtime_env = job_runtime_env(working_dir, extra)
    client = job_client(address)
    try:
        return client.submit_job(
            entrypoint=shlex.join(argv),
            submission_id=submission_id,
            runtime_env=runtime_env,
            metadata={"hardbench": "build", "spec": spec_path.name},
        )
    except (TypeError, ValueError) as exc:  # Ray's own runtime_env validation
        if runtime_env_file is None:
            raise
        raise JobSubmitError(f"{runtime_env_file}: {exc}") from None


def job_runtime_env(working_dir: Path | str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """A build job's runtime env, with ``extra`` merged over it.

    The job's own keys are the working directory, its excludes and :data:`JOB_ENV_VARS`;
    ``extra`` (from :func:`read_runtime_env`) adds keys or replaces them, ``env_vars``
    key by key.
    """
    env: dict[str, Any] = {
        "working_dir": str(working_dir),
        "excludes": list(WORKING_DIR_EXCLUDES),
        "env_vars": dict(JOB_ENV_VARS),
    }
    for key, value in extra.items():
        env[key] = {**env["env_vars"], **value} if key == "env_vars" else value
    return env


def read_runtime_env(path: Path | str) -> dict[str, Any]:
    """What a ``--runtime-env`` file adds to a build job's runtime env.

    A requirements file (``.txt``, ``.in``) becomes ``{"pip": [its requirement lines]}``
    (comments and blank lines dropped), which Ray installs into a virtualenv for the job
    on top of the node's own packages. A ``.yaml``, ``.yml`` or ``.json`` file is a
    runtime_env mapping (``pip``, ``conda``, ``uv``, ``env_vars``, ``py_modules``,
    ``image_uri``, ...), taken as it is.

    Raises:
        JobSubmitError: Naming the file (and line or key) when it is missing, of another
            kind, empty, includes another local file, is not a mapping, sets
            ``working_dir`` or ``excludes`` (``hardbench submit`` sets them from
            ``--working-dir``), or has a key Ray does not know.
    """
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        raise JobSubmitError(f"runtime env file {what}: {path}")
    suffix = path.suffix.lower()
    if suffix in REQUIREMENTS_SUFFIXES:
        return {"pip": _requirement_lines(path)}
    if suffix not in MAPPING_SUFFIXES:
        raise JobSubmitError(
            f"{path}: give a requirements file ({', '.join(REQUIREMENTS_SUFFIXES)}) or a "
            f"runtime_env mapping ({', '.join(MAPPING_SUFFIXES)})"
        )
    return _runtime_env_mapping(path)


def _requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a pip requirements file, comments and blanks dropped."""
    lines = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        option = line.split()[0].split("=", 1)[0]
        if option in FILE_OPTIONS or option[:2] in FILE_OPTIONS:  # also "-rother.txt"
            raise JobSubmitError(
                f"{path}:{number}: '{line}' names another local file, which does not "
                "travel with the job: put its requirements in this file"
            )
        lines.append(line)
    if not lines:
        raise JobSubmitError(f"{path}: no requirements in the file")
    return lines


def _runtime_env_mapping(path: Path) -> dict[str, Any]:
    """A runtime_env mapping read from YAML or JSON, its keys checked."""
    import yaml
    from ray.runtime_env import RuntimeEnv

    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise JobSubmitError(
            f"{path}: not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise JobSubmitError(f"{path}: not valid YAML: {where}{problem}") from None
    if not isinstance(data, dict) or not data:
        raise JobSubmitError(
            f"{path}: a runtime_env mapping is expected (e.g. 'pip: [...]'), got "
            f"{type(data).__name__}"
        )
    for key in data:
        if key in OWN_RUNTIME_ENV_KEYS:
            raise JobSubmitError(
                f"{path}: '{key}' is set by hardbench submit (the --working-dir repository "
                f"and its excludes): remove '{key}' from the file"
            )
        if key not in RuntimeEnv.known_fields:
            known = sorted(f for f in RuntimeEnv.known_fields if not f.startswith("_"))
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise JobSubmitError(
                f"{path}: unknown runtime_env key '{key}'{hint}; known: {', '.join(known)}"
            )
    if "env_vars" in data and not isinstance(data["env_vars"], dict):
        raise JobSubmitError(f"{path}: 'env_vars' must be a mapping of names to strings")
    return data


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
        info = client.get_job_info(job_id)
        status = str(info.status.value)
        logs = client.get_job_logs(job_id)
        if len(logs) > shown:
            out.write(logs[shown:])
            out.flush()
            shown = len(logs)
        if status in TERMINAL:
            found = RUN_LINE.findall(logs)
            lines = [line for line in logs.splitlines() if line.strip()]
            return JobOutcome(
                job_id,
                status,
                found[-1].strip() if found else None,
                exit_code=info.driver_exit_code,
                last_line=lines[-1].strip() if lines else "",
                error_type=getattr(info.error_type, "value", info.error_type),  # enum or str
                message=info.message or "",
            )
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"job {job_id} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)
