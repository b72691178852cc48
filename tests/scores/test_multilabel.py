"""Multi-label scores: hand computations, streaming equality, the L = 1 reduction, bad input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.scores import action, confusion, data_map, forgetting_events
from engine.scores.multilabel import (
    BCE_PROB_CLIP,
    MultilabelActionAccumulator,
    MultilabelConfusionAccumulator,
    MultilabelDataMapAccumulator,
    MultilabelForgettingAccumulator,
    binary_entropy,
    multilabel_action,
    multilabel_confusion,
    multilabel_data_map,
    multilabel_forgetting,
    multilabel_losses,
)

FIELDS = ("confidence", "variability", "correctness")

# R=2, E=2, N=2, L=3 (axes: replica, epoch, sample, label).
HAND_PROBS = np.array(
    [
        [  # replica 0
            [[0.9, 0.2, 0.5], [0.1, 0.1, 0.0]],  # epoch 0: samples 0, 1
            [[1.0, 0.0, 0.6], [0.5, 0.5, 0.5]],  # epoch 1
        ],
        [  # replica 1
            [[0.7, 0.4, 0.5], [0.1, 0.1, 0.2]],
            [[1.0, 0.0, 0.4], [0.5, 0.5, 0.5]],
        ],
    ]
)
HAND_LABELS = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.uint8)


def test_confusion_hand_computed():
    # Replica means: sample 0 epoch 0 (0.8, 0.3, 0.5), epoch 1 (1.0, 0.0, 0.5);
    # sample 1 epoch 0 (0.1, 0.1, 0.1), epoch 1 (0.5, 0.5, 0.5).
    # H(p) = -p ln p - (1-p) ln(1-p): H(0.8) = 0.5004024235, H(0.3) = 0.6108643021,
    # H(0.5) = ln 2 = 0.6931471806, H(0.1) = 0.3250829734, H(1) = H(0) = 0.
    # sample 0: ((0.5004024235 + 0.6108643021 + 0.6931471806) / 3 + (0 + 0 + 0.6931471806) / 3) / 2
    #         = (0.6014713021 + 0.2310490602) / 2 = 0.4162601811
    # sample 1: (0.3250829734 + 0.6931471806) / 2 = 0.5091150770
    np.testing.assert_allclose(
        multilabel_confusion(HAND_PROBS), [0.4162601811, 0.5091150770], rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        binary_entropy(np.array([0.0, 0.5, 1.0])), [0.0, math.log(2), 0.0], rtol=0, atol=0
    )
    assert not np.signbit(binary_entropy(np.array([0.0, 1.0]))).any()


def test_action_hand_computed():
    c = -math.log(1 - BCE_PROB_CLIP)  # a right label at p = 1 or 0, clipped: 1.0000000e-7
    # sample 0, labels (1, 0, 1): BCE summed over labels, then over epochs, mean over replicas
    r0 = (-math.log(0.9) - math.log(0.8) - math.log(0.5)) + (2 * c - math.log(0.6))
    r1 = (-math.log(0.7) - math.log(0.6) - math.log(0.5)) + (2 * c - math.log(0.4))
    # = (1.0216512475 + 0.5108258616 + 1.5606477483 + 0.9162909072) / 2 = 2.0047078757
    # sample 1, labels (0, 0, 1): replica 0 epoch 0 gives p = 0 to a present label, clipped
    # to 1e-7: -ln(1e-7) = 16.1180956510; every epoch-1 label costs ln 2.
    s0 = (-2 * math.log(0.9) - math.log(BCE_PROB_CLIP)) + 3 * math.log(2)
    s1 = (-2 * math.log(0.9) - math.log(0.2)) + 3 * math.log(2)
    expected = [(r0 + r1) / 2, (s0 + s1) / 2]
    np.testing.assert_allclose(expected, [2.0047078757, 11.1539293547], rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        multilabel_action(HAND_LABELS, HAND_PROBS), expected, rtol=0, atol=1e-12
    )
    losses = multilabel_losses(HAND_LABELS, HAND_PROBS)
    assert losses.shape == (2, 2, 2)
    np.testing.assert_allclose(losses[0, 0, 1], 2 * -math.log(0.9) - math.log(1e-7), atol=1e-12)
    # From stored per-sample losses the action is the classification one.
    np.testing.assert_allclose(action(losses), expected, rtol=0, atol=1e-12)


def test_data_map_and_forgetting_hand_computed():
    # R=2, E=3, N=1, L=2; label 0 present, label 1 absent.
    probs = np.zeros((2, 3, 1, 2))
    probs[0, :, 0, 0] = [0.2, 0.8, 0.2]  # right: F T F -> 1 event
    probs[1, :, 0, 0] = [0.8, 0.2, 0.8]  # right: T F T -> 1 event
    probs[0, :, 0, 1] = [0.9, 0.9, 0.9]  # absent label always predicted: never right -> E = 3
    probs[1, :, 0, 1] = [0.5, 0.5, 0.5]  # p = 0.5 is predicted absent: always right -> 0
    labels = np.array([[1, 0]])
    dm = multilabel_data_map(labels, probs)
    # label 0: confidence (0.4 + 0.6) / 2 = 0.5; label 1: (0.1 + 0.5) / 2 = 0.3 -> 0.4
    np.testing.assert_allclose(dm["confidence"], [0.4], rtol=0, atol=1e-12)
    # label 0: each replica's std over epochs is sqrt((0.04 + 0.16 + 0.04) / 3) = sqrt(0.08)
    # (the replica mean is 0.5 every epoch, so a std of the mean would give 0); label 1: 0
    # -> (sqrt(0.08) + 0) / 2 = 0.1414213562
    np.testing.assert_allclose(dm["variability"], [math.sqrt(0.08) / 2], rtol=0, atol=1e-12)
    # label 0: (1/3 + 2/3) / 2 = 0.5; label 1: (0 + 1) / 2 = 0.5
    np.testing.assert_allclose(dm["correctness"], [0.5], rtol=0, atol=1e-12)
    # label 0: 1 + 1 = 2; label 1: 3 (never learned) + 0 = 3 -> mean over labels 2.5
    np.testing.assert_array_equal(multilabel_forgetting(labels, probs), [2.5])


def _chunks(draw_sizes: list[int], epochs: int) -> list[tuple[int, int]]:
    out, start = [], 0
    for size in draw_sizes:
        if start >= epochs:
            break
        out.append((start, min(epochs, start + size)))
        start = out[-1][1]
    if start < epochs:
        out.append((start, epochs))
    return out


@settings(max_examples=60, deadline=None)
@given(
    r=st.integers(1, 4),
    e=st.integers(1, 5),
    n=st.integers(1, 6),
    num_labels=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 3), max_size=5),
    float16=st.booleans(),
)
def test_accumulators_equal_in_memory(r, e, n, num_labels, seed, sizes, float16):
    rng = np.random.default_rng(seed)
    probs = rng.random((r, e, n, num_labels))
    # Exact 0, 0.5 and 1 (saturated sigmoids, the decision threshold) appear as in shards.
    special = rng.random(probs.shape) < 0.2
    probs[special] = rng.choice([0.0, 0.5, 1.0], size=int(special.sum()))
    if float16:  # probabilities as float16 shards store them
        probs = probs.astype(np.float16)
    labels = (rng.random((n, num_labels)) < 0.4).astype(np.uint8)
    conf, act = MultilabelConfusionAccumulator(), MultilabelActionAccumulator()
    dm, forget = MultilabelDataMapAccumulator(), MultilabelForgettingAccumulator()
    from_losses = MultilabelActionAccumulator()
    losses = multilabel_losses(labels, probs)
    for start, stop in _chunks(sizes, e):
        chunk = probs[:, start] if stop - start == 1 else probs[:, start:stop]
        conf.update(chunk)
        act.update(labels, chunk)
        dm.update(labels, chunk)
        forget.update(labels, chunk)
        from_losses.update_losses(losses[:, start:stop])
    np.testing.assert_array_equal(conf.result(), multilabel_confusion(probs))
    np.testing.assert_array_equal(act.result(), multilabel_action(labels, probs))
    np.testing.assert_array_equal(from_losses.result(), multilabel_action(labels, probs))
    np.testing.assert_array_equal(forget.result(), multilabel_forgetting(labels, probs))
    expected = multilabel_data_map(labels, probs)
    got = dm.result()
    np.testing.assert_array_equal(got["confidence"], expected["confidence"])
    np.testing.assert_array_equal(got["correctness"], expected["correctness"])
    # Chan's merge of running moments: equal to np.std up to rounding.
    np.testing.assert_allclose(got["variability"], expected["variability"], rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    r=st.integers(1, 3),
    e=st.integers(1, 5),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_one_label_is_two_class_classification(r, e, n, seed):
    """With L = 1 every score is its classification counterpart on (1 - p, p)."""
    rng = np.random.default_rng(seed)
    p = rng.random((r, e, n, 1))
    p[rng.random(p.shape) < 0.2] = 0.5  # argmax ties go to class 0 = absent, as p > 0.5 does
    y = rng.integers(0, 2, size=(n, 1))
    two_class = np.concatenate([1.0 - p, p], axis=-1)
    np.testing.assert_allclose(multilabel_confusion(p), confusion(two_class), rtol=0, atol=1e-12)
    ours, theirs = multilabel_data_map(y, p), data_map(y[:, 0], two_class)
    for key in FIELDS:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        multilabel_forgetting(y, p), forgetting_events(y[:, 0], two_class)
    )


def test_scores_are_in_their_ranges():
    rng = np.random.default_rng(0)
    probs = rng.random((3, 4, 50, 6))
    labels = rng.integers(0, 2, size=(50, 6))
    c = multilabel_confusion(probs)
    assert ((c >= 0) & (c <= math.log(2))).all()
    f = multilabel_forgetting(labels, probs)
    assert ((f >= 0) & (f <= 3 * 4)).all()
    dm = multilabel_data_map(labels, probs)
    assert ((dm["variability"] >= 0) & (dm["variability"] <= 0.5)).all()
    a = multilabel_action(labels, probs)
    assert ((a >= 0) & (a <= 4 * 6 * -math.log(BCE_PROB_CLIP))).all()


LABELLED = [multilabel_action, multilabel_losses, multilabel_forgetting, multilabel_data_map]


@pytest.mark.parametrize(
    ("probs", "match"),
    [
        (np.full((2, 2, 3), 0.5), r"shape \(R, E, N, L\)"),
        (np.full((2, 2, 2, 3), 1.5), r"in \[0, 1\], got 1.5 at index \(0, 0, 0, 0\)"),
        (np.full((2, 2, 2, 3), -0.1), r"in \[0, 1\], got -0.1"),
        (np.full((2, 2, 2, 3), np.nan), "non-finite"),
        (np.zeros((2, 0, 2, 3)), "must not be empty"),
    ],
)
def test_bad_probabilities_refused(probs, match):
    with pytest.raises(ValueError, match=match):
        multilabel_confusion(probs)
    for fn in LABELLED:
        with pytest.raises(ValueError, match=match):
            fn(np.zeros((2, 3), np.uint8), probs)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros((2, 4), np.uint8), r"shape \(N, L\) = \(2, 3\)"),
        (np.zeros(2, np.int64), r"shape \(N, L\) = \(2, 3\)"),
        (np.array([[0, 1, 2], [0, 0, 0]]), r"0 or 1\), got 2 at \(sample, label\) index \(0, 2\)"),
        (np.array([[0, 1, 0], [0, 0.5, 0]]), r"got 0.5 at \(sample, label\) index \(1, 1\)"),
        (np.array([[0, 1, 0], [-1, 0, 0]]), r"got -1 at"),
        (np.array([["a", "b", "c"], ["a", "b", "c"]]), "multi-hot 0/1 numbers, got dtype <U1"),
    ],
)
def test_bad_labels_refused(labels, match):
    probs = np.full((2, 2, 2, 3), 0.5)
    for fn in LABELLED:
        with pytest.raises(ValueError, match=match):
            fn(labels, probs)
    with pytest.raises(ValueError, match=match):
        MultilabelDataMapAccumulator().update(labels, probs[:, 0])


def test_bool_and_integral_float_labels_accepted():
    probs = HAND_PROBS
    expected = multilabel_action(HAND_LABELS, probs)
    np.testing.assert_array_equal(multilabel_action(HAND_LABELS.astype(bool), probs), expected)
    np.testing.assert_array_equal(multilabel_action(HAND_LABELS.astype(float), probs), expected)


def test_accumulator_misuse_refused():
    for acc in (
        MultilabelConfusionAccumulator(),
        MultilabelActionAccumulator(),
        MultilabelDataMapAccumulator(),
        MultilabelForgettingAccumulator(),
    ):
        with pytest.raises(ValueError, match="before any update"):
            acc.result()
    labels = np.zeros((2, 3), np.uint8)
    conf = MultilabelConfusionAccumulator()
    conf.update(np.full((2, 2, 3), 0.5))
    with pytest.raises(ValueError, match="keep N"):
        conf.update(np.full((2, 4, 3), 0.5))
    for acc in (
        MultilabelActionAccumulator(),
        MultilabelDataMapAccumulator(),
        MultilabelForgettingAccumulator(),
    ):
        acc.update(labels, np.full((2, 2, 3), 0.5))
        with pytest.raises(ValueError, match="must keep"):
            acc.update(np.zeros((4, 3), np.uint8), np.full((2, 4, 3), 0.5))
    with pytest.raises(ValueError, match=r"shape \(R, N, L\) or \(R, E_chunk, N, L\)"):
        MultilabelConfusionAccumulator().update(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="losses must be >= 0"):
        MultilabelActionAccumulator().update_losses(np.full((2, 1, 3), -1.0))
