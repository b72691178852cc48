"""The one writer of every task's ``eval/`` files and the Evaluation it hands the lifecycle."""

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq

from engine.spec import load_spec
from engine.tasks.eval_outputs import task_evaluation, write_eval_outputs


def test_the_eval_files_keep_the_column_order_and_the_two_space_json(tmp_path):
    evaluations = [{"model": "reader", "params": 273602, "error_all": math.nan, "per_bin": [0.5]}]
    transfer = {"auroc": {"reader": {"action": 0.75}}}
    columns = {"sample_id": pa.array([4, 9]), "pred_reader": pa.array(["a", "b"]),
               "em_reader": pa.array([1.0, 0.0])}  # fmt: skip
    eval_dir = write_eval_outputs(
        tmp_path / "run", predictions=columns, evaluations=evaluations, transfer=transfer
    )
    assert eval_dir == tmp_path / "run" / "eval" and eval_dir.is_dir()
    table = pq.read_table(eval_dir / "predictions.parquet")
    assert table.column_names == ["sample_id", "pred_reader", "em_reader"]
    assert table.column("pred_reader").to_pylist() == ["a", "b"]
    # the bytes the plugins wrote before the writer was shared: NaN as JSON's NaN, indent 2
    assert (eval_dir / "metrics.json").read_bytes() == json.dumps(evaluations, indent=2).encode()
    assert (eval_dir / "transfer.json").read_bytes() == json.dumps(transfer, indent=2).encode()
    assert (
        b'\n  {\n    "model": "reader",\n    "params": 273602,'
        in (eval_dir / "metrics.json").read_bytes()
    )
    assert not list(eval_dir.glob(".*tmp*"))  # atomic: no temporary file left


def test_the_evaluation_names_every_evaluated_models_folder_and_curve(tmp_path):
    spec = load_spec("tests/fixtures/tiny-qa.yaml")
    curve = [{"epoch": 0, "train_loss": 1.5}]
    (tmp_path / "models" / "reader").mkdir(parents=True)
    (tmp_path / "models" / "reader" / "history.json").write_text(json.dumps(curve))
    ev = task_evaluation(tmp_path, spec, evaluations=[{"model": "reader"}], table="t",
                         transfer={})  # fmt: skip
    assert ev.model_dirs == {"reader": tmp_path / "models" / "reader"}
    assert ev.histories == {"reader": curve}
    assert (ev.summary, ev.plots, ev.table) == ({}, [], "t")
