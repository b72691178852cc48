"""``splits.pool: train|all``: every evaluated model is measured on samples it trained on (issue 27).

The classification plugin's evaluation stage runs on a crafted pool (no Ray, no
training: the models' logits are given); its evaluations, its end-of-run table, the
card and the HTML report built from them must mark every model in-sample and say why,
while the replicas' own ensemble stays the scorer the transfer figures leave out.
"""

import json
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.layout import BENCHMARK_DIR, SCORES_FILE, SPLITS_DIR
from engine.spec import load_spec
from engine.splits.builder import BuiltSplits
from engine.splits.card import card_markdown, make_card, write_card
from engine.splits.display import display_name, is_scorer, transfer_rows
from engine.tasks.base import RunContext
from engine.tasks.classification import ClassificationTask
from engine.tracking.report import build_report

K, P = 3, 12  # classes, pool samples
MODELS = ("evaluate.models=[{name: a, model: mlp, epochs: 1, model_kwargs: {hidden: 8}}, "
          "{name: b, model: mlp, epochs: 1, model_kwargs: {hidden: 16}}]")  # fmt: skip
REASON = "the pool includes its training samples (splits.pool: {pool})"


def _evaluate(tmp_path, pool: str, *, labelled: bool = True):
    """The classification plugin's evaluation of models ``a`` and ``b`` on a crafted pool."""
    spec = load_spec(
        "benchmarks/digits.yaml", ["scores=[confusion]", f"splits.pool={pool}", MODELS]
    )
    rng = np.random.default_rng(0)
    labels = np.arange(P) % K if labelled else np.full(P, -1)
    score = np.linspace(0.0, 1.0, P)  # confusion: higher = harder
    built = BuiltSplits(
        sample_ids=np.arange(P), labels=labels, score=score, bins=np.arange(P) * 3 // P,
        is_hard=score > 0.8, bin_edges=np.array([[0.0, 0.3], [0.35, 0.6], [0.7, 1.0]]), files={},
    )  # fmt: skip
    scores = pa.table({
        "sample_id": np.arange(P), "split": [pool if pool != "all" else "train"] * P,
        "label": labels, "confusion": score,
        "ensemble_pred": (labels + (score > 0.5)) % K, "ensemble_conf": np.full(P, 0.6),
    })  # fmt: skip
    outputs = {name: rng.normal(size=(P, K)) for name in ("a", "b")}
    ctx = RunContext(run_dir=tmp_path, run_id="pool", spec=spec,
                     data=SimpleNamespace(num_classes=K, input_shape=(1, 8, 8)))  # fmt: skip
    return spec, built, scores, ClassificationTask().evaluate(ctx, scores, built, outputs)


@pytest.mark.parametrize("pool", ["train", "all"])
def test_a_pool_of_training_samples_marks_every_model_in_sample_with_its_reason(tmp_path, pool):
    spec, built, scores, evaluation = _evaluate(tmp_path, pool)
    evs = {ev["model"]: ev for ev in evaluation.evaluations}
    assert list(evs) == ["ensemble", "a", "b"]
    for ev in evs.values():
        assert ev["in_sample"] is True and ev["in_sample_reason"] == REASON.format(pool=pool)
    # the scorer is still found (and only it): the transfer figures leave it out alone
    assert [is_scorer(ev) for ev in evs.values()] == [True, False, False]
    assert [ev["model"] for ev in transfer_rows(evaluation.evaluations)] == ["a", "b"]
    assert [display_name(ev) for ev in evs.values()] == [
        "ensemble (scorer, in-sample)", "a (in-sample)", "b (in-sample)"]  # fmt: skip
    note = f"(in-sample): ensemble, a, b: {REASON.format(pool=pool)}"
    table = evaluation.table
    assert "a (in-sample)" in table and "ensemble (scorer, in-sample)" in table
    assert note in table
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [ev["in_sample_reason"] for ev in saved] == [REASON.format(pool=pool)] * 3

    card = make_card(
        spec_dict=spec.to_dict(), run_id="pool", seeds={}, provenance={}, scores=scores,
        score_names=spec.scores, built=built, class_names=[f"c{k}" for k in range(K)],
        evaluations=evaluation.evaluations, timings={}, scored_on={}, transfer=evaluation.transfer,
    )  # fmt: skip
    card["provenance"] = {"git": {"commit": "x", "dirty": False}, "packages": {}}
    card["scored_on"] = {"replicas": [0], "epochs": [0], "complete": True}
    markdown = card_markdown(card)
    assert "| a (in-sample) |" in markdown and "| b (in-sample) |" in markdown
    assert note in markdown

    write_card(tmp_path, card)
    pq.write_table(scores, tmp_path / SCORES_FILE)
    (tmp_path / BENCHMARK_DIR / SPLITS_DIR).mkdir(parents=True)
    pq.write_table(scores.select(["sample_id", "confusion"]),
                   tmp_path / BENCHMARK_DIR / SPLITS_DIR / "pool.parquet")  # fmt: skip
    page = build_report(tmp_path).read_text()
    assert "<td>a (in-sample)</td>" in page and "<td>b (in-sample)</td>" in page
    assert note in page


def test_a_held_out_pool_marks_only_the_scorer(tmp_path):
    _, _, _, evaluation = _evaluate(tmp_path, "heldout")
    assert [(ev["model"], ev["in_sample"]) for ev in evaluation.evaluations] == [
        ("ensemble", True), ("a", False), ("b", False)]  # fmt: skip
    assert not any("in_sample_reason" in ev for ev in evaluation.evaluations)
    assert "(in-sample):" not in evaluation.table and "a (in-sample)" not in evaluation.table


def test_an_unlabelled_pool_of_training_samples_marks_the_label_free_rows(tmp_path):
    _, _, _, evaluation = _evaluate(tmp_path, "all", labelled=False)
    assert [ev["model"] for ev in evaluation.evaluations] == ["a", "b"]  # no labels: no scorer
    for ev in evaluation.evaluations:
        assert ev["label_free"] and ev["in_sample"] is True
        assert ev["in_sample_reason"] == REASON.format(pool="all")
    assert "a (in-sample)" in evaluation.table
    assert f"(in-sample): a, b: {REASON.format(pool='all')}" in evaluation.table
