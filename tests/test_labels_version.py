"""A relabelled version read by ``hardbench eval`` and ``hardbench compare``, on a real tiny run."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.cli import EXIT_BAD_INPUT, main
from engine.lifecycle.audit import apply_verdicts
from engine.lifecycle.labels_version import read_labels_version
from tests.test_pipeline import tiny_run  # noqa: F401  (the module's own tiny build)

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def relabelled(tiny_run, tmp_path_factory):  # noqa: F811
    """``v1`` of the tiny run: 6 pool samples moved to the ensemble's class, 2 removed."""
    _, runs, result = tiny_run
    run = result.run_dir
    preds = pq.read_table(run / "eval" / "predictions.parquet").to_pandas()
    wrong = preds[preds.pred_ensemble != preds.label]
    right = preds[preds.pred_ensemble == preds.label]
    moved = wrong.head(4)
    other = right.head(2)  # right before, moved to another class: wrong after
    gone = right.iloc[2:4]
    lines = ["sample_id,verdict,corrected_label"]
    lines += [f"{r.sample_id},relabel,{r.pred_ensemble}" for r in moved.itertuples()]
    lines += [f"{r.sample_id},relabel,{(r.label + 1) % 10}" for r in other.itertuples()]
    lines += [f"{r.sample_id},remove," for r in gone.itertuples()]
    verdicts = tmp_path_factory.mktemp("verdicts") / "verdicts.csv"
    verdicts.write_text("\n".join(lines) + "\n")
    assert apply_verdicts(run, verdicts)["version"] == "v1"
    relabelled_ids = set(moved.sample_id) | set(other.sample_id)
    return result, runs, relabelled_ids, set(gone.sample_id)


def test_eval_labels_changes_exactly_the_relabelled_samples_errors(relabelled, capsys):
    result, _, relabelled_ids, removed_ids = relabelled
    run = result.run_dir
    capsys.readouterr()
    assert main(["eval", str(run), "--labels", "v1"]) == 0
    out = capsys.readouterr().out
    assert "labels v1 of run first: 6 pool samples relabelled, 2 removed" in out
    assert "ranking by overall error" in out and "ranking by hard-split error" in out
    table = pq.read_table(run / "eval" / "labels-v1" / "correctness.parquet").to_pandas()
    build = json.loads((run / "eval" / "metrics.json").read_text())
    record = json.loads((run / "eval" / "labels-v1" / "transfer.json").read_text())
    assert [ev["model"] for ev in record["original"]] == [ev["model"] for ev in build]
    kept = ~table.removed
    assert set(table.sample_id[table.removed]) == removed_ids
    for ev, orig, corr in zip(build, record["original"], record["corrected"], strict=True):
        name = ev["model"]
        before, after = table[f"correct_original_{name}"], table[f"correct_v1_{name}"]
        assert after[table.removed].isna().all(), name  # removed: left out, not wrong
        differ = set(table.sample_id[kept & (before != (after == 1))])
        assert differ <= relabelled_ids, name
        if name == "ensemble":  # its 4 errors became right, 2 right answers became wrong
            assert differ == relabelled_ids
        # the original side is the build's own measurement, exactly
        assert orig["error_all"] == ev["error_all"] and orig["error_hard"] == ev["error_hard"]
        assert orig["error_all_ci95"] == ev["error_all_ci95"]
        assert corr["error_all"] == pytest.approx(1 - after[kept].mean())
    assert record["corrected_samples"] == len(table) - 2 and record["removed"] == 2


def test_compare_shows_the_corrected_columns_and_rankings(relabelled, capsys):
    result, runs, _, _ = relabelled
    run = result.run_dir
    if not (run / "eval" / "labels-v1").exists():
        assert main(["eval", str(run), "--labels", "v1"]) == 0
    record = json.loads((run / "eval" / "labels-v1" / "transfer.json").read_text())
    capsys.readouterr()
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    argv = ["compare", "hardbench-tests", "--tracking-uri", uri, "--run-id", "first"]
    assert main([*argv, "--labels", "v1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "all v1" in lines[0] and "hard v1" in lines[0] and "gap v1" in lines[0]
    for ev in record["corrected"]:
        row = next(line for line in lines if f" {ev['model']} " in line)
        assert f"{100 * ev['error_all']:.1f}%" in row and f"{100 * ev['error_hard']:.1f}%" in row
    assert any(line.startswith("first: labels v1: 6 pool samples relabelled, 2 removed")
               for line in lines)  # fmt: skip
    assert any(line.startswith("first: ranking by overall error") for line in lines)
    assert main([*argv, "--labels", "v7"]) == EXIT_BAD_INPUT
    assert "no model was measured on labels v7" in capsys.readouterr().err


def test_eval_labels_with_an_outside_model_ranks_it_beside_the_build(relabelled, capsys):
    result, _, _, _ = relabelled
    run = result.run_dir
    model = str(run / "models" / "small_mlp")
    capsys.readouterr()
    assert main(["eval", str(run), "--model-uri", model, "--label", "again", "--labels", "v1"]) == 0
    assert "again" in capsys.readouterr().out
    ev = json.loads((run / "eval" / "extra" / "again-pool.json").read_text())
    cmp = ev["labels_comparison"]
    corr = {e["model"]: e for e in cmp["corrected"]}
    assert corr["again"]["error_all"] == corr["small_mlp"]["error_all"]  # the same weights
    assert list(cmp["mlflow_runs"]) == ["again"]  # only the outside model is logged again
    assert main(["eval", str(run), "--model-uri", model, "--label", "small_mlp",
                 "--labels", "v1"]) == EXIT_BAD_INPUT  # fmt: skip
    assert "'small_mlp' is a model of the build" in capsys.readouterr().err


def test_labels_versions_are_checked_against_the_run(relabelled, tmp_path, capsys):
    result, _, _, _ = relabelled
    run = result.run_dir
    assert main(["eval", str(run), "--labels", "v3"]) == EXIT_BAD_INPUT
    assert f"{run} has no labels version v3: it has v1" in capsys.readouterr().err
    assert main(["eval", str(run)]) == EXIT_BAD_INPUT
    assert "eval needs --model, --model-uri or --labels" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(run / "datasets", copy / "datasets")
    shutil.copy(run / "scores.parquet", copy / "scores.parquet")
    path = copy / "datasets" / "v1" / "labels.parquet"
    table = pq.read_table(path)
    original = table.column("original_label").to_numpy().copy()
    original[3] = (original[3] + 1) % 10
    pq.write_table(table.set_column(1, "original_label", pa.array(original)), path)
    with pytest.raises(ValueError, match="original_label differs from the run's labels"):
        read_labels_version(copy, "v1")
    pq.write_table(table.slice(0, 10), path)
    with pytest.raises(ValueError, match="holds 10 rows, not one per sample of the run"):
        read_labels_version(copy, "v1")
    with pytest.raises(ValueError, match="labels version must read v<n>"):
        read_labels_version(copy, "1")
    version = read_labels_version(run, "v1")
    assert version.relabelled.sum() == 6 and version.removed.sum() == 2
