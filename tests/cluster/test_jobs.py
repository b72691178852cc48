"""A real two-node Ray cluster on loopback: jobs submitted with `ray job submit` and `hardbench submit`."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cluster.procs import pids_using, stop_pids

ROOT = Path(__file__).resolve().parents[2]
TINY = "tests/fixtures/tiny.yaml"
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agent_ports() -> list[str]:
    """Free ports for a node's agents: the defaults (52365, ...) are taken by any other
    cluster on this machine, such as the session's ``ray_local``, and a head whose job
    agent cannot bind answers "No available agent to submit job" forever."""
    return [f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}"]  # fmt: skip


@pytest.fixture(scope="module")
def loopback_cluster():
    """Head (1 CPU) + a second node (2 CPUs) on 127.0.0.1, token auth on; torn down by pid."""
    temp = tempfile.mkdtemp(prefix="rhb", dir="/tmp")  # short: Ray's socket paths are long
    gcs, dash = _free_port(), _free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("RAY_ADDRESS", None)
    ray = str(Path(sys.executable).parent / "ray")
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    subprocess.run(
        [ray, "start", "--head", f"--port={gcs}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dash}", "--num-cpus=1", f"--temp-dir={temp}", *common,
         *_agent_ports()],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        subprocess.run(
            [ray, "start", f"--address=127.0.0.1:{gcs}", "--num-cpus=2", *common,
             *_agent_ports()],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        address = f"http://127.0.0.1:{dash}"
        from engine.distributed.jobs import TERMINAL, job_client

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RAY_AUTH_MODE", "token")  # for this process's Jobs API clients
            deadline = time.monotonic() + 120
            while True:  # ready when the job agent takes and runs a trivial job
                try:
                    client = job_client(address)
                    probe = client.submit_job(entrypoint="python -c pass")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(2)
            while str(client.get_job_status(probe).value) not in TERMINAL:
                assert time.monotonic() < deadline, "the probe job never finished"
                time.sleep(1)
            yield address, env, Path(temp)
    finally:
        # Listed before any dies: orphans lose their parent link.
        stop_pids(pids_using(temp, f":{gcs} "))
        shutil.rmtree(temp, ignore_errors=True)


def _check_complete_run(run_dir: Path, replicas: int, epochs: int) -> None:
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "complete", status
    assert pq.read_table(run_dir / "scores.parquet").num_rows == 1797
    shards = sorted(run_dir.glob("preds/replica=*/epoch=*/block=*.parquet"))
    assert len(shards) == replicas * epochs * 4  # 1,797 samples in 512-sample blocks
    assert (run_dir / "benchmark" / "card.json").exists() and (run_dir / "report.html").exists()


def test_ray_job_submit_cli_builds_a_benchmark(loopback_cluster, tmp_path):
    address, env, _ = loopback_cluster
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", address,
         "--working-dir", str(ROOT),
         "--runtime-env-json", json.dumps({"excludes": [".venv/", "runs/", ".git/"]}),
         "--", "python", "-m", "jobs.build_benchmark", TINY, "--runs-dir", str(runs),
         "--set", "evaluate.ensemble=false"],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in (proc.stdout + proc.stderr).lower()
    (run_dir,) = [p.parent for p in runs.glob("*/run.json")]
    assert (runs / "mlflow.db").exists()  # the runs directory's one store
    _check_complete_run(run_dir, replicas=2, epochs=3)
    # The score and evaluate entrypoints, on the run the build job left on shared storage.
    for module, args in (
        ("jobs.score_run", [str(run_dir), "--scores", "confusion,aum"]),
        (
            "jobs.evaluate_model",
            [str(run_dir), "--model-uri", str(run_dir / "models" / "small_mlp"), "--split", "hard"],
        ),
    ):
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", address,
             "--working-dir", str(ROOT),
             "--runtime-env-json", json.dumps({"excludes": [".venv/", "runs/", ".git/"]}),
             "--", "python", "-m", module, *args],
            env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rescored = pq.read_table(run_dir / "scores.rescored.parquet")
    assert rescored.num_rows == 1797 and {"confusion", "aum"} <= set(rescored.column_names)
    extra = json.loads((run_dir / "eval" / "extra" / "small_mlp-hard.json").read_text())
    assert extra["split"] == "hard" and 0 <= extra["error_all"] <= 1


def test_hardbench_submit_status_and_logs(loopback_cluster, tmp_path, capsys, monkeypatch):
    from engine.cli import EXIT_BAD_INPUT, main

    address, _, _ = loopback_cluster
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "WARNING")
    runs = tmp_path / "runs"
    argv = ["submit", TINY, "--address", address, "--runs-dir", str(runs)]
    argv += ["--working-dir", str(ROOT), "--submission-id", "hb-test-1"]
    monkeypatch.chdir(ROOT)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "submitted job hb-test-1" in out and "job hb-test-1: SUCCEEDED" in out
    run_dir = Path(out.split("outputs: ")[1].split()[0])
    assert run_dir.parent == runs
    _check_complete_run(run_dir, replicas=2, epochs=3)
    assert main(["status", "hb-test-1", "--address", address]) == 0
    assert capsys.readouterr().out.strip() == "SUCCEEDED"
    assert main(["logs", "hb-test-1", "--address", address]) == 0
    assert f"run: {run_dir}" in capsys.readouterr().out
    # A spec outside the uploaded directory and a bad spec never reach the cluster.
    outside = tmp_path / "s.yaml"
    outside.write_text((ROOT / "benchmarks" / "digits.yaml").read_text())
    assert main(["submit", str(outside), "--address", address]) == EXIT_BAD_INPUT
    assert "outside the working directory" in capsys.readouterr().err
    bad = ["submit", TINY, "--address", address, "--set", "replicas.model=nope"]
    assert main(bad) == EXIT_BAD_INPUT
    assert "replicas.model" in capsys.readouterr().err
