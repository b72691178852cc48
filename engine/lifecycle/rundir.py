"""The run directory: its id, ``run.json`` status file and stored spec, for every task."""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

import yaml

from engine._util import RunSetupError
from engine.layout import RUN_FILE, SPEC_FILE
from engine.shards import atomic_write_bytes
from engine.spec import BenchmarkSpec, migrate_legacy, parse_spec

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # safe directory names


def new_run_id(spec: BenchmarkSpec) -> str:
    """``<name>-<UTC timestamp>-<4 hex>``: sortable and unique."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{spec.metadata.name}-{stamp}-{secrets.token_hex(2)}"


def create_run_dir(runs_dir: Path | str, run_id: str) -> Path:
    """Make ``<runs_dir>/<run_id>``, which must not exist yet.

    Raises:
        RunSetupError: For a run id that is not a safe directory name (``../`` and
            the like) or a directory that already exists; nothing is created then.
    """
    if not RUN_ID_PATTERN.match(run_id):
        raise RunSetupError(f"run id must match {RUN_ID_PATTERN.pattern}, got {run_id!r}")
    run_dir = Path(runs_dir).resolve() / run_id
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir(exist_ok=False)
    except FileExistsError:
        raise RunSetupError(f"run directory already exists: {run_dir}") from None
    return run_dir


def write_status(run_dir: Path | str, status: dict) -> None:
    """Rewrite ``run.json`` atomically."""
    atomic_write_bytes(Path(run_dir) / RUN_FILE, json.dumps(status, indent=2, default=str).encode())


def read_status(run_dir: Path | str) -> dict:
    """The run's ``run.json``.

    Raises:
        RunSetupError: If the directory is not a run (no ``run.json`` or ``spec.yaml``).
    """
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).exists() or not (run_dir / SPEC_FILE).exists():
        raise RunSetupError(f"{run_dir} is not a run directory (no {RUN_FILE} or {SPEC_FILE})")
    return json.loads((run_dir / RUN_FILE).read_text())


def read_run_spec(run_dir: Path | str) -> BenchmarkSpec:
    """The resolved spec a run was made with (runs from before the one schema included)."""
    path = Path(run_dir) / SPEC_FILE
    if not path.exists():
        raise RunSetupError(f"{run_dir} is not a run directory (no {SPEC_FILE})")
    return parse_spec(migrate_legacy(yaml.safe_load(path.read_text())), str(path))


def require_complete(run_dir: Path | str, what: str) -> dict:
    """The status of a complete run.

    Raises:
        RunSetupError: If the run is not complete, naming ``what`` cannot be done.
    """
    status = read_status(run_dir)
    if status.get("status") != "complete":
        raise RunSetupError(
            f"run {Path(run_dir).name} is {status.get('status')!r}, not complete: {what}"
        )
    return status
