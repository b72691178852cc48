"""Resume guards (no Ray): what ``hardbench run --resume`` refuses, and why."""

import json
import socket
import subprocess

import pytest

from engine.cli import main
from engine.lifecycle import RunSetupError, resume_run
from engine.lifecycle.driver import driver_alive, process_start


def _fake_run(tmp_path, status: dict):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "spec.yaml").write_text("not read before the guards\n")
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r", **status}))
    return run_dir


def test_resume_refuses_while_the_recorded_driver_still_runs(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        record = {
            "host": socket.gethostname(),
            "pid": sleeper.pid,
            "pid_start": process_start(sleeper.pid),
        }
        assert driver_alive(record)
        run_dir = _fake_run(tmp_path, {"status": "running", "attempts": [record]})
        with pytest.raises(RunSetupError, match=rf"still running \(driver pid {sleeper.pid}"):
            resume_run(run_dir)
        # The same pid reused by another process (other start time) is not the driver.
        assert not driver_alive({**record, "pid_start": "1"})
        assert not driver_alive({**record, "host": "elsewhere"})
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not driver_alive(record)  # gone


def test_resume_refuses_complete_runs_and_non_runs(tmp_path, capsys):
    run_dir = _fake_run(tmp_path, {"status": "complete", "attempts": []})
    with pytest.raises(RunSetupError, match="is complete; nothing to resume"):
        resume_run(run_dir)
    with pytest.raises(RunSetupError, match="is not a run directory"):
        resume_run(tmp_path)
    assert main(["run", "--resume", str(run_dir), "--set", "replicas.epochs=2"]) == 2
    assert "--set, --run-id and --output do not apply" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert "give a SPEC, or --resume RUN_DIR" in capsys.readouterr().err


def test_resume_of_a_run_driven_from_another_host_needs_force(tmp_path):
    record = {"host": "some-other-host", "pid": 1, "pid_start": "1"}
    run_dir = _fake_run(tmp_path, {"status": "running", "attempts": [record]})
    with pytest.raises(RunSetupError, match=r"driver on host some-other-host.*--force"):
        resume_run(run_dir)
    # With --force the guard lets it through (the stand-in spec then fails to parse).
    from engine.spec import SpecError

    with pytest.raises(SpecError):
        resume_run(run_dir, force=True)
