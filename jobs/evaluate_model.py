"""Ray job entrypoint: evaluate a model on a finished run's splits on the cluster.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.evaluate_model /shared/runs/<run> --model resnet152 --pretrained \
        --gpus-per-actor 0.5

Arguments are those of ``hardbench eval``; predictions run on a Ray Data actor pool
with the resources given (or the spec's ``evaluate.cpus_per_actor`` and
``gpus_per_actor``), and the result is logged as a nested MLflow run of the build. The
job first checks that its Python has hardbench's dependencies (``jobs/_deps.py``).
"""

from __future__ import annotations

import sys

from jobs._deps import require_dependencies

if __name__ == "__main__":
    require_dependencies()  # first: everything below needs the third-party packages
    from engine.cli import main
    from jobs._entry import run_dir_job

    sys.exit(main(["eval", *run_dir_job("evaluate_model", sys.argv[1:], "--weights-file")]))
