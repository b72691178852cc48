"""A run whose driver died says so: ``interrupted`` in ``hardbench ls``, ``api.list_runs`` and
``Run.state``, with the command that resumes it; ``run.json`` itself is only read.

The fast tests build ``run.json`` records of drivers that are alive, dead, or on another
host with a fresh or an old heartbeat. The slow one SIGKILLs a real ``hardbench run``
(and its local Ray cluster) and lists its runs directory with the real CLI.
"""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from engine import api
from engine.cli import main
from engine.lifecycle import RunSetupError, resume_run
from engine.lifecycle.driver import (
    HEARTBEAT_FILE,
    HEARTBEAT_STALE_S,
    INTERRUPTED,
    Heartbeat,
    run_state,
)
from engine.processes import process_start
from engine.spec import SpecError
from tests.cluster.cli_runs import HARDBENCH, ROOT, start_cli
from tests.cluster.procs import kill_driver_and_cluster, private_ray_env

OTHER_HOST = "some-other-host"  # a driver this machine cannot check by pid


def _fake_run(runs, run_id: str, attempt: dict | None, status: str = "running"):
    run_dir = runs / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "spec.yaml").write_text("not read by ls, list_runs or the resume guards\n")
    record = {"run_id": run_id, "status": status, "timings_s": {"ray_init": 3.2}}
    if attempt is not None:
        record["attempts"] = [attempt]
    (run_dir / "run.json").write_text(json.dumps(record))
    return run_dir


def _record(pid: int, host: str | None = None) -> dict:
    return {
        "started": time.time(),
        "host": host or socket.gethostname(),
        "pid": pid,
        "pid_start": process_start(pid),
    }


def _age_heartbeat(run_dir, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(run_dir / HEARTBEAT_FILE, (old, old))


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def test_state_of_runs_marked_running(tmp_path, sleeper, capsys):
    runs = tmp_path / "runs"
    dead = subprocess.Popen(["sleep", "120"])
    dead_record = _record(dead.pid)
    dead.kill()
    dead.wait()
    dead_dir = _fake_run(runs, "dead-here", dead_record)
    live_dir = _fake_run(runs, "live-here", _record(sleeper.pid))
    me_dir = _fake_run(runs, "this-process", _record(os.getpid()))
    reused_dir = _fake_run(runs, "pid-reused", {**_record(sleeper.pid), "pid_start": "1"})
    fresh_dir = _fake_run(runs, "fresh-elsewhere", _record(4242, OTHER_HOST))
    old_dir = _fake_run(runs, "old-elsewhere", _record(4243, OTHER_HOST))
    silent_dir = _fake_run(runs, "silent-elsewhere", _record(4244, OTHER_HOST))
    done_dir = _fake_run(runs, "done", _record(dead_record["pid"]), status="complete")
    for run_dir in (fresh_dir, old_dir):
        Heartbeat(run_dir, json.loads((run_dir / "run.json").read_text())["attempts"][-1]).start(
        ).stop()  # fmt: skip
    _age_heartbeat(old_dir, HEARTBEAT_STALE_S + 60)
    # another attempt's heartbeat (another pid) says nothing about this one
    Heartbeat(silent_dir, _record(9999, OTHER_HOST)).start().stop()
    before = {p: p.read_bytes() for p in runs.glob("*/run.json")}

    expect = {
        dead_dir: (INTERRUPTED, f"driver pid {dead_record['pid']} on {socket.gethostname()} is gone"),
        live_dir: ("running", "is running"),
        me_dir: ("running", "is running"),
        reused_dir: (INTERRUPTED, "is gone"),
        fresh_dir: ("running", "is running (last heartbeat "),
        old_dir: (INTERRUPTED, "driver pid 4243 on some-other-host is gone (no heartbeat for 11 min)"),
        silent_dir: ("running", "left no heartbeat to check"),
        done_dir: ("complete", ""),
    }  # fmt: skip
    for run_dir, (state, reason) in expect.items():
        got = run_state(run_dir, json.loads((run_dir / "run.json").read_text()))
        assert got.status == state, run_dir.name
        assert reason in got.reason, (run_dir.name, got.reason)

    listed = {run.run_id: run for run in api.list_runs(runs)}
    assert {name: run.state for name, run in listed.items()} == {
        d.name: s for d, (s, _) in expect.items()
    }
    run = listed["dead-here"]
    assert run.status["status"] == "running"  # run.json as written; the state is computed
    assert repr(run) == f"Run('dead-here', status='interrupted', dir={str(dead_dir.resolve())!r})"

    assert main(["ls", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["run", "status", "total", "s"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if not line.startswith(" ")}
    assert rows["dead-here"] == [INTERRUPTED, "-"] and rows["live-here"] == ["running", "-"]
    assert rows["old-elsewhere"] == [INTERRUPTED, "-"] and rows["done"] == ["complete", "-"]
    for name in ("dead-here", "pid-reused", "old-elsewhere"):
        resume = f"; resume: hardbench run --resume {(runs / name).resolve()}"
        assert sum(line.endswith(resume) for line in lines) == 1, out
    assert out.count("hardbench run --resume") == 3
    # reading never writes
    assert {p: p.read_bytes() for p in runs.glob("*/run.json")} == before


def test_heartbeat_beats_while_the_driver_works_and_stops_with_it(tmp_path):
    record = _record(os.getpid())
    path = tmp_path / HEARTBEAT_FILE
    with pytest.raises(RuntimeError, match="a stage failed"):
        with Heartbeat(tmp_path, record, every_s=0.05):
            (thread,) = [t for t in threading.enumerate() if t.name == "hardbench-heartbeat"]
            assert thread.daemon  # never keeps the process alive
            first = path.stat().st_mtime_ns
            deadline = time.monotonic() + 10
            while path.stat().st_mtime_ns == first:
                assert time.monotonic() < deadline, "no second beat"
                time.sleep(0.02)
            path.unlink()  # removed under the driver: written again
            while not path.exists():
                assert time.monotonic() < deadline, "the heartbeat was not written again"
                time.sleep(0.02)
            raise RuntimeError("a stage failed")
    assert not [t for t in threading.enumerate() if t.name == "hardbench-heartbeat"]
    assert json.loads(path.read_text()) == {
        "host": record["host"], "pid": record["pid"], "pid_start": record["pid_start"],
        "every_s": 0.05,
    }  # fmt: skip
    stopped = path.stat().st_mtime_ns
    time.sleep(0.3)
    assert path.stat().st_mtime_ns == stopped


def test_resume_trusts_another_hosts_stale_heartbeat_but_not_a_fresh_one(tmp_path):
    record = _record(4242, OTHER_HOST)
    run_dir = _fake_run(tmp_path, "r", record)
    Heartbeat(run_dir, record).start().stop()
    with pytest.raises(RunSetupError, match=r"still running \(driver pid 4242 on some-other-host is "
                       r"running \(last heartbeat \d+ s ago\)\).*--force"):  # fmt: skip
        resume_run(run_dir)
    _age_heartbeat(run_dir, HEARTBEAT_STALE_S + 1)
    lines = []
    with pytest.raises(SpecError):  # past the guards, without --force: the stand-in spec
        resume_run(run_dir, log=lines.append)
    assert lines == [
        "[run] driver pid 4242 on some-other-host is gone (no heartbeat for 10 min): "
        "the run was interrupted"
    ]


@pytest.fixture
def ray_env():
    """The environment of a ``hardbench run`` with its own local Ray cluster (own RAY_TMPDIR)."""
    with private_ray_env("rin") as env:
        yield env


@pytest.mark.ray
@pytest.mark.slow
def test_a_killed_driver_shows_as_interrupted_with_its_resume_command(tmp_path, ray_env):
    runs, log = tmp_path / "runs", tmp_path / "run.log"
    spec = [
        "tests/fixtures/tiny.yaml",
        "--set",
        "replicas.epochs=60",
        "--set",
        "evaluate.models=[]",
    ]
    proc = start_cli(["run", *spec, "--runs-dir", str(runs), "--run-id", "k", "--num-cpus", "2"],
                     ray_env, log)  # fmt: skip
    run_dir = runs / "k"
    deadline = time.monotonic() + 300
    while True:  # until Ray is up and the ingest stage has started
        try:
            status = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            status = {}
        if status.get("status") == "running" and "ray_init" in status.get("timings_s", {}):
            break
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    beat = json.loads((run_dir / HEARTBEAT_FILE).read_text())  # the real driver beats
    assert beat["pid"] == proc.pid and beat["host"] == socket.gethostname()
    kill_driver_and_cluster(proc, ray_env["RAY_TMPDIR"])  # SIGKILL: no chance to write
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    ls = subprocess.run([HARDBENCH, "ls", "--runs-dir", str(runs)], cwd=ROOT, env=ray_env,
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ls.returncode == 0, ls.stderr
    print(f"\n$ hardbench ls --runs-dir {runs}\n{ls.stdout}")
    lines = ls.stdout.splitlines()
    assert lines[0].split() == ["run", "status", "total", "s"]
    assert lines[1].split() == ["k", INTERRUPTED, "-"]
    assert lines[2] == (
        f"  driver pid {proc.pid} on {socket.gethostname()} is gone; "
        f"resume: hardbench run --resume {run_dir.resolve()}"
    )
    (run,) = api.list_runs(runs)
    assert run.state == INTERRUPTED and run.status["status"] == "running"
    assert "status='interrupted'" in repr(run)
