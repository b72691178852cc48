"""Ray job entrypoint: build a benchmark from a spec on the cluster the job runs in.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.build_benchmark benchmarks/digits.yaml --runs-dir /shared/runs

    ray job submit ... -- python -m jobs.build_benchmark --resume /shared/runs/<run>

Inside a Ray job ``RAY_ADDRESS`` is set, so the engine attaches to that cluster
instead of starting one. Arguments are those of ``hardbench run``. See
``jobs/_entry.py`` for why the entrypoint leaves Ray's copy of the working directory;
without ``--runs-dir`` runs go to ``$HARDBENCH_RUNS_DIR`` or ``~/hardbench-runs``,
never into that temporary copy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.cli import RUNS_DIR_ENV, main
from jobs._entry import absolute, import_engine, leave_working_dir


def _prepare(argv: list[str]) -> list[str]:
    """Absolute spec and runs paths, the engine imported, cwd moved off the working dir."""
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


if __name__ == "__main__":
    sys.exit(main(["run", *_prepare(sys.argv[1:])]))
