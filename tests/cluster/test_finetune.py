"""Fine-tuning on real Ray Train (2 CPUs): DDP equivalence, a killed worker, refused requests.

Each test prints one ``FINETUNE`` line with its times (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.distributed.evaluation import predict_samples
from engine.distributed.finetune import finetune_model
from engine.layout import MODELS_DIR
from engine.spec import load_spec, parse_spec
from engine.tasks import load_data
from engine.training.model_folder import (
    HISTORY_FILE,
    PREDICTIONS_FILE,
    PROGRESS_FILE,
    WEIGHTS_FILE,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny.yaml"
DDP_ATOL = 1e-5  # 2 workers vs 1: the same global batches; only the all-reduce's sum order differs


def _prepared(run_dir: Path, entries: list[dict]) -> object:
    """The tiny digits spec with these evaluated models, its dataset cache ingested."""
    data = load_spec(TINY).to_dict()
    data["evaluate"]["models"] = entries
    spec = parse_spec(data)
    run_dir.mkdir(parents=True)
    load_data(spec, run_dir, lambda line: None)
    return spec


def _mlp(name: str, workers: int) -> dict:
    return {
        "name": name, "model": "mlp", "model_kwargs": {"hidden": 32}, "seed": 5,
        "finetune": {"mode": "full", "epochs": 2, "batch_size": 32, "optimizer": "sgd",
                     "lr": 0.05, "weight_decay": 0.0, "workers": workers},
    }  # fmt: skip


def test_two_ddp_workers_reach_the_weights_of_one(ray_local, tmp_path):
    times = {}
    weights = {}
    for workers in (1, 2):
        run_dir = tmp_path / f"w{workers}"
        spec = _prepared(run_dir, [_mlp("m", workers)])
        start = time.perf_counter()
        result = finetune_model(run_dir, spec, 0, log=lambda line: None)
        times[workers] = time.perf_counter() - start
        weights[workers] = torch.load(result["weights"], weights_only=True)
        assert not (run_dir / MODELS_DIR / "m" / PREDICTIONS_FILE).exists()  # the pool's job
    assert weights[1].keys() == weights[2].keys()
    worst = max(float((weights[1][k] - weights[2][k]).abs().max()) for k in weights[1])
    moved = max(float(v.abs().max()) for v in weights[1].values())
    assert worst <= DDP_ATOL, f"2 workers differ from 1 by {worst}"
    assert moved > 0.1  # it trained (not a pair of untouched initialisations)
    hist = json.loads((tmp_path / "w2" / MODELS_DIR / "m" / HISTORY_FILE).read_text())
    assert [h["epoch"] for h in hist] == [1, 2]
    print(f"\nFINETUNE ddp: max |w1 - w2| = {worst:.2e}; fits {times[1]:.1f} s (1 worker), "
          f"{times[2]:.1f} s (2 workers)")  # fmt: skip


def test_a_killed_worker_resumes_from_its_checkpoint(ray_local, tmp_path):
    run_dir = tmp_path / "run"
    entry = {
        "name": "probe", "model": "efficientnet_lite0", "weights": "pretrained", "seed": 1,
        "finetune": {"mode": "linear_probe", "epochs": 4, "batch_size": 32, "lr": 0.01,
                     "image_size": 64, "workers": 1, "cpus_per_worker": 1},
    }  # fmt: skip
    spec = _prepared(run_dir, [entry])
    folder = run_dir / MODELS_DIR / "probe"
    outcome: dict = {}

    def fit() -> None:
        try:
            outcome["result"] = finetune_model(run_dir, spec, 0, log=lambda line: None)
        except BaseException as exc:
            outcome["error"] = exc

    start = time.perf_counter()
    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    victim = None
    while thread.is_alive() and time.perf_counter() - start < 300:
        try:
            info = json.loads((folder / PROGRESS_FILE.format(rank=0)).read_text())
        except (OSError, ValueError, KeyError):
            info = None
        # Kill after epoch 3's progress: Ray Train's controller polls the workers' reports,
        # so at epoch 2 epoch 1's checkpoint may not be registered yet and the retry starts
        # from scratch (none resumed: seen once in three suite runs on 2026-12-05).
        if info and info["epoch"] >= 3:
            victim = info
            os.kill(info["pid"], signal.SIGKILL)
            break
        time.sleep(0.2)
    killed_at = time.perf_counter() - start
    thread.join(600)
    assert victim is not None, "the fine-tune ended before the worker could be killed"
    assert "error" not in outcome, outcome.get("error")
    hist = json.loads((folder / HISTORY_FILE).read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]  # each epoch once
    assert any(h["resumed"] for h in hist) and not hist[0]["resumed"]
    after = json.loads((folder / PROGRESS_FILE.format(rank=0)).read_text())
    assert after["pid"] != victim["pid"] and after["epoch"] == 4
    logits = predict_samples(load_data(spec, run_dir), {"probe": folder}, log=lambda line: None)[
        "probe"
    ]
    assert logits.shape == (1797, 10) and np.isfinite(logits).all()
    assert (folder / PREDICTIONS_FILE).is_file()
    assert (folder / WEIGHTS_FILE).is_file()
    print(f"\nFINETUNE kill: SIGKILL to worker pid {victim['pid']} at {killed_at:.1f} s after "
          f"epoch {victim['epoch']}; finished in {time.perf_counter() - start:.1f} s, "
          f"train accuracy {hist[-1]['train_accuracy']:.3f}")  # fmt: skip


def test_a_gpu_request_on_a_cpu_cluster_is_refused_at_once(ray_local, tmp_path):
    entry = _mlp("g", 1)
    entry["finetune"]["gpus_per_worker"] = 1
    spec = _prepared(tmp_path / "run", [entry])
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"1 GPU but the Ray cluster has 0 GPUs"):
        finetune_model(tmp_path / "run", spec, 0, log=lambda line: None)
    assert time.perf_counter() - start < 10
    from engine.distributed.models import train_eval_models

    scratch = dict(_mlp("s", 1))
    scratch.pop("finetune")
    scratch.update(epochs=1, gpus=1)
    spec2 = _prepared(tmp_path / "run2", [scratch])
    with pytest.raises(ValueError, match=r"asks for 1 GPU but the Ray cluster has 0"):
        train_eval_models(tmp_path / "run2", spec2, log=lambda line: None)
