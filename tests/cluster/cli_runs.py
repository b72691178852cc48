"""Run the ``hardbench`` CLI in a subprocess with its own local Ray cluster, for the fault tests."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HARDBENCH = str(Path(sys.executable).parent / "hardbench")
# Credentials a real job's environment holds; none may reach a log, run.json or MLflow.
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "hb-test-secret-aws-7f3a9c",
    "MLFLOW_TRACKING_PASSWORD": "hb-test-secret-mlflow-51d2",
    "HF_TOKEN": "hb-test-secret-hf-0b8e",
}


def start_cli(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``hardbench ARGS`` from the repo root in its own session, output to ``log``."""
    return subprocess.Popen(
        [HARDBENCH, *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_cli(args: list[str], env: dict, log: Path, timeout: float = 400) -> tuple[int, str, float]:
    """``hardbench ARGS`` to the end: (exit code, output, seconds)."""
    start = time.monotonic()
    proc = start_cli(args, env, log)
    rc = proc.wait(timeout=timeout)
    return rc, log.read_text(), time.monotonic() - start


def assert_same_scores(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """Every column of ``a`` equal to ``b``'s bit for bit."""
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
