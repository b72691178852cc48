"""Ray jobs on real loopback clusters, and what ``hardbench submit`` makes of them.

A two-node cluster (token auth) runs builds submitted with ``ray job submit`` and with
``hardbench submit``; a head whose jobs' ``python`` is a Python without hardbench's
dependencies gets a one-line refusal. ``--runtime-env`` files and the way a job's end is
reported are checked against a stand-in Jobs API client, with no cluster.
"""

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
from ray.job_submission import JobDetails, JobStatus, JobType

from engine.cli import EXIT_BAD_INPUT, EXIT_FAILED, main
from engine.distributed.jobs import JOB_ENV_VARS, TERMINAL, WORKING_DIR_EXCLUDES, job_client
from tests.cluster.procs import pids_using, stop_pids

ROOT = Path(__file__).resolve().parents[2]
TINY = "tests/fixtures/tiny.yaml"
VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
NODE_ARGS = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]


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


def _start_head(temp: str, gcs: int, dash: int, env: dict[str, str]) -> None:
    """``ray start --head`` (1 CPU) on loopback with the virtualenv's ``ray``, under ``env``."""
    subprocess.run(
        [RAY, "start", "--head", f"--port={gcs}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dash}", "--num-cpus=1", f"--temp-dir={temp}", *NODE_ARGS,
         *_agent_ports()],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def _start_node(gcs: int, env: dict[str, str], attempts: int = 2) -> None:
    """``ray start`` a 2-CPU node joining the head at ``gcs``, retried with fresh agent ports.

    A port found free by :func:`_free_port` can be taken again before Ray binds it (a
    node start failed once that way in a full suite); the last failure shows Ray's output.
    """
    for attempt in range(1, attempts + 1):
        try:
            subprocess.run(
                [RAY, "start", f"--address=127.0.0.1:{gcs}", "--num-cpus=2", *NODE_ARGS,
                 *_agent_ports()],
                env=env, check=True, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            return
        except subprocess.CalledProcessError as exc:
            if attempt == attempts:
                raise RuntimeError(f"ray start of the second node failed: {exc.stderr[-2000:]}"
                                   f"{exc.stdout[-2000:]}") from exc  # fmt: skip
            time.sleep(2)


def _wait_for_jobs(address: str, timeout_s: float = 120) -> None:
    """Return once the head's job agent takes and runs a trivial job (RAY_AUTH_MODE set)."""
    deadline = time.monotonic() + timeout_s
    while True:
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


@pytest.fixture(scope="module")
def loopback_cluster():
    """Head (1 CPU) + a second node (2 CPUs) on 127.0.0.1, token auth on; torn down by pid."""
    temp = tempfile.mkdtemp(prefix="rhb", dir="/tmp")  # short: Ray's socket paths are long
    gcs, dash = _free_port(), _free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("RAY_ADDRESS", None)
    try:
        _start_head(temp, gcs, dash, env)
        _start_node(gcs, env)
        address = f"http://127.0.0.1:{dash}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RAY_AUTH_MODE", "token")  # for this process's Jobs API clients
            _wait_for_jobs(address)
            yield address, env, Path(temp)
    finally:
        # Listed before any dies: orphans lose their parent link.
        stop_pids(pids_using(temp, f":{gcs} "))
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def head_without_venv():
    """A head started with the virtualenv's ``ray`` binary but without the virtualenv on
    PATH, as a user did: its jobs' ``python`` is the system Python (``python3`` on that
    PATH), which lacks hardbench's dependencies. Yields the Jobs API address and that
    interpreter as the job sees it (``<temp>/bin/python``); torn down by pid."""
    path = os.pathsep.join(
        p
        for p in os.environ["PATH"].split(os.pathsep)
        if p and Path(p).resolve() != VENV_BIN.resolve()
    )
    python3 = shutil.which("python3", path=path)
    if python3 is None:
        pytest.skip("no python3 on PATH once the virtualenv is left out")
    real = subprocess.run(
        [python3, "-c", "import sys; print(sys.executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()  # the interpreter behind a shim such as pyenv's
    has_pyarrow = (
        subprocess.run([real, "-c", "import pyarrow"], capture_output=True).returncode == 0
    )
    if has_pyarrow:
        pytest.skip(f"{real}, the python3 on PATH without the virtualenv, has pyarrow")
    temp = tempfile.mkdtemp(prefix="rhb", dir="/tmp")  # short: Ray's socket paths are long
    bin_dir = Path(temp) / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(real)  # what the job's `python -m jobs...` runs
    gcs, dash = _free_port(), _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PATH": f"{bin_dir}{os.pathsep}{path}"}
    for key in ("RAY_ADDRESS", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    try:
        _start_head(temp, gcs, dash, env)
        address = f"http://127.0.0.1:{dash}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RAY_AUTH_MODE", "token")  # for this process's Jobs API clients
            _wait_for_jobs(address)
        yield address, str(bin_dir / "python")
    finally:
        stop_pids(pids_using(temp, f":{gcs} "))
        shutil.rmtree(temp, ignore_errors=True)


def _check_complete_run(run_dir: Path, replicas: int, epochs: int) -> None:
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "complete", status
    assert pq.read_table(run_dir / "scores.parquet").num_rows == 1797
    shards = sorted(run_dir.glob("preds/replica=*/epoch=*/block=*.parquet"))
    assert len(shards) == replicas * epochs * 4  # 1,797 samples in 512-sample blocks
    assert (run_dir / "benchmark" / "card.json").exists() and (run_dir / "report.html").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_job_submit_cli_builds_a_benchmark(loopback_cluster, tmp_path):
    address, env, _ = loopback_cluster
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [RAY, "job", "submit", "--address", address,
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
            [RAY, "job", "submit", "--address", address,
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


@pytest.mark.ray
@pytest.mark.slow
def test_hardbench_submit_status_and_logs(loopback_cluster, tmp_path, capsys, monkeypatch):
    address, _, _ = loopback_cluster
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "WARNING")
    runs = tmp_path / "runs"
    argv = ["submit", TINY, "--address", address, "--runs-dir", str(runs)]
    argv += ["--working-dir", str(ROOT), "--submission-id", "hb-test-1"]
    argv += ["--set", "evaluate.models=[]"]  # the build job is what is tested, not its models
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


@pytest.mark.ray
@pytest.mark.slow
def test_submit_to_a_python_without_the_dependencies_says_so_in_one_line(
    head_without_venv, tmp_path
):
    address, job_python = head_without_venv
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "submit", TINY, "--address", address,
         "--working-dir", str(ROOT), "--runs-dir", str(tmp_path / "runs")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert proc.returncode == EXIT_BAD_INPUT, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout  # not even the job's
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("hardbench: ")]
    assert line.startswith(f"hardbench: the cluster's Python ({job_python}, ")
    missing = line.split(" cannot import ")[1].split(": install")[0].split(", ")
    assert "pyarrow" in missing and "torch" in missing
    assert "nodes' environment" in line and "--runtime-env cluster/requirements.txt" in line
    # The very line that interpreter prints here: the job ran the check, nothing else.
    local = subprocess.run(
        [job_python, "-m", "jobs._deps"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert local.returncode == EXIT_BAD_INPUT and local.stderr.strip() == line
    assert "FAILED" in proc.stdout and not (tmp_path / "runs").exists()
    print(f"hardbench submit printed the refusal and exited after {elapsed:.1f} s")


class _JobsClient:
    """A stand-in Jobs API client: records submissions and plays back one job's end."""

    def __init__(self) -> None:
        self.submitted: list[dict] = []
        self.info: JobDetails | None = None
        self.logs = ""

    def submit_job(self, **kwargs) -> str:
        self.submitted.append(kwargs)
        return "job-1"

    def get_job_info(self, job_id: str) -> JobDetails:
        return self.info

    def get_job_logs(self, job_id: str) -> str:
        return self.logs

    def ends(
        self, logs: str, exit_code: int | None, error_type: str | None, message: str = ""
    ) -> None:
        self.logs = logs
        self.info = JobDetails(
            type=JobType.SUBMISSION, status=JobStatus.FAILED, entrypoint="python -m jobs.build_benchmark",
            driver_exit_code=exit_code, error_type=error_type, message=message,
        )  # fmt: skip


@pytest.fixture
def jobs_client(monkeypatch):
    client = _JobsClient()
    monkeypatch.setattr("engine.distributed.jobs.job_client", lambda address: client)
    monkeypatch.chdir(ROOT)
    return client


def _submit(*args: str) -> int:
    return main(
        ["submit", TINY, "--address", "http://127.0.0.1:1", "--working-dir", str(ROOT), *args]
    )


def _own_env() -> dict:
    return {"working_dir": str(ROOT), "excludes": WORKING_DIR_EXCLUDES, "env_vars": JOB_ENV_VARS}


def test_runtime_env_from_a_requirements_file(jobs_client, tmp_path):
    reqs = tmp_path / "reqs.txt"
    reqs.write_text(
        "# the node image lacks these\n\nnumpy>=1.26  # inline comment\n"
        "--extra-index-url https://download.pytorch.org/whl/cpu\n"
        "torch==2.14.1\ngit+https://github.com/org/pkg.git#egg=pkg\n"
    )
    assert _submit("--runtime-env", str(reqs), "--no-wait") == 0
    (job,) = jobs_client.submitted
    assert job["runtime_env"] == {
        **_own_env(),
        "pip": [
            "numpy>=1.26",
            "--extra-index-url https://download.pytorch.org/whl/cpu",
            "torch==2.14.1",
            "git+https://github.com/org/pkg.git#egg=pkg",
        ],
    }
    assert job["entrypoint"].startswith("python -m jobs.build_benchmark tests/fixtures/tiny.yaml")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_runtime_env_mapping_is_merged_over_the_jobs_own(jobs_client, tmp_path, suffix):
    mapping = {
        "pip": {"packages": ["pyarrow>=18,<26"], "pip_check": False},
        "env_vars": {"HF_HOME": "/mnt/hf", "MLFLOW_LOGGING_LEVEL": "INFO"},
    }
    path = tmp_path / f"env{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(mapping))
    else:
        path.write_text(
            "pip:\n  packages: ['pyarrow>=18,<26']\n  pip_check: false\n"
            "env_vars:\n  HF_HOME: /mnt/hf\n  MLFLOW_LOGGING_LEVEL: INFO\n"
        )
    assert _submit("--runtime-env", str(path), "--no-wait") == 0
    (job,) = jobs_client.submitted
    env = job["runtime_env"]
    assert env["pip"] == mapping["pip"]
    assert env["env_vars"] == {**JOB_ENV_VARS, "HF_HOME": "/mnt/hf", "MLFLOW_LOGGING_LEVEL": "INFO"}
    assert (env["working_dir"], env["excludes"]) == (str(ROOT), WORKING_DIR_EXCLUDES)
    assert set(env) == {"working_dir", "excludes", "env_vars", "pip"}


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("env.yaml", "working_dir: /elsewhere\n", "'working_dir' is set by hardbench submit"),
        ("env.yaml", "pip: [numpy]\nexcludes: [data/]\n", "remove 'excludes' from the file"),
        ("env.yaml", "pips: [numpy]\n", "unknown runtime_env key 'pips' (did you mean 'pip'?)"),
        ("env.yaml", "- numpy\n", "a runtime_env mapping is expected"),
        ("env.yaml", "pip: [numpy\n", "not valid YAML"),
        ("env.yaml", "env_vars: [A=1]\n", "'env_vars' must be a mapping"),
        ("env.json", '{"pip": [', "not valid JSON"),
        ("reqs.txt", "numpy\n-r more.txt\n", "reqs.txt:2: '-r more.txt' names another local file"),
        ("reqs.txt", "# nothing yet\n\n", "no requirements in the file"),
        (
            "env.toml",
            "pip = ['numpy']\n",
            "give a requirements file (.txt, .in) or a runtime_env mapping",
        ),
        (None, "", "runtime env file not found"),
    ],
)
def test_runtime_env_files_that_cannot_be_used_are_refused_before_submitting(
    jobs_client, tmp_path, capsys, name, text, says
):
    path = tmp_path / (name or "absent.txt")
    if name:
        path.write_text(text)
    assert _submit("--runtime-env", str(path), "--no-wait") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert says in err and str(path) in err, err
    assert len(err.strip().splitlines()) == 1 and jobs_client.submitted == []


REFUSAL = (
    "hardbench: the cluster's Python (/usr/bin/python3, 3.11.2) cannot import pyarrow, torch: "
    "install hardbench's dependencies in the nodes' environment (the node image, or start Ray "
    "with the environment that has them first on PATH), or submit with --runtime-env "
    "cluster/requirements.txt"
)
ENTRYPOINT_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"


def test_submit_shows_a_jobs_one_line_refusal_and_exits_2(jobs_client, capsys):
    jobs_client.ends(
        f"Running entrypoint for job job-1: python -m jobs.build_benchmark\n{REFUSAL}\n",
        2,
        ENTRYPOINT_ERROR,
    )
    assert _submit() == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert err == REFUSAL + "\n"
    assert "job job-1: FAILED" in out


@pytest.mark.parametrize(
    ("logs", "exit_code"),
    [
        ("Traceback (most recent call last):\nModuleNotFoundError: No module named 'x'\n", 1),
        ("python: can't open file '/x/jobs/build_benchmark.py': [Errno 2] No such file\n", 2),
        (f"{REFUSAL}\nTraceback (most recent call last):\nRuntimeError: later\n", 2),
    ],
)
def test_a_job_that_failed_otherwise_is_not_shown_as_a_refusal(
    jobs_client, capsys, logs, exit_code
):
    jobs_client.ends(logs, exit_code, ENTRYPOINT_ERROR)
    assert _submit() == EXIT_FAILED
    assert capsys.readouterr().err == ""  # the job's own log (stdout) says what happened


def test_a_job_ray_could_not_start_says_why(jobs_client, capsys):
    why = "Failed to set up runtime environment.\nERROR: No matching distribution found for torch==9.9"
    jobs_client.ends("", None, "RUNTIME_ENV_SETUP_FAILURE", why)
    assert _submit() == EXIT_FAILED
    assert capsys.readouterr().err == f"hardbench: job job-1 could not start: {why}\n"
