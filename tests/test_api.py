"""The Python API on a real build: run the tiny spec with overrides, read its results back."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from engine import api
from engine.layout import SPEC_FILE
from engine.lifecycle import RunSetupError
from engine.lifecycle.rundir import create_run_dir, write_status
from engine.spec import SpecError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"


def test_overrides_from_a_mapping_or_strings_and_errors():
    two = {"replicas.epochs": 2, "shards.grad_epochs": [0, 1]}
    spec = api.load(TINY, {**two, "splits.hard": {"hardest_fraction": 0.2}})
    assert spec.replicas.recipe.epochs == 2 and spec.splits.hard.hardest_fraction == 0.2
    assert api.load(TINY, ["replicas.epochs=5"]).replicas.recipe.epochs == 5
    with pytest.raises(SpecError, match="grad_epochs: must be epoch indices below"):
        api.load(TINY, {"replicas.epochs": 2})
    again = api.load(spec, {"replicas.count": 3})  # a spec object, overridden again
    assert (again.replicas.count, again.replicas.recipe.epochs, spec.replicas.count) == (3, 2, 2)
    with pytest.raises(SpecError, match=r"replicas\.epochs"):
        api.load(TINY, {"replicas.epochs": "many"})
    with pytest.raises(TypeError, match="mapping or a list"):
        api.load(TINY, "replicas.epochs=2")


def test_a_directory_that_is_not_a_finished_run(tmp_path):
    with pytest.raises(RunSetupError, match="not a run directory"):
        api.open_run(tmp_path)
    run_dir = create_run_dir(tmp_path, "half")
    (run_dir / SPEC_FILE).write_text(api.load(TINY).to_yaml())
    write_status(run_dir, {"run_id": "half", "status": "failed"})
    run = api.open_run(run_dir)
    assert not run.complete and run.task == "classification"
    with pytest.raises(RunSetupError, match=r"no scores.parquet \(status 'failed'\)"):
        run.scores()
    assert [r.run_id for r in api.list_runs(tmp_path)] == ["half"]
    assert api.list_runs(tmp_path / "none") == []


def test_an_old_run_s_evaluations_read_with_today_s_keys(tmp_path):
    """Runs written before the keys were unified (issue 25) wrote ``num_errors``."""
    run_dir = create_run_dir(tmp_path, "old")
    (run_dir / SPEC_FILE).write_text(api.load(TINY).to_yaml())
    write_status(run_dir, {"run_id": "old", "status": "complete"})
    (run_dir / "eval").mkdir()
    old = [{"model": "small_mlp", "error_all": 0.25, "num_errors": 90}]
    (run_dir / "eval" / "metrics.json").write_text(json.dumps(old))
    (ev,) = api.open_run(run_dir).evaluations
    assert ev["num_misses"] == 90 and "num_errors" not in ev and ev["error_all"] == 0.25


@pytest.mark.ray
@pytest.mark.slow
def test_run_the_tiny_spec_and_read_its_scores_back(ray_local, no_tracking_env, tmp_path):
    lines: list[str] = []
    run = api.run(
        TINY,
        overrides={"replicas.epochs": 2, "shards.grad_epochs": [0, 1]},
        runs_dir=tmp_path,
        run_id="api",
        log=lines.append,
    )
    assert run.complete and run.run_id == "api" and "small_mlp" in run.table
    assert any(line.startswith("[score]") for line in lines)
    manifest = json.loads((run.run_dir / "preds" / "_manifest.json").read_text())
    assert manifest["epochs"] == [0, 1] and run.spec.replicas.recipe.epochs == 2  # the override ran

    scores = run.scores()
    assert scores.equals(pq.read_table(run.run_dir / "scores.parquet"))
    assert scores.column("sample_id").to_pylist() == list(range(1797))
    assert set(run.spec.scores) <= set(scores.column_names)
    frame = run.scores_frame(["sample_id", "split", "confusion", "aum"])
    assert list(frame.columns) == ["sample_id", "split", "confusion", "aum"]
    assert np.array_equal(frame.confusion.to_numpy(), scores.column("confusion").to_numpy())

    held = frame[frame.split == "heldout"]
    hard = run.split("hard").to_pandas()
    top = held.sort_values(["confusion", "sample_id"], ascending=[False, True]).sample_id[:72]
    assert set(hard.sample_id) == set(top)
    assert set(run.splits) == {"pool", "hard", "rest", *(f"bin_{b}" for b in range(5))}
    with pytest.raises(KeyError, match="no split 'easy'; it has bin_0"):
        run.split("easy")

    assert run.card["splits"]["hard"]["count"] == 72
    assert run.card_path.read_text().startswith("# Benchmark card: tiny")
    assert run.report_path.read_text().lstrip().lower().startswith("<!doctype html")
    assert {ev["model"] for ev in run.evaluations} == {"ensemble", "small_mlp"}
    assert run.transfer["reference_models"] == ["small_mlp"]

    client = MlflowClient(tracking_uri=run.tracking_uri)
    assert run.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    parent = client.get_run(run.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    child = client.get_run(run.model_runs["small_mlp"])
    assert child.data.tags["mlflow.parentRunId"] == run.mlflow_run_id

    opened = api.open_run(run.run_dir)
    assert opened.table is None and opened.scores().equals(scores)
    assert opened.card == run.card and opened.mlflow_run_id == run.mlflow_run_id
    assert [r.run_id for r in api.list_runs(tmp_path)] == ["api"]
    assert "status='complete'" in repr(opened)
