"""GroupDRO, upsampling and curriculum: the orders and weights they claim."""

import itertools

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.spec.evaluate import MitigationOptions
from engine.spec.model_recipes import TrainRecipe
from engine.training import train
from engine.training.mitigation import (
    GroupDRO,
    Mitigation,
    curriculum_order,
    pacing_fraction,
    quantile_groups,
    upsample_order,
)


def test_groupdro_weights_move_to_the_worst_group():
    dro = GroupDRO(num_groups=2, eta=0.1)
    groups = torch.tensor([0] * 10 + [1] * 10)
    weights = []
    for _ in range(60):
        per_sample = torch.cat([torch.full((10,), 0.1), torch.full((10,), 2.0)]).requires_grad_(
            True
        )
        loss = dro.loss(per_sample, groups)
        loss.backward()
        weights.append(float(dro.q[1]))
    assert weights[0] > 0.5 and all(b >= a for a, b in itertools.pairwise(weights))
    assert weights[-1] > 0.99
    # The worst group's samples carry (almost) all of the gradient.
    assert per_sample.grad[10:].sum() > 50 * per_sample.grad[:10].sum()
    # A group absent from a batch keeps its weight.
    before = dro.q.clone()
    dro.loss(torch.full((4,), 3.0), torch.zeros(4, dtype=torch.long))
    assert dro.q[0] > before[0]


def test_quantile_groups_are_equal_count_and_ordered():
    scores = np.random.default_rng(0).normal(size=103)
    g = quantile_groups(scores, 4)
    assert sorted(np.bincount(g)) == [25, 26, 26, 26]
    assert all(scores[g == a].max() <= scores[g == a + 1].min() for a in range(3))


def test_upsampling_repeats_hard_samples_factor_times_in_a_shuffled_order():
    hard = np.zeros(50, dtype=bool)
    hard[[3, 17, 41]] = True
    order = upsample_order(hard, 3.0, torch.Generator().manual_seed(0)).numpy()
    counts = np.bincount(order, minlength=50)
    assert list(np.flatnonzero(counts == 3)) == [3, 17, 41] and set(counts[~hard]) == {1}
    assert len(order) == 56 and not np.all(np.diff(order) >= 0)
    frac = np.mean(
        [len(upsample_order(hard, 2.5, torch.Generator().manual_seed(s))) for s in range(400)]
    )
    assert abs(frac - (47 + 3 * 2.5)) < 0.2  # the fractional part is right in expectation


def test_curriculum_goes_easy_to_hard_with_its_pacing():
    scores = np.random.default_rng(1).uniform(size=200)
    easy_first = np.argsort(scores, kind="stable")
    gen = torch.Generator().manual_seed(0)
    sizes = []
    for epoch in range(10):
        order = curriculum_order(
            scores, epoch, 10, start=0.3, ramp=0.5, pacing="linear", generator=gen
        ).numpy()
        sizes.append(len(order))
        assert set(order) == set(easy_first[: len(order)])  # always the easiest ones
    assert sizes[0] == 60 and sizes[5:] == [200] * 5 and sizes == sorted(sizes)
    assert pacing_fraction(1, 10, 0.3, 0.5, "root") > pacing_fraction(1, 10, 0.3, 0.5, "linear")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("sklearn_digits", heldout_fraction=0.4, split_seed=0)


def test_erm_mitigation_is_plain_training_and_groupdro_trains(digits):
    tr = digits.indices("train")
    recipe = TrainRecipe(model="mlp", epochs=3, seed=2)
    torch.set_num_threads(1)
    args = (recipe, digits.inputs[tr], digits.labels[tr])
    plain = train(*args, num_classes=10)
    scores = np.random.default_rng(0).uniform(size=len(tr))
    erm = train(*args, num_classes=10, mitigation=Mitigation("erm", scores))
    for a, b in zip(plain.state_dict().values(), erm.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # GroupDRO on digits with the label's parity as a "score": weights end on the harder half.
    loss_scores = (digits.labels[tr] >= 5).astype(float)  # two groups by class
    mit = Mitigation("groupdro", loss_scores, MitigationOptions(groups=2, eta=0.05))
    model = train(*args, num_classes=10, mitigation=mit)
    assert abs(float(mit.dro.q.sum()) - 1) < 1e-9 and float(mit.dro.q.max()) > 0.5
    held = digits.indices("heldout")
    from engine.training import infer

    assert (infer(model, digits.inputs[held]).argmax(1) == digits.labels[held]).mean() > 0.8
