"""A real `mlflow server` on loopback: a build logs to it, `hardbench compare` reads it back."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from engine.cli import main
from engine.lifecycle import run_benchmark
from engine.spec import load_spec

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny.yaml"
SERVER_START_TIMEOUT_S = 90  # /health answers after ~10 s here

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [
            str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{root / 'store.db'}",
            "--default-artifact-root", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1",
        ],
        stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"mlflow server did not answer /health within {SERVER_START_TIMEOUT_S} s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_build_logs_to_server_and_compare_reads_it_back(
    mlflow_server, ray_local, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    spec = load_spec(TINY, ["tracking.experiment=server-test"])
    result = run_benchmark(spec, runs_dir=tmp_path, run_id="served", log=lambda line: None)
    assert result.mlflow["tracking_uri"] == mlflow_server
    assert not (tmp_path / "served" / "mlflow.db").exists()  # nothing went to the embedded store
    capsys.readouterr()
    assert main(["compare", "server-test"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("served")]
    assert {line.split()[1] for line in lines} == {"ensemble", "small_mlp"}
    ensemble = next(e for e in result.evaluations if e["model"] == "ensemble")
    assert f"{100 * ensemble['error_hard']:.1f}%" in next(
        line for line in lines if " ensemble " in line
    )
    assert main(["compare", "no-such-experiment", "--tracking-uri", mlflow_server]) == 2
    assert "no experiment 'no-such-experiment'" in capsys.readouterr().err
    assert os.environ["MLFLOW_TRACKING_URI"] == mlflow_server
