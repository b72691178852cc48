"""Per-sample set F1, exact match and Hamming of multi-label predictions, by hand."""

import numpy as np
import pytest

from engine.evaluation.set_metrics import multilabel_quality


def test_set_f1_exact_match_and_hamming_by_hand():
    truth = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 0]], np.uint8)
    probs = np.array([[0.9, 0.2, 0.7], [0.9, 0.8, 0.1], [0.1, 0.5, 0.2], [0.1, 0.2, 0.3]])
    f1, miss, extra = multilabel_quality("m", truth, probs)
    # right; P={0,1} T={0}: 2*1/3; p = 0.5 is absent: empty P vs T={1} is 0; both empty: 1
    np.testing.assert_allclose(f1, [1.0, 2 / 3, 0.0, 1.0])
    assert miss.tolist() == [False, True, True, False]
    np.testing.assert_array_equal(extra["exact_match"], [1, 0, 0, 1])
    np.testing.assert_allclose(extra["hamming"], [0, 1 / 3, 1 / 3, 0])


def test_shapes_must_agree():
    with pytest.raises(ValueError, match=r"m: probabilities of shape \(2, 3\)"):
        multilabel_quality("m", np.ones((2, 2), np.uint8), np.ones((2, 3)))
