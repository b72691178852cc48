"""The default digits benchmark keeps its scores and splits bit for bit (issue 15's guard).

The evaluated models are left out (they do not touch scores or splits), which keeps
this run to the replicas, the scoring pool and the builder.
"""

import pytest

from engine.lifecycle import run_benchmark
from engine.spec import load_spec
from tests.golden import check_golden

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_digits_scores_and_splits_equal_the_golden_values(ray_local, tmp_path, no_tracking_env):
    spec = load_spec("benchmarks/digits.yaml", ["evaluate.models=[]"])
    result = run_benchmark(spec, runs_dir=tmp_path, run_id="digits", log=lambda line: None)
    check_golden("digits", result.run_dir)
