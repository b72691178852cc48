"""Ray job entrypoint: build a benchmark from a spec on the cluster the job runs in.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python -m jobs.build_benchmark benchmarks/digits.yaml --runs-dir /shared/runs

Inside a Ray job ``RAY_ADDRESS`` is set, so the engine attaches to that cluster
instead of starting one. Arguments are those of ``hardbench run``.
"""

from __future__ import annotations

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
