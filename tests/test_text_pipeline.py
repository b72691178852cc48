"""The sentiment path end to end through real local Ray: shards, scores, splits with
texts, an evaluated transformer, the report's text table and a text audit."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.lifecycle import run_benchmark
from engine.spec import load_spec

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def text_run(ray_local, tmp_path_factory, no_tracking_env_module):
    runs = tmp_path_factory.mktemp("runs")
    return run_benchmark(load_spec("tests/fixtures/tiny-text.yaml"), runs_dir=runs,
                         run_id="text", log=lambda line: None)  # fmt: skip


def test_text_run_is_complete_with_texts_in_the_splits(text_run):
    run = text_run.run_dir
    shards = sorted(run.glob("preds/replica=*/epoch=*/block=*.parquet"))
    assert len(shards) == 2 * 2 * 4  # 12,752 snippets in 4,096-sample blocks
    scores = pq.read_table(run / "scores.parquet")
    assert scores.num_rows == 12752
    conf = scores.column("confusion").to_numpy()
    assert np.all((conf >= 0) & (conf <= np.log(2) + 2e-3))  # float16 probabilities
    hard = pq.read_table(run / "benchmark" / "splits" / "hard.parquet")
    assert hard.num_rows == 382 and "input" not in hard.column_names  # ids: in the token cache
    from engine.data.text import MAX_LEN
    from engine.splits.inputs import row_inputs

    ids = row_inputs(hard, (MAX_LEN,))[:]
    assert ids.dtype == np.int64 and ids.shape == (382, MAX_LEN) and np.all(ids[:, 0] == 2)
    assert all(isinstance(t, str) and t for t in hard.column("text").to_pylist())
    assert {ev["model"] for ev in text_run.evaluations} == {"ensemble", "small_transformer"}
    import html

    report = (run / "report.html").read_text()
    pool = pq.read_table(run / "benchmark" / "splits" / "pool.parquet")
    rotten = np.flatnonzero(pool.column("label").to_numpy() == 0)
    hardest = rotten[np.argmax(pool.column("confusion").to_numpy()[rotten])]
    assert "Hardest and easiest texts" in report
    assert html.escape(pool.column("text")[int(hardest)].as_py()) in report


def test_text_audit_shows_the_texts(text_run):
    from engine.cli import main

    assert (
        main(["audit", str(text_run.run_dir), "--folds", "2", "--top", "10", "--split", "heldout"])
        == 0
    )
    (audit_dir,) = (text_run.run_dir / "audit").iterdir()
    page = (audit_dir / "audit.html").read_text()
    assert page.count('<span class="text">') == 10 and "<img " not in page
    assert json.loads((audit_dir / "audit.json").read_text())["samples"] == 3825


def test_a_local_hf_classifier_reads_the_texts_with_its_own_tokenizer(text_run, tmp_path):
    import re
    from collections import Counter

    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from engine.lifecycle import RunSetupError, evaluate_model_on_run

    pool = pq.read_table(text_run.run_dir / "benchmark" / "splits" / "pool.parquet")
    texts, labels = pool.column("text").to_pylist(), pool.column("label").to_numpy()
    # A tiny classifier with its own word-piece vocabulary, saved as a user would.
    words = Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(w for w, _ in words.most_common(400))]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    torch.manual_seed(3)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=2)  # fmt: skip
    model = BertForSequenceClassification(config).eval()
    hf_dir = tmp_path / "hf"
    model.save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)

    ev = evaluate_model_on_run(
        text_run.run_dir, model="hf_sequence_classifier", label="local_bert",
        model_kwargs={"path": str(hf_dir)},
    )  # fmt: skip
    with torch.no_grad():
        enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        pred = model(**enc).logits.argmax(1).numpy()
    assert ev["num_misses"] == int((pred != labels).sum())
    assert ev["error_all"] == pytest.approx(float((pred != labels).mean()))

    from engine.cli import main

    assert main(["eval", str(text_run.run_dir), "--model", "hf_sequence_classifier",
                 "--label", "cli_bert", "--model-kwargs", f"path={hf_dir}"]) == 0  # fmt: skip
    no_tok = tmp_path / "model-only"
    model.save_pretrained(no_tok)
    with pytest.raises(RunSetupError, match=r"no tokenizer in .*model-only"):
        evaluate_model_on_run(text_run.run_dir, model="hf_sequence_classifier",
                              model_kwargs={"path": str(no_tok)})  # fmt: skip


def test_scores_and_splits_equal_the_golden_values(text_run):
    from tests.golden import check_golden

    check_golden("tiny-text", text_run.run_dir)


def test_metrics_equal_the_golden_values(text_run):
    from tests.golden import check_golden_metrics

    check_golden_metrics("tiny-text", text_run.run_dir)


def test_the_scores_are_compared_in_eval_the_printed_table_the_report_and_mlflow(text_run):
    from mlflow.tracking import MlflowClient
    from scipy.stats import spearmanr

    from engine.evaluation.metrics import auroc
    from engine.scores import hardness

    run = text_run.run_dir
    comparison = json.loads((run / "eval" / "score_comparison.json").read_text())
    assert comparison["scores"] == ["action", "confusion", "confidence", "variability"]
    scores = pq.read_table(run / "scores.parquet")
    act, conf = (scores.column(c).to_numpy() for c in ("action", "confidence"))
    matrix = comparison["spearman"]["all"]
    assert matrix[0][2] == pytest.approx(spearmanr(act, -conf).statistic)  # both as hardness
    assert comparison["spearman_action_confusion"]["all"] == matrix[0][1]
    preds = pq.read_table(run / "eval" / "predictions.parquet")
    pool, labels = preds.column("sample_id").to_numpy(), preds.column("label").to_numpy()
    assert set(comparison["auroc"]) == {"ensemble", "small_transformer"}
    miss = preds.column("pred_small_transformer").to_numpy() != labels
    assert comparison["misses"]["small_transformer"] == miss.sum() > 0
    aucs = comparison["auroc"]["small_transformer"]
    cis = comparison["auroc_ci95"]["small_transformer"]
    assert set(aucs) == set(load_spec("tests/fixtures/tiny-text.yaml").scores)  # every score
    for score, value in aucs.items():
        want = auroc(hardness(score, scores.column(score).to_numpy()[pool]), miss)
        assert value == pytest.approx(want) and cis[score][0] <= value <= cis[score][1], score
    assert "Spearman(action, confidence): all " in text_run.table
    assert f"AUROC for small_transformer's misses ({miss.sum()} of {len(pool)}): " in text_run.table
    page = (run / "report.html").read_text()
    assert "Rank agreement of the scores (Spearman)" in page
    assert "Scores as predictors of misses (AUROC [95% interval])" in page
    assert f"<td>small_transformer</td><td>{miss.sum()} of {len(pool)}</td>" in page
    client = MlflowClient(tracking_uri=f"sqlite:///{run.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hardbench-tests")
    parent = next(r for r in client.search_runs([exp.experiment_id])
                  if "mlflow.parentRunId" not in r.data.tags)  # fmt: skip
    assert parent.data.metrics["auroc_small_transformer_confusion"] == pytest.approx(
        aucs["confusion"]
    )
    assert parent.data.metrics["spearman_action_confidence_all"] == pytest.approx(matrix[0][2])


def test_text_vog_on_the_embedded_tokens_end_to_end(ray_local, tmp_path, no_tracking_env):
    """Issue 28: vog on token ids is recorded, stored (padding as NaN) and scored."""
    from engine.data.text import MAX_LEN

    overrides = ["scores=[confusion,action,vog]", "shards.grad_epochs=[0,1]", "evaluate.models=[]",
                 "data.limit=2000"]  # fmt: skip
    spec = load_spec("tests/fixtures/tiny-text.yaml", overrides)
    run = run_benchmark(spec, runs_dir=tmp_path, run_id="text-vog", log=lambda line: None).run_dir
    scores = pq.read_table(run / "scores.parquet").to_pandas()
    assert len(scores) == 2000 and np.isfinite(scores.vog).all()
    groups = scores.groupby(["split", "label"]).vog  # z-scored within (split, class)
    np.testing.assert_allclose(groups.mean().to_numpy(), 0.0, atol=1e-9)
    np.testing.assert_allclose(groups.std(ddof=0).to_numpy(), 1.0, atol=1e-9)
    shard = pq.read_table(run / "preds" / "replica=1" / "epoch=1" / "block=0.parquet")
    grads = np.stack(shard.column("input_grad").to_numpy(zero_copy_only=False))
    grads = grads.reshape(len(grads), MAX_LEN, 16)  # positions x embedding width (dim: 16)
    padded = np.isnan(grads).all(axis=2)
    assert np.array_equal(padded, np.isnan(grads).any(axis=2))  # a position: all NaN or none
    assert not padded[:, 0].any() and padded.any()  # [CLS] is real; snippets are padded
    assert np.all(np.diff(padded.astype(int), axis=1) >= 0)  # right padding only
