"""The build's evaluation pool on real local Ray: Ray Data actors predict every sample.

What an evaluated model's logits are after the pool (the same as the model's own
forward pass in this process), for cached images and for token ids held in memory;
the predictions file a resumed run keeps or redoes; requests the cluster cannot place.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from engine.distributed.evaluation import eval_pool_size, predict_samples, read_predictions
from engine.distributed.models import train_eval_models
from engine.evaluation.predictor import describe_model_dir
from engine.layout import MODELS_DIR
from engine.models import create_model
from engine.spec import load_spec, parse_spec
from engine.tasks import load_data
from engine.training import infer
from engine.training.model_folder import PREDICTIONS_FILE, WEIGHTS_FILE

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"
SENTIMENT = ROOT / "benchmarks" / "sentiment.yaml"
ATOL = 1e-5  # the pool's batches (64 per forward) against one pass of 256: float sums only


def _spec(path: Path, run_dir: Path, models: list[dict], **evaluate: object) -> object:
    data = load_spec(path).to_dict()
    data["evaluate"]["models"] = models
    data["evaluate"].update(evaluate)
    spec = parse_spec(data)
    run_dir.mkdir(parents=True, exist_ok=True)
    return spec


def _in_process(folder: Path) -> object:
    info = describe_model_dir(folder)
    return create_model(info["model"], num_classes=info["num_classes"],
                        input_shape=tuple(info["input_shape"]),
                        weights_file=info["weights_file"], **info["model_kwargs"]).eval()  # fmt: skip


MLP = {"name": "m", "model": "mlp", "model_kwargs": {"hidden": 32}, "epochs": 2, "seed": 3,
       "cpus": 0.5}  # fmt: skip


def test_two_actors_predict_cached_images_as_the_models_do(ray_local, tmp_path):
    run_dir = tmp_path / "run"
    second = {**MLP, "name": "m2", "model_kwargs": {"hidden": 16}, "seed": 4}
    spec = _spec(TINY, run_dir, [MLP, second], actors="auto", cpus_per_actor=0.5)
    lines: list[str] = []
    start = time.perf_counter()
    logits = train_eval_models(run_dir, spec, log=lines.append)
    took = time.perf_counter() - start
    data = load_data(spec, run_dir)
    for name in ("m", "m2"):
        folder = run_dir / MODELS_DIR / name
        with torch.no_grad():
            expected = infer(_in_process(folder), np.asarray(data.inputs))
        assert logits[name].shape == (1797, 10) and logits[name].dtype == np.float32
        np.testing.assert_allclose(logits[name], expected, atol=ATOL)
        table = pq.read_table(folder / PREDICTIONS_FILE)
        assert table.schema.field("logits").type == pa.list_(pa.float32(), 10)
        assert sorted(table.column("sample_id").to_pylist()) == list(range(1797))
        assert not (folder / (PREDICTIONS_FILE + ".tmp")).exists()
    assert not np.allclose(logits["m"], logits["m2"])  # each column is its own model's
    # 4 blocks of 512 on 2 CPUs at 0.5 CPU each: 2 actors (one CPU left for reads), one
    # pool for both models
    assert eval_pool_size("auto", 4, 0.5, 0.0) == 2
    pools = [line for line in lines if "on the evaluation pool" in line]
    assert len(pools) == 1 and "with m, m2" in pools[0] and "2 actor(s) x 0.5 CPU" in pools[0]
    print(f"\nEVAL_POOL digits: 2 models trained, 1797 samples predicted in {took:.1f} s")


def test_token_ids_from_the_token_cache_travel_through_the_pool(ray_local, tmp_path):
    run_dir = tmp_path / "run"
    entry = {"name": "t", "model": "text_mlp", "model_kwargs": {"dim": 16, "hidden": 16},
             "epochs": 1, "seed": 1, "cpus": 1}  # fmt: skip
    spec = _spec(SENTIMENT, run_dir, [entry], cpus_per_actor=0.5)
    logits = train_eval_models(run_dir, spec, log=lambda line: None)["t"]
    data = load_data(spec, run_dir)
    assert np.issubdtype(np.asarray(data.inputs).dtype, np.integer)
    with torch.no_grad():
        expected = infer(_in_process(run_dir / MODELS_DIR / "t"), data.inputs)
    assert logits.shape == (len(data.labels), 2)
    np.testing.assert_allclose(logits, expected, atol=ATOL)


def test_a_resumed_run_predicts_again_only_what_is_missing(ray_local, tmp_path):
    run_dir = tmp_path / "run"
    spec = _spec(TINY, run_dir, [MLP], cpus_per_actor=0.5)
    first = train_eval_models(run_dir, spec, log=lambda line: None)["m"]
    folder = run_dir / MODELS_DIR / "m"
    weights_mtime = (folder / WEIGHTS_FILE).stat().st_mtime_ns

    lines: list[str] = []
    again = train_eval_models(run_dir, spec, log=lines.append)["m"]
    assert any("not trained or predicted again: m" in line for line in lines), lines
    np.testing.assert_array_equal(again, first)

    # an attempt that died while predicting: the weights stay, the pool runs again
    (folder / PREDICTIONS_FILE).unlink()
    lines.clear()
    redone = train_eval_models(run_dir, spec, log=lines.append)["m"]
    assert any("trained before, only predicted: m" in line for line in lines), lines
    assert (folder / WEIGHTS_FILE).stat().st_mtime_ns == weights_mtime
    np.testing.assert_allclose(redone, first, atol=ATOL)

    # a predictions file without every sample is not taken for a finished one
    table = pq.read_table(folder / PREDICTIONS_FILE).slice(0, 100)
    pq.write_table(table, folder / PREDICTIONS_FILE)
    with pytest.raises(ValueError, match="100 predictions, not one for each of 1797"):
        read_predictions(folder / PREDICTIONS_FILE, 1797)
    lines.clear()
    fixed = train_eval_models(run_dir, spec, log=lines.append)["m"]
    assert any("only predicted: m" in line for line in lines), lines
    assert len(read_predictions(folder / PREDICTIONS_FILE)) == 1797
    np.testing.assert_allclose(fixed, first, atol=ATOL)


def test_requests_the_cluster_cannot_place_are_refused_before_training(ray_local, tmp_path):
    run_dir = tmp_path / "gpu"
    spec = _spec(TINY, run_dir, [MLP], gpus_per_actor=1)
    start = time.perf_counter()
    with pytest.raises(
        ValueError, match="a prediction actor asks for 1 GPU but the Ray cluster has 0"
    ):
        train_eval_models(run_dir, spec, log=lambda line: None)
    assert time.perf_counter() - start < 30
    assert not (run_dir / MODELS_DIR).exists()  # nothing trained for a pool that cannot run

    run_dir = tmp_path / "many"
    spec = _spec(TINY, run_dir, [MLP], actors=3, cpus_per_actor=1.0)
    with pytest.raises(
        ValueError,
        match=r"3 prediction actors \(evaluate.actors, --actors\) do not fit .* it fits 1 of 1 CPU",
    ):
        train_eval_models(run_dir, spec, log=lambda line: None)


def test_a_model_folder_predicts_the_same_through_predict_samples(ray_local, tmp_path):
    """``predict_samples`` alone on a folder: what ``hardbench eval`` and a resume rely on."""
    run_dir = tmp_path / "run"
    spec = _spec(TINY, run_dir, [MLP], cpus_per_actor=0.5)
    first = train_eval_models(run_dir, spec, log=lambda line: None)["m"]
    folder = run_dir / MODELS_DIR / "m"
    (folder / PREDICTIONS_FILE).unlink()
    data = load_data(spec, run_dir)
    one = predict_samples(data, {"m": folder}, actors=1, cpus_per_actor=1.0, block_size=256,
                          log=lambda line: None)["m"]  # fmt: skip
    np.testing.assert_allclose(one, first, atol=ATOL)
