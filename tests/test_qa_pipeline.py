"""Extractive QA end to end through real local Ray: the seed ensemble as a Ray task
writing reduced shards, the scoring pool, splits, readers, report and MLflow; the
distributed scores equal the span scores computed from the full arrays."""

import json

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from engine.lifecycle import run_benchmark
from engine.spec import load_spec
from engine.tasks import load_data

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPEC = "tests/fixtures/tiny-qa.yaml"


@pytest.fixture(scope="module")
def qa_run(ray_local, tmp_path_factory, no_tracking_env_module):
    runs = tmp_path_factory.mktemp("runs")
    return run_benchmark(load_spec(SPEC), runs_dir=runs, run_id="qa", log=lambda line: None)


def test_distributed_scores_equal_the_span_scores_of_the_full_arrays(qa_run):
    import torch

    from engine.scores.qa import span_action, span_confusion
    from engine.training.qa import train_readers

    spec = load_spec(SPEC)
    data = load_data(spec)
    starts, ends = [], []

    def keep(epoch, s, e):
        starts.append(s)
        ends.append(e)

    threads = torch.get_num_threads()
    torch.set_num_threads(int(spec.replicas.cpus_per_worker))  # as in the Ray task
    try:
        train_readers(data, spec.replicas.recipe, spec.replicas.seeds(), on_epoch=keep)
    finally:
        torch.set_num_threads(threads)
    s, e = np.stack(starts, axis=1), np.stack(ends, axis=1)  # (R, E, N, L)
    table = pq.read_table(qa_run.run_dir / "scores.parquet")
    assert table.num_rows == 240
    np.testing.assert_allclose(
        table.column("confusion").to_numpy(), span_confusion(np.exp(s), np.exp(e)), atol=1e-4
    )
    # losses are stored as float16 in the reduced shards
    np.testing.assert_allclose(
        table.column("action").to_numpy(), span_action(s, e, data.start, data.end), rtol=2e-3
    )
    shards = sorted((qa_run.run_dir / "preds" / "packed").glob("epoch=*/block=*.parquet"))
    assert len(shards) == 2 * 3  # 2 epochs x 240 questions in 100-question blocks


def test_splits_evaluation_report_and_mlflow(qa_run):
    from mlflow.tracking import MlflowClient

    from engine.splits.display import format_params

    run = qa_run.run_dir
    pool = pq.read_table(run / "benchmark" / "splits" / "pool.parquet")
    hard = pq.read_table(run / "benchmark" / "splits" / "hard.parquet")
    scores = pq.read_table(run / "scores.parquet")
    held = scores.filter(pc.equal(scores.column("split"), "heldout"))
    n = held.num_rows  # the questions on the held-out passages
    assert 20 < n < 80 and pool.num_rows == n and hard.num_rows == round(0.2 * n)
    assert pool.column("sample_id").to_pylist() == held.column("sample_id").to_pylist()
    assert min(hard.column("confusion").to_pylist()) >= max(
        pq.read_table(run / "benchmark" / "splits" / "rest.parquet").column("confusion").to_pylist()
    )
    assert {"question", "context", "answer"} <= set(pool.column_names)
    evals = json.loads((run / "eval" / "metrics.json").read_text())
    assert [e["model"] for e in evals] == ["ensemble", "reader"]
    for ev in evals:
        assert 0 <= ev["em_all"] <= ev["f1_all"] <= 1 and len(ev["error_per_bin"]) == 5
        assert ev["error_all"] == pytest.approx(1 - ev["em_all"])
    preds = pq.read_table(run / "eval" / "predictions.parquet")
    assert preds.num_rows == n
    assert np.mean(preds.column("em_reader").to_numpy()) == pytest.approx(evals[1]["em_all"])
    comparison = json.loads((run / "eval" / "transfer.json").read_text())
    from scipy.stats import spearmanr

    rho = spearmanr(scores.column("action").to_numpy(), scores.column("confusion").to_numpy())
    assert comparison["spearman_action_confusion"]["all"] == pytest.approx(rho.statistic)
    assert set(comparison["auroc"]) == {"ensemble", "reader"}
    page = (run / "report.html").read_text()
    assert "Action vs confusion" in page and "data:image/png;base64" in page
    reader_params = _trained_reader_params()
    assert isinstance(evals[1]["params"], int) and evals[1]["params"] == reader_params > 0
    assert evals[0]["params"] is None  # the in-sample ensemble: no count recorded
    assert f"<td>reader</td><td>{format_params(reader_params)}</td>" in page
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    client = MlflowClient(tracking_uri=f"sqlite:///{run.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hardbench-tests")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3  # parent + ensemble + reader
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert "spearman_action_confusion_all" in parent.data.metrics
    assert (run / "models" / "reader" / "weights.pt").exists()  # model.pt before issue 25


def _trained_reader_params() -> int:
    """Parameters of the spec's evaluated reader, built fresh (the count training recorded)."""
    from engine.training.qa import make_reader

    spec = load_spec(SPEC)
    data = load_data(spec)
    reader = make_reader(spec.evaluate.models[0].recipe, data.vocab_size,
                         data.input_ids.shape[1], seed=0)  # fmt: skip
    return sum(p.numel() for p in reader.parameters())


def test_a_qa_run_goes_through_the_same_lifecycle_commands(qa_run, capsys):
    from engine.cli import main

    run = qa_run.run_dir
    assert main(["validate", SPEC]) == 0
    assert "valid qa spec 'tiny-qa'" in capsys.readouterr().out
    assert main(["score", str(run), "--scores", "confusion,action"]) == 0
    rescored = pq.read_table(run / "scores.rescored.parquet")
    np.testing.assert_array_equal(
        rescored.column("confusion").to_numpy(),
        pq.read_table(run / "scores.parquet").column("confusion").to_numpy(),
    )
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert "Action vs confusion" in (run / "report.html").read_text()
    assert main(["verify", str(run)]) == 0
    assert "shards checked, 0 failed" in capsys.readouterr().out
    assert main(["run", "--resume", str(run)]) == 2
    assert "is complete; nothing to resume" in capsys.readouterr().err
    assert main(["eval", str(run), "--model", "mlp"]) == 2
    assert "hardbench eval measures outside models on classification runs" in (
        capsys.readouterr().err
    )


def test_a_gpu_request_on_a_cluster_without_gpus_is_refused(ray_local, tmp_path):
    from engine.spec import SpecError

    spec = load_spec(SPEC, ["replicas.gpus_per_worker=1"])
    with pytest.raises(RuntimeError, match=r"asks for 1 GPU per task, but the Ray cluster has 0"):
        run_benchmark(spec, runs_dir=tmp_path, run_id="gpu", log=lambda line: None)
    assert json.loads((tmp_path / "gpu" / "run.json").read_text())["status"] == "failed"
    with pytest.raises(SpecError, match=r"replicas.gpus_per_worker: must be in \[0, 1\]"):
        load_spec(SPEC, ["replicas.gpus_per_worker=2"])


def test_scores_and_splits_equal_the_golden_values(qa_run):
    from tests.golden import check_golden

    check_golden("tiny-qa", qa_run.run_dir)


def test_metrics_equal_the_golden_values(qa_run):
    from tests.golden import check_golden_metrics

    check_golden_metrics("tiny-qa", qa_run.run_dir)


CURRICULUM_MODELS = (
    "evaluate.models=[{name: reader, dim: 32, layers: 1, heads: 2, epochs: 2, batch_size: 32, "
    "lr: 0.002, seed: 5}, {name: reader_curriculum, dim: 32, layers: 1, heads: 2, epochs: 2, "
    "batch_size: 32, lr: 0.002, seed: 5, mitigation: {method: curriculum, score: action}}]"
)  # the fixture's reader, and the same reader trained easy to hard by action


def test_a_curriculum_reader_trains_after_scoring_and_its_mitigation_is_recorded(
    qa_run, tmp_path, no_tracking_env
):
    import torch
    from mlflow.tracking import MlflowClient

    spec = load_spec(SPEC, [CURRICULUM_MODELS])
    run = run_benchmark(spec, runs_dir=tmp_path, run_id="curriculum", log=lambda line: None)
    run_dir = run.run_dir
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    evals = {e["model"]: e for e in json.loads((run_dir / "eval" / "metrics.json").read_text())}
    assert set(evals) == {"ensemble", "reader", "reader_curriculum"}
    assert evals["reader_curriculum"]["mitigation"]["method"] == "curriculum"
    assert evals["reader_curriculum"]["mitigation"]["score"] == "action"
    assert "mitigation" not in evals["reader"]
    # it waited for the scores it ranks the samples by
    history = json.loads((run_dir / "models" / "reader_curriculum" / "history.json").read_text())
    assert history[0]["started"] >= (run_dir / "scores.parquet").stat().st_mtime
    # the erm reader is the one the erm-only run trained beside its replicas, bit for bit
    for a, b in zip(
        torch.load(run_dir / "models" / "reader" / "weights.pt", weights_only=True).values(),
        torch.load(qa_run.run_dir / "models" / "reader" / "weights.pt", weights_only=True).values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hardbench-tests")
    params = {
        r.data.params.get("model"): r.data.params for r in client.search_runs([exp.experiment_id])
    }
    assert params["reader_curriculum"]["mitigation.method"] == "curriculum"
    assert params["reader_curriculum"]["mitigation.score"] == "action"
    assert "mitigation.method" not in params["reader"]
