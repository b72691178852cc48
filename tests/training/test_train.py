import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.training import TrainRecipe, train
from engine.training.classification import softmax_and_loss


@pytest.fixture(scope="module")
def digits():
    return load_dataset("sklearn_digits", heldout_fraction=0.4, split_seed=0)


def _run(digits, seed, epochs=3):
    tr = digits.indices("train")
    seen = []
    torch.set_num_threads(1)
    train(
        TrainRecipe(model="mlp", epochs=epochs, seed=seed),
        digits.inputs[tr],
        digits.labels[tr],
        num_classes=10,
        x_score=digits.inputs,
        on_epoch=lambda e, logits, grads: seen.append((e, logits)),
    )
    return seen


def test_reports_every_epoch_on_every_sample_and_learns(digits):
    seen = _run(digits, seed=0, epochs=5)
    assert [e for e, _ in seen] == list(range(5))
    assert all(logits.shape == (1797, 10) for _, logits in seen)
    held = digits.indices("heldout")
    acc = (seen[-1][1][held].argmax(1) == digits.labels[held]).mean()
    assert acc > 0.85


def test_same_seed_same_logits_other_seed_differs(digits):
    a, b, c = _run(digits, 3), _run(digits, 3), _run(digits, 4)
    for (_, la), (_, lb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a[-1][1], c[-1][1])


def test_softmax_and_loss():
    logits = np.array([[0.0, np.log(3.0)], [2.0, 2.0]])
    probs, loss, margin = softmax_and_loss(logits, np.array([1, 0]))
    np.testing.assert_allclose(probs, [[0.25, 0.75], [0.5, 0.5]], atol=1e-7)
    np.testing.assert_allclose(loss, [-np.log(0.75), np.log(2.0)], atol=1e-6)
    np.testing.assert_allclose(margin, [np.log(3.0), 0.0], atol=1e-6)
    assert softmax_and_loss(logits, None)[1:] == (None, None)


def test_input_gradients_on_requested_epochs(digits):
    tr = digits.indices("train")
    got = {}
    train(
        TrainRecipe(model="mlp", epochs=3, seed=0),
        digits.inputs[tr],
        digits.labels[tr],
        num_classes=10,
        x_score=digits.inputs[:50],
        y_score=digits.labels[:50],
        grad_epochs={0, 2},
        on_epoch=lambda e, logits, grads: got.__setitem__(e, grads),
    )
    assert got[1] is None
    assert got[0].shape == got[2].shape == (50, 1, 8, 8)
    assert np.abs(got[2]).sum() > 0 and not np.array_equal(got[0], got[2])


def test_recipe_validation_names_field():
    with pytest.raises(ValueError, match="batch_size: must be >= 1"):
        TrainRecipe(model="mlp", epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="model: unknown model"):
        TrainRecipe(model="nope", epochs=1)
