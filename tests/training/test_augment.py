"""Seeded augmentation: what flips and shifts do, that replicas differ, and that resume is exact."""

import copy

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.spec import SpecError, load_spec
from engine.spec.model_recipes import TrainRecipe
from engine.training.augment import SHIFT_PIXELS, augment_batch
from engine.training.classification import infer, recipe_key, train


def test_flips_mirror_and_shifts_move_with_zero_fill():
    x = torch.arange(3 * 2 * 6 * 7, dtype=torch.float32).reshape(3, 2, 6, 7) + 1
    flipped = augment_batch(x, ["hflip"], torch.Generator().manual_seed(0))
    for i in range(3):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))
    shifted = augment_batch(x, ["shift"], torch.Generator().manual_seed(1))
    s = SHIFT_PIXELS
    for i in range(3):  # find the offset that reproduces the image from the original
        found = [
            (dy, dx)
            for dy in range(-s, s + 1)
            for dx in range(-s, s + 1)
            if torch.equal(
                shifted[i],
                torch.nn.functional.pad(x[i], (s, s, s, s))[
                    :, s - dy : s - dy + 6, s - dx : s - dx + 7
                ],
            )
        ]
        assert found
    again = augment_batch(x, ["hflip", "shift"], torch.Generator().manual_seed(5))
    assert torch.equal(
        again, augment_batch(x, ["hflip", "shift"], torch.Generator().manual_seed(5))
    )
    with pytest.raises(ValueError, match=r"augment needs float image batches"):
        augment_batch(torch.zeros(2, 8, dtype=torch.long), ["hflip"], torch.Generator())


def test_augmented_training_differs_resumes_exactly_and_keeps_old_keys():
    data = load_dataset("sklearn_digits", heldout_fraction=0.4, split_seed=0)
    tr = data.indices("train")
    x, y = data.inputs[tr], data.labels[tr]
    plain = TrainRecipe(model="mlp", epochs=3, seed=3)
    aug = TrainRecipe(model="mlp", epochs=3, seed=3, augment=["shift"])
    assert "augment" not in recipe_key(plain) and "augment" in recipe_key(aug)
    a = infer(train(plain, x, y, num_classes=10), data.inputs)
    b = infer(train(aug, x, y, num_classes=10), data.inputs)
    assert not np.allclose(a, b)
    states = {}
    full = infer(train(aug, x, y, num_classes=10,
                       on_checkpoint=lambda e, s: states.__setitem__(e, copy.deepcopy(s))),
                 data.inputs)  # fmt: skip
    resumed = infer(train(aug, x, y, num_classes=10, resume=states[0]), data.inputs)
    np.testing.assert_array_equal(full, resumed)
    with pytest.raises(ValueError, match=r"augment: must list distinct augmentations among hflip"):
        TrainRecipe(model="mlp", epochs=1, augment=["rotate"])


def test_packed_replicas_refuse_augmentation():
    with pytest.raises(SpecError, match=r"replicas\.augment: packed replicas"):
        load_spec("benchmarks/digits.yaml", ["replicas.pack_size=5", "replicas.augment=[hflip]",
                                             "shards.grad_epochs=[]", "scores=[confusion]"])  # fmt: skip
