"""What a spec alone decides about its data is refused by validate and before a run writes anything."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.lifecycle import run_benchmark
from engine.spec import SpecError, load_spec
from engine.tasks.preflight import check_inputs

ROOT = Path(__file__).resolve().parents[1]
HARDBENCH = str(Path(sys.executable).parent / "hardbench")


def _folder(root: Path, classes: list[str] | None, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / classes[i % len(classes)] if classes else root
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def _spec(tmp_path: Path, data: str, scores: str = "[confusion, action]") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"""
metadata: {{name: pre, version: 1}}
data:
{data}
replicas: {{count: 2, model: mlp, epochs: 2}}
scores: {scores}
tracking: {{experiment: hardbench-tests}}
""")
    return path


def _refused(tmp_path: Path, spec_path: Path, match: str, *overrides: str) -> None:
    """check_inputs and a build refuse, and the build writes nothing."""
    spec = load_spec(spec_path, list(overrides))
    with pytest.raises(SpecError, match=match):
        check_inputs(spec)
    runs = tmp_path / "runs"
    with pytest.raises(SpecError, match=match):
        run_benchmark(spec, runs_dir=runs, run_id="r", log=lambda s: None)
    assert not runs.exists()


def test_a_data_path_that_does_not_exist(tmp_path):
    spec = _spec(tmp_path, f"  source: imagefolder\n  path: {tmp_path / 'nowhere'}")
    _refused(tmp_path, spec, r"data\.path: .*nowhere does not exist")


def test_a_webdataset_glob_that_matches_nothing(tmp_path):
    spec = _spec(tmp_path, f"  source: webdataset\n  path: '{tmp_path}/shard-*.tar'")
    _refused(tmp_path, spec, r"data\.path: .*shard-\*\.tar matches no file")


def test_label_aware_scores_on_a_flat_folder_pool(tmp_path):
    train = _folder(tmp_path / "train", ["a", "b"])
    pool = _folder(tmp_path / "pool", None)
    data = (f"  train: {{source: imagefolder, path: {train}}}\n"
            f"  pool: {{source: imagefolder, path: {pool}}}")  # fmt: skip
    spec = _spec(tmp_path, data)
    _refused(tmp_path, spec, r"scores: action need labels, and the pool is unlabelled "
             r"\(data\.pool: .*pool is a flat folder of images")  # fmt: skip
    assert check_inputs(load_spec(spec, ["scores=[confusion, ensemble_max_prob]"])) == []
    labels = tmp_path / "labels.csv"
    labels.write_text("key,label\n0.png,a\n")
    check_inputs(load_spec(spec, [f"data.pool_labels={labels}"]))  # labels given: accepted


def test_label_aware_rules_on_a_pool_without_label_column(tmp_path):
    train = _folder(tmp_path / "train", ["a", "b"])
    table = tmp_path / "pool.csv"
    table.write_text("file\n")
    data = (f"  train: {{source: imagefolder, path: {train}}}\n"
            f"  pool: {{source: table, path: {table}, image_column: file, label_column: null}}")  # fmt: skip
    spec = _spec(tmp_path, data, scores="[confusion]")
    _refused(tmp_path, spec, r"splits\.hard\.per_class needs labels, and the pool is unlabelled "
             r"\(data\.pool: label_column is null\)", "splits.hard.per_class=true")  # fmt: skip


def test_an_unlabelled_training_source(tmp_path):
    spec = _spec(tmp_path, f"  source: imagefolder\n  path: {_folder(tmp_path / 'flat', None)}")
    _refused(tmp_path, spec, r"data: .*flat is a flat folder of images .* the replicas train on "
             r"labelled samples")  # fmt: skip


def test_one_replica_is_warned_not_refused(tmp_path):
    spec = load_spec(ROOT / "tests" / "fixtures" / "tiny.yaml", ["replicas.count=1"])
    (warning,) = check_inputs(spec)
    assert "replicas.count: 1" in warning and "not the disagreement of a seed ensemble" in warning


def test_a_spec_with_one_class_name_is_invalid(tmp_path):
    spec = _spec(tmp_path, "  source: sklearn_digits\n  class_names: [only]")
    with pytest.raises(SpecError, match=r"data\.class_names: a benchmark needs at least 2 classes"):
        load_spec(spec)


@pytest.mark.slow
def test_validate_refuses_without_writing(tmp_path):
    spec = _spec(tmp_path, f"  source: imagefolder\n  path: {tmp_path / 'nowhere'}")
    out = subprocess.run([HARDBENCH, "validate", str(spec)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "data.path:" in out.stderr and "does not exist" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
