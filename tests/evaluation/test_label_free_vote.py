"""An unlabelled pool's disagreement leaves the scorer's ensemble out of the vote (issue 27).

The replicas' ensemble is the scorer whose confusion cut the bins: a vote it joins is
circular. ``disagreement_*`` is against the other *evaluated* models only;
``disagreement_with_scorer_*`` keeps the old vote under its own name; a model with no
other evaluated model has no disagreement (NaN, and the table says why).
"""

import math
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from engine.evaluation.label_free import (
    NO_OTHER_MODELS,
    evaluate_label_free,
    format_label_free_table,
    majority_vote,
)
from engine.spec import load_spec
from engine.splits.builder import BuiltSplits
from engine.splits.card import card_markdown, make_card
from engine.tasks.base import RunContext
from engine.tasks.classification import ClassificationTask

K, P = 3, 6  # classes, pool samples
A = np.full(P, 2)  # model a predicts class 2 everywhere
B = np.array([2, 2, 2, 2, 2, 1])  # model b agrees with a but on the last sample
SCORER = np.zeros(P, dtype=int)  # the replicas' ensemble predicts class 0 everywhere


def _built() -> BuiltSplits:
    score = np.linspace(0.0, 1.0, P)  # confusion: higher = harder
    return BuiltSplits(sample_ids=np.arange(P), labels=np.full(P, -1), score=score,
                       bins=np.array([0, 0, 1, 1, 2, 2]), is_hard=score > 0.7,
                       bin_edges=np.array([[0.0, 0.2], [0.4, 0.6], [0.8, 1.0]]), files={})  # fmt: skip


def _logits(pred: np.ndarray) -> np.ndarray:
    out = np.zeros((len(pred), K))
    out[np.arange(len(pred)), pred] = 4.0
    return out


def _evaluate(tmp_path, outputs: dict[str, np.ndarray]):
    """The classification plugin's label-free evaluation of ``outputs`` on the crafted pool."""
    models = ", ".join(f"{{name: {n}, model: mlp, epochs: 1, model_kwargs: {{hidden: 8}}}}"
                       for n in outputs)  # fmt: skip
    spec = load_spec(
        "benchmarks/digits.yaml", ["scores=[confusion]", f"evaluate.models=[{models}]"]
    )
    built = _built()
    scores = pa.table({"sample_id": np.arange(P), "split": ["heldout"] * P, "label": np.full(P, -1),
                       "confusion": built.score, "ensemble_pred": SCORER,
                       "ensemble_conf": np.full(P, 0.9)})  # fmt: skip
    ctx = RunContext(run_dir=tmp_path, run_id="free", spec=spec,
                     data=SimpleNamespace(num_classes=K, input_shape=(1, 8, 8)))  # fmt: skip
    evaluation = ClassificationTask().evaluate(ctx, scores, built, outputs)
    return spec, built, scores, evaluation


def test_the_plugins_disagreement_is_with_the_other_evaluated_models_not_the_scorer(tmp_path):
    _, _, _, evaluation = _evaluate(tmp_path, {"a": _logits(A), "b": _logits(B)})
    evs = {ev["model"]: ev for ev in evaluation.evaluations}
    for name in ("a", "b"):
        ev = evs[name]
        # against the other model alone: they differ on the last sample only
        assert ev["disagreement_all"] == pytest.approx(1 / P)
        assert ev["disagreement_per_bin"] == [0.0, 0.0, 0.5]
        assert ev["disagreement_hard"] == pytest.approx(0.5) and ev["disagreement_rest"] == 0.0
        assert ev["disagreement_note"] is None
        # the old vote with the scorer: (2, 0) or (1, 0) tie to class 0 on every sample
        assert ev["disagreement_with_scorer_all"] == 1.0
    assert "disagreement with the majority of the other evaluated models" in evaluation.table
    assert " / n/a" not in evaluation.table and "disagreement n/a" not in evaluation.table


def test_a_single_evaluated_model_has_no_disagreement_and_the_table_and_card_say_why(tmp_path):
    spec, built, scores, evaluation = _evaluate(tmp_path, {"a": _logits(A)})
    (ev,) = evaluation.evaluations
    for key in ("disagreement_all", "disagreement_hard", "disagreement_rest",
                "pearson_rho", "auroc_score_disagreement"):  # fmt: skip
        assert math.isnan(ev[key]), key
    assert all(math.isnan(d) for d in ev["disagreement_per_bin"])
    assert ev["disagreement_note"] == NO_OTHER_MODELS
    assert ev["disagreement_with_scorer_all"] == 1.0  # a (2) against the scorer (0)
    assert f"a: disagreement n/a: {NO_OTHER_MODELS}" in evaluation.table
    assert " / n/a" in evaluation.table
    card = make_card(
        spec_dict=spec.to_dict(), run_id="free", seeds={}, scores=scores,
        provenance={"git": {"commit": "x", "dirty": False}, "packages": {}},
        score_names=spec.scores, built=built, class_names=[f"c{k}" for k in range(K)],
        evaluations=evaluation.evaluations, timings={},
        scored_on={"replicas": [0], "epochs": [0], "complete": True},
    )  # fmt: skip
    markdown = card_markdown(card)
    assert f"- a: disagreement n/a: {NO_OTHER_MODELS}." in markdown
    assert "the scorer's ensemble left out" in markdown


def test_three_models_vote_by_majority_without_the_scorer():
    c = np.array([1, 1, 2, 2, 0, 0])
    b = np.array([1, 2, 2, 0, 0, 1])
    probs = _logits(np.array([1, 1, 1, 2, 2, 2]))
    ev = evaluate_label_free("a", probs, np.stack([b, c]), _built(), scorer=np.full(P, 2))
    # vote of (b, c): 1, 1 (tie 2/1 -> 1), 2, 0 (tie 0/2 -> 0), 0, 0 (tie 1/0 -> 0)
    np.testing.assert_array_equal(majority_vote(np.stack([b, c]), K), [1, 1, 2, 0, 0, 0])
    assert ev["disagreement_all"] == pytest.approx(np.mean([0, 0, 1, 1, 1, 1]))
    # with the scorer's 2: (1,1,2) -> 1, (2,1,2) -> 2, (2,2,2) -> 2, (0,2,2) -> 2, (0,0,2) -> 0,
    # (1,0,2) -> 0: a (1, 1, 1, 2, 2, 2) disagrees on 1, 2, 4, 5
    assert ev["disagreement_with_scorer_all"] == pytest.approx(4 / P)
    table = format_label_free_table(_built(), [ev], "confusion")
    assert "a: Pearson rho(bin, disagreement)" in table


def test_a_vote_of_no_predictions_is_refused():
    with pytest.raises(ValueError, match=r"majority_vote needs \(M >= 1, P\) predictions"):
        majority_vote(np.empty((0, P), dtype=int), K)


def test_label_free_rho_and_auroc_have_intervals():
    from engine.evaluation.label_free import evaluate_label_free

    rng = np.random.default_rng(4)
    n, k = 400, 3
    score = np.sort(rng.random(n))  # confusion, higher = harder
    bins = np.minimum(np.arange(n) * 5 // n, 4)
    built = BuiltSplits(sample_ids=np.arange(n), labels=np.full(n, -1), score=score, bins=bins,
                        is_hard=bins == 4, bin_edges=np.zeros((5, 2)), files={})  # fmt: skip
    probs = np.full((n, k), 1 / k)
    probs[:, 0] += 0.1
    probs /= probs.sum(axis=1, keepdims=True)  # the model always says class 0
    other = np.where(rng.random(n) < score, 1, 0)  # the other disagrees more on harder samples
    ev = evaluate_label_free("m", probs, other.reshape(1, n), built, seed=5)
    lo, hi = ev["pearson_rho_ci95"]
    assert lo <= ev["pearson_rho"] <= hi and ev["pearson_rho"] > 0.9
    lo, hi = ev["auroc_score_disagreement_ci95"]
    assert lo <= ev["auroc_score_disagreement"] <= hi and ev["auroc_score_disagreement"] > 0.7
    assert evaluate_label_free("m", probs, other.reshape(1, n), built, seed=5) == ev
