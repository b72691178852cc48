import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine.scores import (
    ActionAccumulator,
    ConfusionAccumulator,
    action,
    confusion,
    get_score,
    list_scores,
)

LN2 = math.log(2.0)


def test_confusion_hand_computed():
    # R=2, E=2, N=2, K=2.
    # Sample 0: epoch 0 replicas disagree fully -> mean (0.5, 0.5), entropy ln 2;
    #           epoch 1 both one-hot on class 0 -> entropy 0. Mean over epochs: ln2 / 2.
    # Sample 1: epoch 0 both (0.5, 0.5) -> ln 2; epoch 1 (0.9, 0.1) and (0.7, 0.3) -> mean
    #           (0.8, 0.2) -> -(0.8 ln 0.8 + 0.2 ln 0.2).
    probs = np.array(
        [
            [[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [0.9, 0.1]]],  # replica 0
            [[[0.0, 1.0], [0.5, 0.5]], [[1.0, 0.0], [0.7, 0.3]]],  # replica 1
        ]
    )
    h08 = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    expected = np.array([LN2 / 2, (LN2 + h08) / 2])
    np.testing.assert_allclose(confusion(probs), expected, rtol=0, atol=1e-12)


def test_confusion_is_entropy_of_mean_not_mean_of_entropies():
    # Two confident replicas that disagree: each entropy is 0, the mean's is ln 2.
    probs = np.array([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])
    assert confusion(probs)[0] == pytest.approx(LN2, abs=1e-12)


def test_action_hand_computed():
    # R=2, E=3, N=2: sum over epochs, then mean over replicas.
    losses = np.array(
        [
            [[1.0, 0.0], [0.5, 0.1], [0.25, 0.2]],
            [[3.0, 0.0], [1.0, 0.3], [0.0, 0.4]],
        ]
    )
    # sample 0: replica sums 1.75 and 4.0 -> 2.875; sample 1: 0.3 and 0.7 -> 0.5
    np.testing.assert_allclose(action(losses), [2.875, 0.5], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("probs", "match"),
    [
        (np.ones((2, 2, 3)), r"shape \(R, E, N, K\)"),
        (np.full((1, 1, 1, 2), np.nan), "non-finite"),
        (np.array([[[[1.2, -0.2]]]]), "non-negative"),
        (np.array([[[[0.6, 0.6]]]]), "sum to 1"),
    ],
)
def test_confusion_rejects_bad_input(probs, match):
    with pytest.raises(ValueError, match=match):
        confusion(probs)


def test_action_rejects_negative_and_wrong_rank():
    with pytest.raises(ValueError, match=">= 0"):
        action(np.array([[[-1.0]]]))
    with pytest.raises(ValueError, match=r"\(R, E, N\)"):
        action(np.ones((2, 2)))


def _random_probs(rng, r, e, n, k):
    logits = rng.normal(size=(r, e, n, k)) * 3
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(
    r=st.integers(1, 4),
    e=st.integers(1, 6),
    n=st.integers(1, 8),
    k=st.integers(2, 5),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_accumulators_equal_in_memory_functions(r, e, n, k, seed, data):
    rng = np.random.default_rng(seed)
    probs = _random_probs(rng, r, e, n, k)
    losses = rng.exponential(size=(r, e, n))
    cuts = sorted(
        data.draw(st.lists(st.integers(1, e - 1), max_size=3, unique=True)) if e > 1 else []
    )
    conf_acc, act_acc = ConfusionAccumulator(), ActionAccumulator()
    for chunk_p, chunk_l in zip(
        np.split(probs, cuts, axis=1), np.split(losses, cuts, axis=1), strict=True
    ):
        conf_acc.update(chunk_p)
        act_acc.update(chunk_l)
    np.testing.assert_allclose(conf_acc.result(), confusion(probs), atol=1e-12)
    np.testing.assert_allclose(act_acc.result(), action(losses), atol=1e-12)


def test_action_accumulator_over_replica_chunks():
    rng = np.random.default_rng(0)
    losses = rng.exponential(size=(3, 4, 5))
    acc = ActionAccumulator()
    for r in range(3):
        for e in range(4):
            acc.update(losses[r : r + 1, e : e + 1], replica_ids=[r])
    np.testing.assert_allclose(acc.result(), action(losses), atol=1e-12)


def test_action_accumulator_rejects_uneven_epochs():
    acc = ActionAccumulator()
    acc.update(np.ones((1, 2, 3)), replica_ids=[0])
    acc.update(np.ones((1, 1, 3)), replica_ids=[1])
    with pytest.raises(ValueError, match="different numbers of epochs"):
        acc.result()


@settings(max_examples=30, deadline=None)
@given(
    probs=hnp.arrays(np.float64, (3, 2, 4, 5), elements=st.floats(0.01, 1.0)),
    perm_seed=st.integers(0, 1000),
)
def test_confusion_properties(probs, perm_seed):
    probs = probs / probs.sum(-1, keepdims=True)
    s = confusion(probs)
    rng = np.random.default_rng(perm_seed)
    np.testing.assert_allclose(confusion(probs[rng.permutation(3)]), s, atol=1e-12)
    np.testing.assert_allclose(confusion(probs[..., rng.permutation(5)]), s, atol=1e-12)
    assert np.all(s >= 0)
    assert np.all(s <= math.log(5) + 1e-12)


def test_confusion_zero_when_all_replicas_agree_one_hot():
    probs = np.zeros((3, 2, 4, 6))
    probs[..., 2] = 1.0
    np.testing.assert_array_equal(confusion(probs), np.zeros(4))


def test_registry_direction_and_unknown_name():
    assert {"action", "confusion", "aum", "forgetting", "el2n", "vog"} <= set(list_scores())
    assert get_score("confusion").higher_is_harder and not get_score("confusion").needs_labels
    assert get_score("action").needs_labels
    with pytest.raises(ValueError, match="Did you mean 'confusion'"):
        get_score("confusoin")
