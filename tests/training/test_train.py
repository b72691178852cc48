import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.spec.model_recipes import TrainRecipe
from engine.training import train
from engine.training.objectives import softmax_and_loss


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
    """A recipe checks its own fields; its model name is checked with the spec's registered
    names (``replicas.model: unknown model``, tests/spec/test_loader.py)."""
    with pytest.raises(ValueError, match="batch_size: must be >= 1"):
        TrainRecipe(model="mlp", epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="augment: must list distinct augmentations"):
        TrainRecipe(model="mlp", epochs=1, augment=["hflip", "hflip"])


def _train_with(digits, recipe, **kwargs):
    tr = digits.indices("train")
    seen = {}
    torch.set_num_threads(1)
    train(
        recipe,
        digits.inputs[tr],
        digits.labels[tr],
        num_classes=10,
        x_score=digits.inputs,
        on_epoch=lambda e, logits, grads: seen.__setitem__(e, logits),
        **kwargs,
    )
    return seen


@pytest.mark.parametrize("model", ["mlp", "small_cnn"])
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(digits, tmp_path, model):
    from engine.training.checkpoints import checkpoint_epochs, load_checkpoint, save_checkpoint

    recipe = TrainRecipe(model=model, epochs=4, seed=5, optimizer="sgd")
    full = _train_with(
        digits,
        recipe,
        on_checkpoint=lambda e, s: save_checkpoint(tmp_path, 0, e, s, keep="all"),
    )
    assert checkpoint_epochs(tmp_path, 0) == [0, 1, 2, 3]
    # A replica killed after epoch 1's checkpoint but before its predictions were written.
    state = load_checkpoint(tmp_path, 0, at_most=1)
    assert state["epoch"] == 1
    resumed = _train_with(digits, recipe, resume=state, report_epochs={1, 2, 3})
    assert sorted(resumed) == [1, 2, 3]
    for e in (1, 2, 3):
        np.testing.assert_array_equal(resumed[e], full[e])  # bit for bit, not just close
    # A replay from scratch that regenerates only epoch 1 and stops there.
    replay = _train_with(digits, recipe, report_epochs={1}, until_epoch=1)
    assert sorted(replay) == [1]
    np.testing.assert_array_equal(replay[1], full[1])


def test_checkpoint_keep_policy_mismatch_and_unreadable_files(digits, tmp_path):
    from engine.training.checkpoints import checkpoint_epochs, load_checkpoint, save_checkpoint

    recipe = TrainRecipe(model="mlp", epochs=3, seed=1)
    _train_with(digits, recipe, on_checkpoint=lambda e, s: save_checkpoint(tmp_path, 2, e, s))
    assert checkpoint_epochs(tmp_path, 2) == [2]  # keep="last" deletes older ones
    state = load_checkpoint(tmp_path, 2, at_most=2)
    assert save_checkpoint(tmp_path, 2, 0, state) is None  # never replaces a newer one
    with pytest.raises(ValueError, match="checkpoint was written for recipe"):
        _train_with(digits, recipe.with_seed(2), resume=state)
    path = tmp_path / "checkpoints" / "replica=2" / "epoch=2.pt"
    path.write_bytes(path.read_bytes()[:100])  # truncated by a crash of the disk
    told = []
    assert load_checkpoint(tmp_path, 2, at_most=2, log=told.append) is None
    assert "unreadable" in told[0]
