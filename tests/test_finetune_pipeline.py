"""A build with a fine-tuned pretrained model, end to end through real Ray and MLflow.

EfficientNet-Lite0 (its real ImageNet weights) is linear-probed on the digits at 32 px
inside the build; evaluating it again, from its model folder or its MLflow URI, with
``hardbench eval`` gives the build's own metrics (the same transform both times).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.lifecycle import run_benchmark
from engine.spec import load_spec, parse_spec

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny.yaml"
PROBE = {
    "name": "effnet_probe", "model": "efficientnet_lite0", "weights": "pretrained", "seed": 3,
    "finetune": {"mode": "linear_probe", "epochs": 2, "batch_size": 64, "lr": 0.02,
                 "image_size": 32, "workers": 2, "cpus_per_worker": 1},
}  # fmt: skip
METRICS = ("error_all", "error_hard", "error_rest", "pearson_rho", "kendall_tau")


@pytest.fixture(scope="module")
def probe_run(ray_local, tmp_path_factory):
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    data = load_spec(TINY).to_dict()
    data["evaluate"]["models"] = [PROBE]
    runs = tmp_path_factory.mktemp("runs")
    result = run_benchmark(parse_spec(data), runs_dir=runs, run_id="ft", log=lambda line: None)
    return result


def test_the_fine_tuned_model_is_evaluated_and_recorded(probe_run):
    built = next(e for e in probe_run.evaluations if e["model"] == "effnet_probe")
    assert 0 <= built["error_all"] < 0.5  # a linear probe on ImageNet features learns digits
    folder = probe_run.run_dir / "models" / "effnet_probe"
    descriptor = json.loads((folder / "model.json").read_text())
    assert (
        descriptor["preprocess"]["crop_size"] == 32 and descriptor["weights_source"] == "pretrained"
    )
    assert descriptor["finetune"]["mode"] == "linear_probe" and descriptor["num_classes"] == 10
    history = json.loads((folder / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]


def test_hardbench_eval_reproduces_the_build_metrics(probe_run, capsys):
    from engine.cli import main
    from engine.lifecycle import evaluate_model_on_run

    built = next(e for e in probe_run.evaluations if e["model"] == "effnet_probe")
    folder = probe_run.run_dir / "models" / "effnet_probe"
    again = evaluate_model_on_run(probe_run.run_dir, model_uri=str(folder), label="probe_dir",
                                  actors=2, cpus_per_actor=0.5)  # fmt: skip
    child = probe_run.mlflow["model_runs"]["effnet_probe"]
    logged = evaluate_model_on_run(
        probe_run.run_dir, model_uri=f"runs:/{child}/model", label="probe_mlflow"
    )
    for ev in (again, logged):
        for key in METRICS:
            if key in built:
                assert ev[key] == pytest.approx(built[key], nan_ok=True, abs=1e-9), key
    capsys.readouterr()
    argv = ["eval", str(probe_run.run_dir), "--model-uri", str(folder), "--split", "hard"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"on hard: error {100 * built['error_hard']:.1f}%" in out
