"""Seed ensembles of evaluated architectures (the paper's Figure 3), through a real local Ray."""

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from engine.lifecycle import run_benchmark
from engine.scores import confusion
from engine.shards import BlockReader
from engine.spec import SpecError, load_spec
from tests.test_pipeline import TINY

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SEEDS = 2  # the evaluated model's seed ensemble
EPOCHS = 3  # its epochs (the tiny spec's small_mlp trains 4; fewer keeps the test short)


@pytest.fixture(scope="module")
def ensemble_run(ray_local, tmp_path_factory):
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    runs = tmp_path_factory.mktemp("runs")
    spec = load_spec(
        TINY, [f"evaluate.models[0].seeds={SEEDS}", f"evaluate.models[0].epochs={EPOCHS}"]
    )
    result = run_benchmark(spec, runs_dir=runs, run_id="seeds", log=lambda line: None)
    return spec, result


def test_a_seed_ensemble_is_a_run_of_its_own_with_one_shard_per_replica_epoch_block(ensemble_run):
    _, result = ensemble_run
    sub = result.run_dir / "ensembles" / "small_mlp"
    found = sorted(p.relative_to(sub / "preds").as_posix() for p in sub.glob("preds/**/*.parquet"))
    assert found == sorted(
        f"replica={r}/epoch={e}/block={b}.parquet"
        for r in range(SEEDS) for e in range(EPOCHS) for b in range(4)
    )  # fmt: skip
    manifest = json.loads((sub / "preds" / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["replicas"] == list(range(SEEDS))
    seeds = {row["replica"]: row["seed"] for row in manifest["rows"]}
    assert seeds == {r: 11 + r for r in range(SEEDS)}  # the model's seed, then seed + 1
    assert "seed_ensembles" in result.timings


def test_its_confusion_is_the_score_function_on_its_stacked_predictions(ensemble_run):
    _, result = ensemble_run
    sub = result.run_dir / "ensembles" / "small_mlp"
    table = pq.read_table(sub / "scores.parquet")
    got = table.column("confusion").to_numpy()
    parts = []
    for block in range(4):
        epochs = list(BlockReader(sub, block, list(range(SEEDS)), list(range(EPOCHS))))
        parts.append(np.stack([eb.probs for eb in epochs], axis=1))  # (R, E, N_b, K)
    probs = np.concatenate(parts, axis=2).astype(np.float64)
    probs /= probs.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(got, confusion(probs), atol=1e-6)


def test_the_tau_matrix_compares_the_replicas_and_the_ensemble_on_both_sets(ensemble_run):
    _, result = ensemble_run
    transfer = json.loads((result.run_dir / "eval" / "transfer.json").read_text())
    taus = transfer["seed_ensembles"]
    assert taus["names"] == ["replicas", "small_mlp"] and set(taus["sets"]) == {"train", "heldout"}
    assert taus["seeds"] == {"replicas": 2, "small_mlp": SEEDS}
    small = pq.read_table(result.run_dir / "scores.parquet")
    large = pq.read_table(result.run_dir / "ensembles" / "small_mlp" / "scores.parquet")
    held = np.asarray(small.column("split").to_pylist()) == "heldout"
    want = stats.kendalltau(
        small.column("confusion").to_numpy()[held], large.column("confusion").to_numpy()[held]
    ).statistic
    rec = taus["sets"]["heldout"]
    assert rec["tau"][0][0] == 1.0 and rec["tau"][0][1] == pytest.approx(want)
    lo, hi = rec["tau_ci95"][0][1]
    assert lo <= rec["tau"][0][1] <= hi
    card = (result.run_dir / "benchmark" / "card.md").read_text()
    assert "Kendall tau of confusion between seed ensembles, heldout samples" in card
    assert (result.run_dir / "eval" / "seed_ensembles.png").stat().st_size > 10_000


def test_seed_ensembles_are_refused_where_they_cannot_be_built():
    with pytest.raises(SpecError, match=r"evaluate\.models\[0\]\.seeds: must be a whole number"):
        load_spec(TINY, ["evaluate.models[0].seeds=0"])
    with pytest.raises(SpecError, match=r"seeds: .*add confusion to scores"):
        load_spec(TINY, ["evaluate.models[0].seeds=2", "scores=[action]", "splits.score=action"])
    with pytest.raises(SpecError, match=r"seeds: seed ensembles of evaluated models are built"):
        load_spec("tests/fixtures/tiny-qa.yaml", ["evaluate.models[0].seeds=2"])
