import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from engine.evaluation import auroc, error_per_bin, pearson_bin_error, top1_error


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=200).astype(float)
    labels = rng.random(200) < 0.3
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_perfect_and_undefined():
    assert auroc(np.array([0.1, 0.2, 0.9]), np.array([False, False, True])) == 1.0
    with pytest.warns(UserWarning, match="undefined"):
        assert math.isnan(auroc(np.array([0.1, 0.2]), np.array([False, False])))


def test_error_per_bin_and_pearson():
    labels = np.zeros(8, dtype=int)
    preds = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    bins = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    errs = error_per_bin(labels, preds, bins, 4)
    np.testing.assert_allclose(errs, [0.0, 0.5, 0.5, 1.0])
    rho, p = pearson_bin_error(errs)
    assert rho == pytest.approx(np.corrcoef(np.arange(4), errs)[0, 1])
    assert 0 <= p <= 1
    assert top1_error(labels, preds) == 0.5


def test_pearson_nan_for_constant_errors_and_empty_bin():
    assert math.isnan(pearson_bin_error(np.zeros(5))[0])
    errs = error_per_bin(np.array([0]), np.array([1]), np.array([0]), 2)
    assert errs[0] == 1.0 and math.isnan(errs[1])


def test_bins_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        error_per_bin(np.array([0]), np.array([0]), np.array([2]), 2)


def test_kendall_tau_matches_scipy_and_handles_constants():
    from scipy import stats

    from engine.evaluation import kendall_tau

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert kendall_tau(a, b)[0] == pytest.approx(stats.kendalltau(a, b).statistic)
    assert kendall_tau(a, 2 * a + 1)[0] == pytest.approx(1.0)
    assert math.isnan(kendall_tau(a, np.zeros(50))[0])


def test_expected_calibration_error_hand_computed():
    from engine.evaluation import expected_calibration_error

    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, False, True, True])
    # bin (0.9, 1]: acc 0.5 vs conf 0.95 -> 0.45 * 2/4; bin (0.5, 0.6]: acc 1 vs 0.55 -> 0.45 * 2/4
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.45)
    assert expected_calibration_error(np.ones(3), np.ones(3, bool)) == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(np.array([1.5]), np.array([True]))


def test_bootstrap_ci_covers_the_error_and_is_seeded():
    from engine.evaluation import bootstrap_ci

    wrong = np.r_[np.ones(20, bool), np.zeros(80, bool)]
    lo, hi = bootstrap_ci(wrong, seed=1)
    assert lo < 0.2 < hi and 0.08 < hi - lo < 0.25
    assert bootstrap_ci(wrong, seed=1) == (lo, hi)
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([], bool)))


def test_metric_registry():
    from engine.evaluation import METRICS, get_metric

    assert {
        "top1_error",
        "kendall_tau",
        "auroc",
        "expected_calibration_error",
        "bootstrap_ci",
    } <= set(METRICS)
    assert get_metric("auroc") is auroc
    with pytest.raises(ValueError, match="Did you mean 'auroc'"):
        get_metric("aurco")
