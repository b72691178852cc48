"""What a Ray job entrypoint does after its dependency check, so the job outlives its copy.

Imported only once ``jobs/_deps.py`` has found hardbench's dependencies. The job's
working directory is Ray's unpacked copy of the submitted one, and Ray may remove it
while the job still runs (seen with Ray 2.60 once the run's Train and Data workers
finish). So an entrypoint imports the whole engine up front, makes every path argument
absolute, and moves to a directory outside the copy before running: nothing after
start-up needs the working directory.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import engine
from engine.cli import RUNS_DIR_ENV


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


def build_job(argv: list[str]) -> list[str]:
    """Prepare a build job, ``hardbench run SPEC ...`` or ``hardbench run --resume RUN``.

    Absolute spec, runs and resume paths, the engine imported, the current directory
    moved to the runs directory (``--runs-dir``, else ``$HARDBENCH_RUNS_DIR``, else
    ``~/hardbench-runs``, which is then passed on) or to the resumed run's parent.
    """
    import_engine()
    argv = absolute(argv, "--runs-dir", "--resume")
    if "--resume" in argv:
        leave_working_dir(Path(argv[argv.index("--resume") + 1]).parent)
        return argv
    if "--runs-dir" in argv:
        runs = Path(argv[argv.index("--runs-dir") + 1])
    else:
        runs = Path(os.environ.get(RUNS_DIR_ENV) or Path.home() / "hardbench-runs").resolve()
        argv += ["--runs-dir", str(runs)]
    leave_working_dir(runs)
    return argv
