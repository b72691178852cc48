"""Ray job entrypoint: build a benchmark from a spec on the cluster the job runs in.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.build_benchmark benchmarks/digits.yaml --runs-dir /shared/runs

    ray job submit ... -- python -m jobs.build_benchmark --resume /shared/runs/<run>

Inside a Ray job ``RAY_ADDRESS`` is set, so the engine attaches to that cluster
instead of starting one. Arguments are those of ``hardbench run``. The job first checks
that its Python has hardbench's dependencies (``jobs/_deps.py``); see
``jobs/_entry.py`` for why it then leaves Ray's copy of the working directory; without
``--runs-dir`` runs go to ``$HARDBENCH_RUNS_DIR`` or ``~/hardbench-runs``, never into
that temporary copy.
"""

from __future__ import annotations

import sys

from jobs._deps import require_dependencies

if __name__ == "__main__":
    require_dependencies()  # first: everything below needs the third-party packages
    from engine.cli import main
    from jobs._entry import build_job

    sys.exit(main(["run", *build_job(sys.argv[1:])]))
