"""A tiny multi-label run end to end through real local Ray: table -> cache -> shards -> splits -> eval.

The table holds 12x12 grey images whose quadrants each show one of four classes
(bright stripes in that quadrant) and a list of the classes present. The run's
scores equal the in-memory multi-label functions on its own shards, its splits carry
the label sets, and its metrics, results table and report exist and agree.
"""

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.lifecycle import run_benchmark
from engine.scores.multilabel import multilabel_action, multilabel_confusion
from engine.shards import BlockReader
from engine.spec import load_spec
from engine.spec.common import SpecError

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CLASSES = ["a", "b", "c", "d"]  # one per quadrant
N = 160  # samples in the table
SIDE = 12  # image side in pixels
QUAD = SIDE // 2


def _image(present: np.ndarray, rng: np.random.Generator) -> bytes:
    img = rng.normal(60, 40, (SIDE, SIDE))
    for k in np.flatnonzero(present):
        r, c = divmod(int(k), 2)
        img[r * QUAD : (r + 1) * QUAD : 2, c * QUAD : (c + 1) * QUAD] += 150
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    hot = rng.random((N, len(CLASSES))) < 0.4
    hot[hot.sum(axis=1) == 0, rng.integers(0, len(CLASSES))] = True
    path = tmp_path / "quadrants.parquet"
    pq.write_table(pa.table({
        "image": pa.array([_image(h, rng) for h in hot], pa.binary()),
        "labels": pa.array([[CLASSES[k] for k in np.flatnonzero(h)] for h in hot]),
    }), path)  # fmt: skip
    return path


def _spec(tmp_path: Path, table: Path, extra: str = "") -> Path:
    path = tmp_path / "ml.yaml"
    path.write_text(f"""
metadata: {{name: quadrants, version: 1, description: four classes one per quadrant}}
task: {{name: multilabel}}
data: {{path: {table}, image_column: image, label_column: labels, heldout_fraction: 0.4}}
replicas: {{count: 2, model: mlp, epochs: 3, batch_size: 32, num_workers: 2,
           cpus_per_worker: 0.5}}
shards: {{block_size: 64}}
splits: {{score: confusion, pool: heldout, hard: {{hardest_fraction: 0.25}}, bins: {{count: 3}}}}
evaluate:
  models: [{{name: cnn, model: small_cnn, epochs: 4, batch_size: 16, cpus: 0.5}}]
tracking: {{experiment: hardbench-tests}}
{extra}
""")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_local, no_tracking_env_module):
    tmp = tmp_path_factory.mktemp("multilabel")
    spec = load_spec(_spec(tmp, _table(tmp)))
    return run_benchmark(spec, runs_dir=tmp / "runs", run_id="ml", log=lambda s: None)


def test_scores_equal_the_in_memory_functions_on_the_runs_shards(run):
    scores = pq.read_table(run.run_dir / "scores.parquet")
    blocks = [list(BlockReader(run.run_dir, b, [0, 1], [0, 1, 2])) for b in range(-(-N // 64))]
    probs = np.concatenate([np.stack([eb.probs for eb in epochs], axis=1) for epochs in blocks],
                           axis=2).astype(np.float64)  # fmt: skip
    hot = np.concatenate([epochs[0].label_sets for epochs in blocks])
    assert probs.shape == (2, 3, N, len(CLASSES))
    ids = scores.column("sample_id").to_numpy()
    np.testing.assert_array_equal(scores.column("confusion").to_numpy(),
                                  multilabel_confusion(probs)[ids])  # fmt: skip
    np.testing.assert_array_equal(scores.column("action").to_numpy(),
                                  multilabel_action(hot, probs)[ids])  # fmt: skip
    assert (scores.column("confusion").to_numpy() <= np.log(2)).all()


def test_splits_carry_label_sets_and_metrics_and_report_agree(run):
    pool = pq.read_table(run.run_dir / "benchmark" / "splits" / "pool.parquet")
    assert "label_set" in pool.column_names and "label" not in pool.column_names
    sets = np.stack(pool.column("label_set").to_numpy(zero_copy_only=False))
    assert sets.shape[1] == len(CLASSES) and (sets.sum(axis=1) >= 1).all()
    metrics = {
        m["model"]: m for m in json.loads((run.run_dir / "eval" / "metrics.json").read_text())
    }
    assert set(metrics) == {"ensemble", "cnn"} and metrics["ensemble"]["in_sample"]
    preds = pq.read_table(run.run_dir / "eval" / "predictions.parquet")
    f1 = preds.column("f1_cnn").to_numpy()
    assert metrics["cnn"]["error_all"] == pytest.approx(1 - f1.mean())
    for m in metrics.values():
        assert 0 <= m["exact_match_all"] <= 1 and 0 <= m["hamming_all"] <= 1
        assert len(m["error_per_bin"]) == 3
    assert "multi-label" in (run.run_dir / "report.html").read_text()


def test_a_classification_spec_refuses_label_lists_and_multilabel_refuses_packs(tmp_path):
    table = tmp_path / "t.parquet"
    with pytest.raises(SpecError, match=r"task\.name: multilabel"):
        load_spec(_spec(tmp_path, table), ["task.name=classification", "data.label_lists=true"])
    with pytest.raises(SpecError, match=r"replicas\.pack_size"):
        load_spec(_spec(tmp_path, table), ["replicas.pack_size=all"])
    with pytest.raises(SpecError, match=r"splits\.hard\.per_class"):
        load_spec(_spec(tmp_path, table), ["splits.hard.per_class=true"])


def test_single_label_workflows_refuse_the_run_naming_why(run):
    from engine.lifecycle.audit import audit_run
    from engine.tasks import get_task
    from engine.tasks.base import UnsupportedByTask

    with pytest.raises(ValueError, match="without one class per sample"):
        audit_run(run.run_dir)
    spec = load_spec(run.run_dir / "spec.yaml")
    with pytest.raises(UnsupportedByTask, match="is a multilabel run"):
        get_task("multilabel").runtime().evaluate_model(run.run_dir, spec, {}, model="mlp")
