"""Confusion vs accuracy across models: hand-checked means, scipy's correlations, intervals."""

import math

import numpy as np
import pytest
from scipy import stats

from engine.evaluation.model_confusion import confusion_vs_accuracy, softmax_entropy
from engine.splits.display import format_confusion_vs_accuracy


def _probs(rng: np.random.Generator, labels: np.ndarray, sharpness: float) -> np.ndarray:
    logits = rng.normal(size=(len(labels), 4))
    logits[np.arange(len(labels)), labels] += sharpness
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def test_entropy_in_nats_with_zero_probabilities():
    p = np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(softmax_entropy(p), [0.0, math.log(4), math.log(2)])


def test_more_confused_models_are_less_accurate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 500)
    probs = {f"m{s}": _probs(rng, labels, s) for s in (0.5, 1.0, 2.0, 3.0)}
    rec = confusion_vs_accuracy(probs, labels, n_boot=200, seed=1)
    conf = [softmax_entropy(p).mean() for p in probs.values()]
    acc = [(p.argmax(1) == labels).mean() for p in probs.values()]
    assert [rec["models"][n]["mean_confusion"] for n in probs] == pytest.approx(conf)
    assert [rec["models"][n]["accuracy"] for n in probs] == pytest.approx(acc)
    assert rec["pearson"] == pytest.approx(stats.pearsonr(conf, acc).statistic)
    assert rec["spearman"] == pytest.approx(stats.spearmanr(conf, acc).statistic) == -1.0
    lo, hi = rec["pearson_ci95"]
    assert lo <= rec["pearson"] <= hi < 0
    assert confusion_vs_accuracy(probs, labels, n_boot=200, seed=1) == rec  # seeded
    assert "Pearson -0.9" in format_confusion_vs_accuracy(rec)


def test_too_few_models_say_so():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 50)
    rec = confusion_vs_accuracy({"a": _probs(rng, labels, 1.0), "b": _probs(rng, labels, 2.0)},
                                labels)  # fmt: skip
    assert math.isnan(rec["pearson"]) and "needs 3" in rec["note"]
    assert "n/a" in format_confusion_vs_accuracy(rec)
