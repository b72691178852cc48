import numpy as np
import pytest

from engine.splits.selectors import quantile_bins, top_fraction


def test_top_fraction_exact_membership():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.0])
    ids = np.arange(10) + 100
    mask = top_fraction(scores, ids, 0.3)
    assert set(ids[mask]) == {101, 105, 103}


def test_top_fraction_ties_broken_by_lowest_sample_id():
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.5])
    ids = np.array([10, 13, 11, 12, 14])
    mask = top_fraction(scores, ids, 0.4)  # 2 of 5
    assert set(ids[mask]) == {11, 12}


def test_top_fraction_at_least_one_and_rejects_bad_fraction():
    assert top_fraction(np.array([1.0, 2.0]), np.array([0, 1]), 0.01).sum() == 1
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        top_fraction(np.array([1.0]), np.array([0]), 1.0)


def test_quantile_bins_equal_count_and_ordered():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=103)
    bins = quantile_bins(scores, np.arange(103), 5)
    counts = np.bincount(bins)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 103
    for b in range(4):
        assert scores[bins == b].max() <= scores[bins == b + 1].min()


def test_quantile_bins_constant_scores_deterministic():
    bins = quantile_bins(np.zeros(6), np.array([5, 4, 3, 2, 1, 0]), 3)
    np.testing.assert_array_equal(bins, [2, 2, 1, 1, 0, 0])
