import numpy as np
import pytest

from engine.data import load_dataset


def test_digits_shape_split_and_determinism():
    a = load_dataset("sklearn_digits", heldout_fraction=0.4, split_seed=0)
    b = load_dataset("sklearn_digits", heldout_fraction=0.4, split_seed=0)
    assert a.inputs.shape == (1797, 1, 8, 8) and a.inputs.dtype == np.float32
    assert 0.0 <= a.inputs.min() and a.inputs.max() <= 1.0
    assert a.num_classes == 10
    np.testing.assert_array_equal(a.split, b.split)
    held = a.indices("heldout")
    assert len(held) == 719
    # stratified: every class is ~40% held out
    for c in range(10):
        frac = np.mean(a.split[a.labels == c] == "heldout")
        assert abs(frac - 0.4) < 0.01


def test_unknown_source():
    with pytest.raises(
        ValueError, match=r"unknown data source 'digit'. Did you mean 'sklearn_digits'"
    ):
        load_dataset("digit", heldout_fraction=0.4, split_seed=0)
