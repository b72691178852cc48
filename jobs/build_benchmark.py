"""Ray job entrypoint: build a benchmark from a spec on the cluster the job runs in.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.build_benchmark benchmarks/digits.yaml --runs-dir /shared/runs

Inside a Ray job ``RAY_ADDRESS`` is set, so the engine attaches to that cluster
instead of starting one. Arguments are those of ``hardbench run``.

The job's working directory is Ray's unpacked copy of the submitted one, and Ray may
remove it while the job still runs (seen with Ray 2.60 once the run's Train and Data
workers finish). So this entrypoint imports the whole engine up front, makes the spec
and runs directory absolute, and moves to the runs directory before running: nothing
after start-up needs the working directory. Without ``--runs-dir`` runs go to
``$HARDBENCH_RUNS_DIR`` or ``~/hardbench-runs``, never into the temporary copy.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

import engine
from engine.cli import RUNS_DIR_ENV, main


def _prepare(argv: list[str]) -> list[str]:
    """Absolute spec and runs paths, the engine imported, cwd moved off the working dir."""
    for mod in pkgutil.walk_packages(engine.__path__, "engine."):
        importlib.import_module(mod.name)
    argv = list(argv)
    if argv and not argv[0].startswith("-"):
        argv[0] = str(Path(argv[0]).resolve())
    if "--runs-dir" in argv:
        i = argv.index("--runs-dir") + 1
        argv[i] = str(Path(argv[i]).expanduser().resolve())
        runs = Path(argv[i])
    else:
        runs = Path(os.environ.get(RUNS_DIR_ENV) or Path.home() / "hardbench-runs").resolve()
        argv += ["--runs-dir", str(runs)]
    runs.mkdir(parents=True, exist_ok=True)
    os.chdir(runs)
    return argv


if __name__ == "__main__":
    sys.exit(main(["run", *_prepare(sys.argv[1:])]))
