"""A real `mlflow server` on loopback: a build logs to it, `hardbench compare` reads it back."""

import os
from pathlib import Path

import pytest

from engine.cli import main
from engine.lifecycle import run_benchmark
from engine.spec import load_spec

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_build_logs_to_server_and_compare_reads_it_back(
    mlflow_server, ray_local, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    spec = load_spec(TINY, ["tracking.experiment=server-test"])
    result = run_benchmark(spec, runs_dir=tmp_path, run_id="served", log=lambda line: None)
    assert result.mlflow["tracking_uri"] == mlflow_server
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the embedded store
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
