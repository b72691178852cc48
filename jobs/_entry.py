"""What every Ray job entrypoint does first, so the job outlives its working_dir.

The job's working directory is Ray's unpacked copy of the submitted one, and Ray may
remove it while the job still runs (seen with Ray 2.60 once the run's Train and Data
workers finish). So an entrypoint imports the whole engine up front, makes every path
argument absolute, and moves to a directory outside the copy before running: nothing
after start-up needs the working directory.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import engine


def import_engine() -> None:
    """Import every engine module now, while the working directory still exists."""
    for mod in pkgutil.walk_packages(engine.__path__, "engine."):
        importlib.import_module(mod.name)


def absolute(argv: list[str], *options: str, positional: bool = True) -> list[str]:
    """``argv`` with its first positional argument and the values of ``options`` made absolute."""
    argv = list(argv)
    if positional and argv and not argv[0].startswith("-"):
        argv[0] = str(Path(argv[0]).expanduser().resolve())
    for opt in options:
        if opt in argv and argv.index(opt) + 1 < len(argv):
            i = argv.index(opt) + 1
            argv[i] = str(Path(argv[i]).expanduser().resolve())
    return argv


def leave_working_dir(target: Path | str) -> None:
    """Create ``target`` if needed and make it the current directory."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    os.chdir(target)


def run_dir_job(command: str, argv: list[str], *path_options: str) -> list[str]:
    """Prepare a job whose first argument is a run directory: ``hardbench <command> RUN ...``."""
    import_engine()
    argv = absolute(argv, *path_options)
    if not argv or argv[0].startswith("-"):
        raise SystemExit(
            f"usage: python -m jobs.{command} RUN_DIR [options of hardbench {command}]"
        )
    leave_working_dir(Path(argv[0]).parent)
    return argv
