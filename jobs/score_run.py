"""Ray job entrypoint: re-score a run's shards on the cluster the job runs in.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.score_run /shared/runs/<run> --scores confusion,aum

Arguments are those of ``hardbench score``; the run directory must be on storage the
cluster's nodes share. The output never overwrites an existing file. The job first
checks that its Python has hardbench's dependencies (``jobs/_deps.py``).
"""

from __future__ import annotations

import sys

from jobs._deps import require_dependencies

if __name__ == "__main__":
    require_dependencies()  # first: everything below needs the third-party packages
    from engine.cli import main
    from jobs._entry import run_dir_job

    sys.exit(main(["score", *run_dir_job("score_run", sys.argv[1:], "--out")]))
