"""Text benchmarks cut by the shared split builder, end to end through real local Ray (issue 25).

One QA run takes the split settings the text tasks refused before: a threshold rule on
a lower-is-harder score, fixed bin edges, every sample as the pool and the ``hf``
export. One text-classification run scores an unlabelled pool of texts (a labelled
table to train on, a table without labels to score) and cuts label-free splits. Each
test checks that the files follow its setting, against the run's own scores.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.lifecycle import run_benchmark
from engine.spec import load_spec
from engine.tasks import load_data

pytestmark = [pytest.mark.ray, pytest.mark.slow]

QA = "tests/fixtures/tiny-qa.yaml"
AUM_HARD = -0.15  # the QA run's hard rule: aum <= this (AUM: lower = harder)
AUM_EDGES = [-0.2, -0.1]  # its bin edges, in AUM units: bin 0 = highest AUM = easiest
QA_SPLITS = [
    "splits.pool=all",
    "splits.score=aum",
    f"splits.hard={{max_score: {AUM_HARD}}}",
    f"splits.bins={{edges: [{AUM_EDGES[0]}, {AUM_EDGES[1]}]}}",
    "splits.exports=[parquet, hf]",
]
TRAIN_REVIEWS, POOL_REVIEWS = 600, 200  # labelled reviews to train on, unlabelled ones to score


def _hf_equals_parquet(splits_dir: Path, hf_dir: Path) -> None:
    from datasets import load_from_disk

    hf = load_from_disk(str(hf_dir))
    files = {p.stem: p for p in splits_dir.glob("*.parquet")}
    assert set(hf) == set(files)
    for name, path in files.items():
        table = pq.read_table(path)
        assert hf[name].column_names == table.column_names, name
        assert hf[name].to_dict() == table.to_pydict(), name


@pytest.fixture(scope="module")
def qa_run(ray_local, tmp_path_factory, no_tracking_env_module):
    runs = tmp_path_factory.mktemp("runs")
    spec = load_spec(QA, QA_SPLITS)
    return run_benchmark(spec, runs_dir=runs, run_id="qa-rules", log=lambda line: None)


@pytest.fixture(scope="module")
def pool_run(ray_local, tmp_path_factory, no_tracking_env_module):
    from engine.data.text import read_sentiment_corpus

    root = tmp_path_factory.mktemp("reviews")
    texts, labels = read_sentiment_corpus()
    with (root / "train.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "review", "verdict"])
        w.writerows((f"t{i:05d}", texts[i], ["rotten", "fresh"][labels[i]])
                    for i in range(TRAIN_REVIEWS))  # fmt: skip
    pool = {f"p{i:05d}": texts[i] for i in range(TRAIN_REVIEWS, TRAIN_REVIEWS + POOL_REVIEWS)}
    with (root / "pool.csv").open("w", newline="") as f:  # no label column
        w = csv.writer(f)
        w.writerow(["id", "review"])
        w.writerows(pool.items())
    spec_path = root / "reviews.yaml"
    spec_path.write_text(f"""
metadata: {{name: review-pool, version: 1, description: labelled reviews and unlabelled ones}}
data:
  train: {{source: table, path: {root / "train.csv"}, text_column: review,
          label_column: verdict, id_column: id}}
  pool: {{source: table, path: {root / "pool.csv"}, text_column: review, label_column: null,
         id_column: id}}
replicas: {{count: 2, model: text_mlp, model_kwargs: {{dim: 16, hidden: 16}}, epochs: 2,
           batch_size: 64, optimizer: adamw, lr: 0.01, num_workers: 2, cpus_per_worker: 0.5}}
scores: [confusion, ensemble_max_prob]
shards: {{block_size: 256}}
splits: {{score: confusion, hard: {{hardest_fraction: 0.2}}, bins: {{count: 3}},
          exports: [parquet, hf]}}
evaluate:
  models: [{{name: mlp, model: text_mlp, model_kwargs: {{dim: 32, hidden: 32}}, epochs: 2,
             optimizer: adamw, lr: 0.01, cpus: 0.5}}]
tracking: {{experiment: hardbench-tests}}
""")
    result = run_benchmark(load_spec(spec_path), runs_dir=root / "runs", run_id="pool",
                           log=lambda line: None)  # fmt: skip
    return result, pool


def test_qa_splits_follow_a_threshold_rule_and_bin_edges_over_every_sample(qa_run):
    run = qa_run.run_dir
    aum = pq.read_table(run / "scores.parquet").column("aum").to_numpy()
    pool = pq.read_table(run / "benchmark" / "splits" / "pool.parquet")
    assert pool.column_names == ["sample_id", "confusion", "action", "aum", "bin", "is_hard",
                                 "question", "context", "answer"]  # fmt: skip
    np.testing.assert_array_equal(pool.column("sample_id").to_numpy(), np.arange(len(aum)))
    is_hard = pool.column("is_hard").to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(is_hard, aum <= AUM_HARD)
    assert 0 < is_hard.sum() < len(aum)
    # a value on an edge goes to the harder bin; bin 0 holds the highest (easiest) AUM
    want_bins = (aum <= AUM_EDGES[1]).astype(int) + (aum <= AUM_EDGES[0])
    np.testing.assert_array_equal(pool.column("bin").to_numpy(), want_bins)
    assert set(want_bins.tolist()) == {0, 1, 2}
    card = json.loads((run / "benchmark" / "card.json").read_text())
    assert card["splits"]["hard"]["rule"] == "max_score"
    assert card["splits"]["hard"]["count"] == int(is_hard.sum())
    assert [b["count"] for b in card["splits"]["bins"]] == np.bincount(want_bins).tolist()
    evaluations = json.loads((run / "eval" / "metrics.json").read_text())
    assert [ev["model"] for ev in evaluations] == ["ensemble", "reader"]
    assert all(len(ev["error_per_bin"]) == 3 for ev in evaluations)


def test_qa_hf_export_loads_back_with_the_texts_of_every_split(qa_run):
    run = qa_run.run_dir
    hf_dir = run / "benchmark" / "hf"
    _hf_equals_parquet(run / "benchmark" / "splits", hf_dir)
    from datasets import load_from_disk

    data = load_data(load_spec(QA, QA_SPLITS))
    hard = load_from_disk(str(hf_dir))["hard"]
    assert hard["question"] == [data.questions[i] for i in hard["sample_id"]]
    assert hard["answer"] == [data.answers[i] for i in hard["sample_id"]]


def test_an_unlabelled_pool_of_texts_gets_label_free_splits_and_an_hf_export(pool_run):
    result, reviews = pool_run
    run = result.run_dir
    pool = pq.read_table(run / "benchmark" / "splits" / "pool.parquet")
    assert "label" not in pool.column_names and pool.num_rows == POOL_REVIEWS
    keys = pool.column("key").to_pylist()
    assert sorted(keys) == sorted(f"pool/{k}" for k in reviews)
    assert pool.column("text").to_pylist() == [reviews[k.removeprefix("pool/")] for k in keys]
    scores = pq.read_table(run / "scores.parquet")
    assert scores.column("label").null_count == TRAIN_REVIEWS + POOL_REVIEWS  # none read
    hard = pq.read_table(run / "benchmark" / "splits" / "hard.parquet")
    rest = pq.read_table(run / "benchmark" / "splits" / "rest.parquet")
    assert hard.num_rows == round(0.2 * POOL_REVIEWS)
    assert min(hard.column("confusion").to_pylist()) >= max(rest.column("confusion").to_pylist())
    (mlp,) = result.evaluations
    assert mlp["model"] == "mlp" and mlp["label_free"] and np.isnan(mlp["error_all"])
    assert len(mlp["disagreement_per_bin"]) == 3
    _hf_equals_parquet(run / "benchmark" / "splits", run / "benchmark" / "hf")
