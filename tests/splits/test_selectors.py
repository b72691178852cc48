import math

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


def test_bottom_fraction_and_threshold():
    from engine.splits.selectors import bottom_fraction, threshold

    scores = np.array([0.5, -1.0, 2.0, -1.0, 0.0])
    ids = np.arange(5)
    assert set(ids[bottom_fraction(scores, ids, 0.4)]) == {1, 3}
    np.testing.assert_array_equal(
        threshold(scores, min_score=0.5), [True, False, True, False, False]
    )
    np.testing.assert_array_equal(
        threshold(scores, max_score=-1.0), [False, True, False, True, False]
    )
    with pytest.raises(ValueError, match="exactly one"):
        threshold(scores)


def test_per_class_fraction_with_minimum():
    from engine.splits.selectors import per_class

    labels = np.array([0] * 10 + [1] * 4 + [2] * 1)
    scores = np.r_[np.arange(10.0), np.array([5.0, 1.0, 3.0, 2.0]), np.array([0.0])]
    ids = np.arange(15)
    mask = per_class(scores, ids, labels, fraction=0.2, descending=True, min_per_class=3)
    # class 0: round(0.2*10)=2 -> raised to 3 (ids 9, 8, 7); class 1: 3 highest (10, 12, 13); class 2: all it has
    assert set(ids[mask]) == {9, 8, 7, 10, 12, 13, 14}
    low = per_class(scores, ids, labels, fraction=0.2, descending=False)
    assert set(ids[low]) == {0, 1, 11, 14}


def test_edge_bins_match_the_papers_threshold_rule():
    from engine.splits.selectors import edge_bins

    np.testing.assert_array_equal(edge_bins(np.array([4.9, 5.0, 7.0, -1.0]), [5.0]), [0, 1, 1, 0])
    np.testing.assert_array_equal(edge_bins(np.array([0.1, 0.5, 1.0]), [0.5, 1.0]), [0, 1, 2])


def test_width_edges_cover_the_scores_up_to_ln_k():
    from engine.splits.selectors import width_bins, width_edges

    k = 10
    scores = np.array([0.0, 0.3, 1.0, 1.99, math.log(k)])  # ln 10 = 2.303: top bin [2, 3)
    edges = width_edges(scores, 1.0)
    np.testing.assert_array_equal(edges, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(width_bins(scores, edges), [0, 0, 1, 1, 2])  # 1.0 opens [1, 2)
    half = width_edges(scores, 0.5)
    assert half[0] == 0.0 and half[-1] == 2.5 and len(half) == 6
    top = np.array([0.2, 2.0])  # the max on an edge: that edge closes the last bin
    np.testing.assert_array_equal(width_edges(top, 1.0), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(width_bins(top, width_edges(top, 1.0)), [0, 1])


def test_width_bins_leave_empty_bins_and_mark_outside_values():
    from engine.splits.selectors import width_bins, width_edges

    scores = np.array([0.1, 0.2, 2.5])  # nothing in [1, 2): an empty bin, kept
    edges = width_edges(scores, 1.0)
    bins = width_bins(scores, edges)
    np.testing.assert_array_equal(bins, [0, 0, 2])
    assert np.bincount(bins, minlength=3).tolist() == [2, 0, 1]
    np.testing.assert_array_equal(width_bins(np.array([-0.5, 3.5, np.nan]), edges), [-1, -1, -1])
    negative = width_edges(np.array([-1.5, 0.4]), 1.0)  # a score below 0 (AUM): edges from -2
    np.testing.assert_array_equal(negative, [-2.0, -1.0, 0.0, 1.0])


def test_bins_width_is_a_positive_number_or_null():
    from engine.spec import BinsSpec, SpecError, load_spec

    assert BinsSpec().width == 1.0 and BinsSpec(width=None).width is None
    with pytest.raises(SpecError, match=r"splits\.bins\.width: must be a positive number"):
        load_spec("benchmarks/digits.yaml", ["splits.bins.width=0"])
