"""MLflow as a live record (issue 15), against a real ``mlflow server`` and the shared sqlite store.

Every build runs through the ``hardbench`` CLI in a subprocess with its own local Ray
cluster, so the test reads the server over REST while the build runs: the parent run
is RUNNING with stage metrics and the replicas' learning curve; afterwards the nested
runs hold a logged MLflow Model that loads and the benchmark splits as dataset
inputs; a failed build is FAILED, a stopped one KILLED and resumed into the same
parent run; two builds started together into one runs directory both land in its
store; ``hardbench compare`` reads the server back. One headless Chromium screenshot
of a nested run's page in the MLflow UI.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.cluster.procs import pids_using, private_ray_env, stop_pids

ROOT = Path(__file__).resolve().parents[2]
HARDBENCH = str(Path(sys.executable).parent / "hardbench")
TINY = ["tests/fixtures/tiny.yaml", "--set", "tracking.experiment=live"]
pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def env():
    """The builds' environment: a private RAY_TMPDIR (its clusters killed at the end)."""
    with private_ray_env("rml") as env:
        yield env


def _start(args, env, log):
    return subprocess.Popen([HARDBENCH, *args], cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _rest(server, path, body=None):
    url = f"{server}/api/2.0/mlflow/{path}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _runs(server, experiment):
    try:
        exp = _rest(server, f"experiments/get-by-name?experiment_name={experiment}")
    except urllib.error.HTTPError:
        return []
    found = _rest(server, "runs/search", {"experiment_ids": [exp["experiment"]["experiment_id"]],
                                          "max_results": 100})  # fmt: skip
    return found.get("runs", [])


def _tags(run):
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def _parent(runs, run_id):
    return next(r for r in runs if _tags(r).get("hardbench.run_id") == run_id
                and "mlflow.parentRunId" not in _tags(r))  # fmt: skip


def test_a_build_is_live_in_mlflow_and_its_models_and_splits_are_recorded(
    mlflow_server, env, tmp_path, capsys
):
    import mlflow.pytorch
    import torch

    from engine.cli import main
    from engine.cli.runs import UI_TRAINING_VIEW

    served = {**env, "MLFLOW_TRACKING_URI": mlflow_server}
    log = tmp_path / "live.log"
    proc = _start(["run", *TINY, "--runs-dir", str(tmp_path), "--run-id", "live1"], served, log)
    seen_running, seen_curve = None, None
    while proc.poll() is None:
        runs = _runs(mlflow_server, "live")
        parents = [r for r in runs if "mlflow.parentRunId" not in _tags(r)]
        if parents and parents[0]["info"]["status"] == "RUNNING":
            metrics = {m["key"] for m in parents[0]["data"].get("metrics", [])}
            if seen_running is None and "time_ray_init_s" in metrics:
                seen_running = sorted(metrics)
            if "replicas_train_loss" in metrics:
                history = _rest(mlflow_server, "metrics/get-history?run_id="
                                f"{parents[0]['info']['run_id']}&metric_key=replicas_train_loss")  # fmt: skip
                seen_curve = sorted(m["step"] for m in history["metrics"])
        time.sleep(0.5)
    assert proc.wait() == 0, log.read_text()[-3000:]
    status = json.loads((tmp_path / "live1" / "run.json").read_text())
    assert status["mlflow"]["tracking_uri"] == mlflow_server
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the embedded store
    assert seen_running is not None, "the parent run was never seen RUNNING with a stage metric"
    assert seen_curve, "no replica learning curve while the build ran"
    runs = _runs(mlflow_server, "live")
    parent = _parent(runs, "live1")
    assert parent["info"]["status"] == "FINISHED"
    pid = parent["info"]["run_id"]
    history = _rest(
        mlflow_server, f"metrics/get-history?run_id={pid}&metric_key=replicas_train_loss"
    )
    assert sorted(m["step"] for m in history["metrics"]) == [0, 1, 2]  # one point per epoch
    children = {
        _tags(r)["hardbench.model"]: r for r in runs if _tags(r).get("mlflow.parentRunId") == pid
    }
    assert set(children) == {"ensemble", "small_mlp"}
    model_run = children["small_mlp"]
    assert _tags(model_run)["hardbench.in_sample"] == "false"
    assert _tags(children["ensemble"])["hardbench.in_sample"] == "true"
    contexts = set()
    for item in model_run["inputs"]["dataset_inputs"]:
        contexts |= {t["value"] for t in item["tags"] if t["key"] == "mlflow.data.context"}
        assert item["dataset"]["digest"]
    assert {"pool", "hard", "rest", "bin_0", "bin_4"} <= contexts
    curve = _rest(mlflow_server, f"metrics/get-history?run_id={model_run['info']['run_id']}"
                  "&metric_key=train_loss")  # fmt: skip
    assert sorted(m["step"] for m in curve["metrics"]) == [0, 1, 2, 3]  # small_mlp: 4 epochs
    # the nested run spans the model's training: it starts before its first epoch ended
    # and the curve's points are stamped when their epochs ended
    stamps = sorted(int(m["timestamp"]) for m in curve["metrics"])
    assert int(model_run["info"]["start_time"]) < stamps[0] <= stamps[-1]
    assert stamps[-1] <= int(model_run["info"]["end_time"])
    assert int(parent["info"]["start_time"]) <= int(model_run["info"]["start_time"])
    outputs = model_run.get("outputs", {}).get("model_outputs", [])
    assert len(outputs) == 1
    model_id = outputs[0]["model_id"]

    # The logged MLflow Model loads and predicts; hardbench eval reads it by both URIs.
    import mlflow

    mlflow.set_tracking_uri(mlflow_server)
    try:
        loaded = mlflow.pytorch.load_model(f"models:/{model_id}")
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    x = np.zeros((3, 1, 8, 8), np.float32)
    assert tuple(loaded(torch.as_tensor(x)).shape) == (3, 10)
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    try:
        built = json.loads((tmp_path / "live1" / "eval" / "metrics.json").read_text())
        want = next(e for e in built if e["model"] == "small_mlp")
        for uri in (f"runs:/{model_run['info']['run_id']}/model", f"models:/{model_id}"):
            capsys.readouterr()
            assert (
                main(["eval", str(tmp_path / "live1"), "--model-uri", uri, "--label", "again"]) == 0
            )
            saved = json.loads(
                (tmp_path / "live1" / "eval" / "extra" / "again-pool.json").read_text()
            )
            assert saved["error_all"] == pytest.approx(want["error_all"])

        # A second build into the same experiment; compare lists both.
        rc = _start(["run", *TINY, "--runs-dir", str(tmp_path), "--run-id", "live2",
                     "--set", "evaluate.models=[]"], served, tmp_path / "l2.log").wait()  # fmt: skip
        assert rc == 0, (tmp_path / "l2.log").read_text()[-3000:]
        capsys.readouterr()
        assert main(["compare", "live", "--tracking-uri", mlflow_server]) == 0
        lines = capsys.readouterr().out.splitlines()[2:]
        assert {line.split()[0] for line in lines} >= {"live1", "live2"}
        # the build's models, and the `hardbench eval` run logged into it above
        assert {line.split()[1] for line in lines if line.startswith("live1")} == {
            "ensemble",
            "small_mlp",
            "again",
        }
        ensemble = next(e for e in built if e["model"] == "ensemble")
        assert f"{100 * ensemble['error_hard']:.1f}%" in next(
            line for line in lines if line.startswith("live1") and " ensemble " in line
        )
        assert main(["compare", "no-such-experiment", "--tracking-uri", mlflow_server]) == 2
        assert "no experiment 'no-such-experiment'" in capsys.readouterr().err

        # A build that fails after it started: its parent run is FAILED.
        rc = _start(["run", *TINY, "--runs-dir", str(tmp_path), "--run-id", "bad",
                     "--set", "replicas.gpus_per_worker=1"], served, tmp_path / "bad.log").wait()  # fmt: skip
        assert rc == 1
        assert _parent(_runs(mlflow_server, "live"), "bad")["info"]["status"] == "FAILED"
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)

    # The nested run's page in the MLflow UI: the model and the splits are there.
    exp_id = parent["info"]["experiment_id"]
    page = (f"{mlflow_server}/#/experiments/{exp_id}/runs/{model_run['info']['run_id']}"
            f"?{UI_TRAINING_VIEW}")  # fmt: skip
    shot = tmp_path / "mlflow-run.png"
    dom = _chromium(page, shot, tmp_path)
    for text in ("small_mlp", "hard", "bin_0"):
        assert text in dom, f"{text!r} not on the run page"
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.002  # text and widgets drawn


CHROMIUM = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", "--window-size=1400,1200")  # fmt: skip


def _chromium(url: str, shot: Path, tmp: Path) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is missing: `make test` installs it (make browser)"
    common = [exe, *CHROMIUM, "--virtual-time-budget=15000"]
    dom = subprocess.run([*common, f"--user-data-dir={tmp / 'c1'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    subprocess.run([*common, f"--user-data-dir={tmp / 'c2'}", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    return dom


def test_stopped_build_is_killed_then_resumed_into_the_same_parent_run(env, tmp_path):
    from mlflow.tracking import MlflowClient

    spec = ["tests/fixtures/tiny.yaml", "--set", "replicas.epochs=8", "--set", "evaluate.models=[]"]
    log = tmp_path / "k.log"
    proc = _start(["run", *spec, "--runs-dir", str(tmp_path), "--run-id", "k"], env, log)
    manifest = tmp_path / "k" / "preds" / "replica=0" / "_manifest.json"
    deadline = time.monotonic() + 300
    while not manifest.exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)  # as `kill` or a job manager stops the driver
    assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    stop_pids(pids_using(env["RAY_TMPDIR"]), grace_s=1)
    status = json.loads((tmp_path / "k" / "run.json").read_text())
    assert status["status"] == "killed"
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = status["mlflow"]["parent_run_id"]
    assert client.get_run(parent).info.status == "KILLED"
    rc = _start(["run", "--resume", str(tmp_path / "k")], env, tmp_path / "r.log").wait()
    assert rc == 0, (tmp_path / "r.log").read_text()[-3000:]
    assert (
        json.loads((tmp_path / "k" / "run.json").read_text())["mlflow"]["parent_run_id"] == parent
    )
    assert client.get_run(parent).info.status == "FINISHED"
    exp = client.get_experiment_by_name("hardbench-tests")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parents = [r for r in client.search_runs([exp.experiment_id])
               if "mlflow.parentRunId" not in r.data.tags]  # fmt: skip
    assert [r.info.run_id for r in parents] == [parent]  # the same run, not a second one


def test_two_builds_at_once_into_one_runs_directory_share_its_store(env, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from engine.cli import main

    spec = ["tests/fixtures/tiny.yaml", "--set", "replicas.epochs=2", "--set", "evaluate.models=[]",
            "--set", "shards.grad_epochs=[0, 1]",
            "--set", "tracking.experiment=together"]  # fmt: skip
    procs = {
        name: _start(["run", *spec, "--runs-dir", str(tmp_path), "--run-id", name], env,
                     tmp_path / f"{name}.log")
        for name in ("a", "b")
    }  # fmt: skip
    for name, proc in procs.items():
        assert proc.wait(timeout=600) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("together")
    finished = {r.data.tags["hardbench.run_id"]: r.info.status
                for r in client.search_runs([exp.experiment_id])
                if "mlflow.parentRunId" not in r.data.tags}  # fmt: skip
    assert finished == {"a": "FINISHED", "b": "FINISHED"}
    capsys.readouterr()
    assert main(["compare", "--runs-dir", str(tmp_path)]) == 0  # the runs directory's own store
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert sorted((r[0], r[1]) for r in rows) == [("a", "ensemble"), ("b", "ensemble")]
