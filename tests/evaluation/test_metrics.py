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
