"""Seq2seq (QASC fact fusion) end to end through real local Ray: the seed ensemble as a
Ray task writing reduced shards, the scoring pool, splits, a generator evaluated by
ROUGE-L, report and MLflow; the distributed scores equal the token scores computed
from the full next-token distributions."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from engine.lifecycle import run_benchmark
from engine.spec import load_spec
from engine.tasks import load_data

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPEC = "tests/fixtures/tiny-seq2seq.yaml"


@pytest.fixture(scope="module")
def s2s_run(ray_local, tmp_path_factory, no_tracking_env_module):
    runs = tmp_path_factory.mktemp("runs")
    return run_benchmark(load_spec(SPEC), runs_dir=runs, run_id="s2s", log=lambda line: None)


def test_distributed_scores_equal_the_token_scores_of_the_full_distributions(s2s_run, monkeypatch):
    import engine.training.seq2seq as s2s
    from engine.scores.seq2seq import token_action, token_confusion

    spec = load_spec(SPEC)
    data = load_data(spec)
    full = []
    reduce_epoch = s2s.reduce_epoch

    def keep_full(models, d, device="cpu"):  # the replicas' whole (N, T, V) log-probs, each epoch
        with torch.no_grad():
            src, dec = torch.from_numpy(d.source_ids), torch.from_numpy(d.decoder_ids)
            full.append(np.stack([torch.log_softmax(m(src, dec), -1).numpy() for m in models]))
        return reduce_epoch(models, d, device)

    monkeypatch.setattr(s2s, "reduce_epoch", keep_full)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(spec.replicas.cpus_per_worker))  # as in the Ray task
    try:
        s2s.train_seq2seq(
            data, spec.replicas.recipe, spec.replicas.seeds(), on_epoch=lambda e, r: None
        )
    finally:
        torch.set_num_threads(threads)
    logp = np.stack(full, axis=1)  # (R, E, N, T, V)
    table = pq.read_table(s2s_run.run_dir / "scores.parquet")
    assert table.num_rows == 240
    mask = data.target_mask
    np.testing.assert_allclose(
        table.column("confusion").to_numpy(), token_confusion(np.exp(logp), mask), atol=1e-4
    )
    np.testing.assert_allclose(  # losses are float16 in the reduced shards
        table.column("action").to_numpy(), token_action(logp, data.target_ids, mask), rtol=2e-3
    )


def test_splits_rouge_report_and_mlflow(s2s_run):
    from mlflow.tracking import MlflowClient

    from engine.splits.display import format_params
    from engine.training.seq2seq import make_model

    run = s2s_run.run_dir
    pool = pq.read_table(run / "benchmark" / "splits" / "pool.parquet")
    assert {"source", "reference", "references"} <= set(pool.column_names)
    evals = json.loads((run / "eval" / "metrics.json").read_text())
    assert [e["model"] for e in evals] == ["generator"]
    ev = evals[0]
    assert 0 <= ev["rouge_l_all"] <= 1 and ev["nll_all"] > 0 and len(ev["rouge_l_per_bin"]) == 5
    preds = pq.read_table(run / "eval" / "predictions.parquet")
    assert preds.num_rows == pool.num_rows
    assert np.mean(preds.column("rouge_l_generator").to_numpy()) == pytest.approx(ev["rouge_l_all"])
    page = (run / "report.html").read_text()
    assert "Action vs confusion" in page
    spec = load_spec(SPEC)
    generator = make_model(spec.evaluate.models[0].recipe, load_data(spec), seed=0)
    params = sum(p.numel() for p in generator.parameters())
    assert isinstance(ev["params"], int) and ev["params"] == params > 0
    assert f"<td>generator</td><td>{format_params(params)}</td>" in page
    client = MlflowClient(tracking_uri=f"sqlite:///{run.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hardbench-tests")
    assert len(client.search_runs([exp.experiment_id])) == 2  # parent + generator


def test_scores_and_splits_equal_the_golden_values(s2s_run):
    from tests.golden import check_golden

    check_golden("tiny-seq2seq", s2s_run.run_dir)


def test_metrics_equal_the_golden_values(s2s_run):
    from tests.golden import check_golden_metrics

    check_golden_metrics("tiny-seq2seq", s2s_run.run_dir)


def test_misses_are_read_from_the_decodings_and_the_scores_compared(s2s_run):
    import math

    from engine.evaluation.text_eval import MISS_ROUGE_L

    run = s2s_run.run_dir
    preds = pq.read_table(run / "eval" / "predictions.parquet")
    miss = preds.column("miss_generator").to_numpy()
    rouge = preds.column("rouge_l_generator").to_numpy()
    np.testing.assert_array_equal(miss, rouge <= MISS_ROUGE_L)  # no NLL in the miss
    comparison = json.loads((run / "eval" / "score_comparison.json").read_text())
    transfer = json.loads((run / "eval" / "transfer.json").read_text())
    assert transfer["spearman_action_confusion"] == comparison["spearman_action_confusion"]
    assert comparison["scores"] == ["action", "confusion", "confidence", "variability"]
    assert comparison["misses"] == {"generator": int(miss.sum())}
    aucs = comparison["auroc"]["generator"]
    assert set(aucs) == set(load_spec(SPEC).scores)
    if miss.all() or not miss.any():  # a generator too weak (or too good) to tell samples apart
        assert all(math.isnan(v) for v in aucs.values())
    else:
        assert all(0 <= v <= 1 for v in aucs.values())
    assert f"AUROC for generator's misses ({int(miss.sum())} of {len(miss)})" in s2s_run.table
    page = (run / "report.html").read_text()
    assert "Rank agreement of the scores (Spearman)" in page
    assert f"ROUGE-L F of the greedy decoding &lt;= {MISS_ROUGE_L:g}" in page
