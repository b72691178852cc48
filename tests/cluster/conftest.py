"""Fixtures of the tests that run the CLI against their own local Ray clusters."""

import os
import shutil
import tempfile

import pytest

from tests.cluster.cli_runs import SECRETS
from tests.cluster.procs import pids_using, stop_pids


@pytest.fixture(scope="module")
def ray_tmp():
    """A short private RAY_TMPDIR for the CLI's local clusters; leftovers killed at the end.

    Yields the environment for :func:`tests.cluster.cli_runs.run_cli`: the caller's, with
    credentials a real job holds, no ``RAY_ADDRESS`` and no ``MLFLOW_TRACKING_URI``.
    """
    temp = tempfile.mkdtemp(prefix="rft", dir="/tmp")
    env = {**os.environ, **SECRETS, "RAY_TMPDIR": temp, "MLFLOW_LOGGING_LEVEL": "WARNING"}
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    yield env
    stop_pids(pids_using(temp))
    shutil.rmtree(temp, ignore_errors=True)
