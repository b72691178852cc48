"""Confident learning in our own NumPy, checked against cleanlab (the reference).

Cases: cleanlab's own test setup (Gaussian clusters, a noise matrix of a given trace,
noisy labels drawn from it, cross-validated logistic-regression probabilities), random
predictions (ties, absent and tiny classes), and real out-of-fold probabilities of the
replica recipe on digits with injected label flips.
"""

import numpy as np
import pytest
from cleanlab import count as cl_count
from cleanlab import filter as cl_filter
from cleanlab.benchmarking.noise_generation import (
    generate_noise_matrix_from_trace,
    generate_noisy_labels,
)

from engine.evaluation.confident_learning import (
    confident_joint,
    confident_thresholds,
    estimate_joint,
    find_label_issues,
    label_error_rate,
    label_issues_per_class,
    num_label_issues,
)

CLUSTERS = {  # cleanlab's tests/test_filter_count.py make_data: means, covariances
    "means": [[3, 2], [7, 7], [0, 8]],
    "covs": [[[5, -1.5], [-1.5, 1]], [[1, 0.5], [0.5, 4]], [[5, 1], [1, 5]]],
}


def _cleanlab_case(sizes: list[int], avg_trace: float, seed: int):
    """Noisy labels from a noise matrix of trace ``avg_trace * K`` and CV probabilities."""
    rng = np.random.default_rng(seed)
    k = len(sizes)
    x = np.vstack(
        [
            rng.multivariate_normal(CLUSTERS["means"][c], CLUSTERS["covs"][c], size=n)
            for c, n in enumerate(sizes)
        ]
    )
    true = np.repeat(np.arange(k), sizes)
    py = np.bincount(true) / len(true)
    noise = generate_noise_matrix_from_trace(
        k, trace=avg_trace * k, py=py, valid_noise_matrix=True, seed=seed
    )
    np.random.seed(seed)  # noqa: NPY002 (cleanlab's generate_noisy_labels uses the global state)
    noisy = generate_noisy_labels(true, noise)
    probs = cl_count.estimate_cv_predicted_probabilities(x, noisy, cv_n_folds=3, seed=seed)
    return noisy, probs


def _random_case(n: int, k: int, seed: int, *, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.6), size=n)
    if decimals is not None:  # coarse probabilities: many ties in thresholds and margins
        probs = np.round(probs, decimals) + 1e-9
        probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, k, n)
    return labels, probs


CASES = {
    "cleanlab-80-40-40-trace0.8": lambda: _cleanlab_case([80, 40, 40], 0.8, 1),
    "cleanlab-300-200-100-trace0.6": lambda: _cleanlab_case([300, 200, 100], 0.6, 2),
    "cleanlab-1000-500-500-trace0.9": lambda: _cleanlab_case([1000, 500, 500], 0.9, 3),
    "random-500x6": lambda: _random_case(500, 6, 7),
    "random-2000x10-ties": lambda: _random_case(2000, 10, 8, decimals=1),
    "random-binary": lambda: _random_case(300, 2, 9),
}


def _check_against_cleanlab(labels, probs):
    np.testing.assert_array_equal(
        confident_thresholds(labels, probs), cl_count.get_confident_thresholds(labels, probs)
    )
    for calibrate in (True, False):
        np.testing.assert_array_equal(
            confident_joint(labels, probs, calibrate=calibrate),
            cl_count.compute_confident_joint(labels, probs, calibrate=calibrate),
        )
    np.testing.assert_array_equal(
        estimate_joint(labels, probs), cl_count.estimate_joint(labels, probs)
    )
    for method in ("off_diagonal_calibrated", "off_diagonal"):
        assert num_label_issues(labels, probs, method=method) == cl_count.num_label_issues(
            labels, probs, estimation_method=method
        ), method
    ref_mask = cl_filter.find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    np.testing.assert_array_equal(find_label_issues(labels, probs), ref_mask)
    per_class = label_issues_per_class(labels, probs)
    assert per_class.sum() == num_label_issues(labels, probs)
    return ref_mask


@pytest.mark.parametrize("case", list(CASES))
def test_equal_to_cleanlab(case):
    labels, probs = CASES[case]()
    mask = _check_against_cleanlab(labels, probs)
    assert 0 < mask.sum() <= num_label_issues(labels, probs)


def test_equal_to_cleanlab_with_an_absent_and_a_single_sample_class():
    labels, probs = _random_case(400, 5, 11)
    labels[labels == 4] = 0  # class 4: nobody is given it (threshold unreachable)
    labels[labels == 3] = 1
    labels[0] = 3  # class 3: one sample, never pruned
    _check_against_cleanlab(labels, probs)
    assert confident_joint(labels, probs)[4].sum() == 0


def test_min_examples_per_class_equal_to_cleanlab():
    labels, probs = _cleanlab_case([30, 20, 10], 0.5, 5)
    for n in (0, 5, 15):
        np.testing.assert_array_equal(
            find_label_issues(labels, probs, min_examples_per_class=n),
            cl_filter.find_label_issues(
                labels, probs, filter_by="prune_by_noise_rate", min_examples_per_class=n, n_jobs=1
            ),
        )


def test_confident_joint_is_oriented_given_by_true():
    # Samples given class 0 that the model is sure are class 1: counted at [0, 1].
    probs = np.array([[0.9, 0.1]] * 6 + [[0.05, 0.95]] * 2 + [[0.1, 0.9]] * 8)
    labels = np.array([0] * 8 + [1] * 8)
    joint = confident_joint(labels, probs, calibrate=False)
    np.testing.assert_array_equal(joint, [[6, 2], [0, 8]])
    assert num_label_issues(labels, probs) == 2
    np.testing.assert_array_equal(label_issues_per_class(labels, probs), [2, 0])
    np.testing.assert_array_equal(np.flatnonzero(find_label_issues(labels, probs)), [6, 7])


@pytest.mark.parametrize(
    ("labels", "probs", "match"),
    [
        ([0, 1], [[0.5, 0.5]], r"labels must have shape \(1,\)"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], r"labels must be in \[0, 2\): row 1 has 2"),
        ([0, 1], [[2.0, -1.0], [0.5, 0.5]], "row 0"),
        ([0, 1], [[3.0, 1.0], [0.5, 0.5]], "row 0 sums to 4.000000 .pass probabilities"),
        ([0.0, 1.0], [[0.5, 0.5], [0.5, 0.5]], "labels must be integers"),
    ],
)
def test_bad_inputs_are_refused_with_the_row(labels, probs, match):
    with pytest.raises(ValueError, match=match):
        num_label_issues(np.asarray(labels), np.asarray(probs))


def test_label_error_rate_interval_is_seeded_and_covers_the_estimate():
    labels, probs = _cleanlab_case([300, 200, 100], 0.7, 4)
    a = label_error_rate(labels, probs, n_boot=200, seed=3)
    b = label_error_rate(labels, probs, n_boot=200, seed=3)
    assert a == b
    assert a["num_label_issues"] == cl_count.num_label_issues(
        labels, probs, estimation_method="off_diagonal_calibrated"
    )
    assert a["rate"] == a["num_label_issues"] / 600
    low, high = a["ci95"]
    assert 0 < low <= a["rate"] <= high < 1 and high - low < 0.2
    assert label_error_rate(labels, probs, n_boot=200, seed=4)["ci95"] != a["ci95"]


# ---------------------------------------------------------------- a noisy digits run

NOISE_FRACTION = 0.1  # share of digits labels flipped (uniform, seeded)
COUNT_TOLERANCE = 0.15  # |estimated - injected| / injected accepted (measured: 180 vs 180)


@pytest.fixture(scope="module")
def noisy_digits_oof():
    """Out-of-fold probabilities of the digits benchmark's replica recipe (MLP, 64 hidden,
    20 epochs), 3 folds, on digits with 10% of the labels flipped (uniform, seeded)."""
    import torch

    from engine.evaluation.audit import out_of_fold_probs
    from engine.spec import load_spec
    from engine.tasks import load_data

    torch.set_num_threads(1)
    noise = f'{{"fraction": {NOISE_FRACTION}, "kind": "uniform", "seed": 4}}'
    spec = load_spec("benchmarks/digits.yaml", [f"data.label_noise={noise}"])
    data = load_data(spec)
    idx = data.indices("all")
    oof = out_of_fold_probs(data, spec.replicas.recipe, idx, folds=3)
    return data.labels[idx], data.clean_labels[idx] != data.labels[idx], oof


def test_noisy_digits_estimate_is_near_the_injected_count_and_equal_to_cleanlab(
    noisy_digits_oof, capsys
):
    labels, flipped, oof = noisy_digits_oof
    mask = _check_against_cleanlab(labels, oof)
    injected = int(flipped.sum())
    estimated = num_label_issues(labels, oof)
    assert injected == round(NOISE_FRACTION * len(labels))
    assert abs(estimated - injected) <= COUNT_TOLERANCE * injected
    precision = flipped[mask].mean()
    assert precision > 0.5 and mask.sum() > 0.5 * injected
    rate = label_error_rate(labels, oof, n_boot=200)
    with capsys.disabled():
        print(
            f"\ndigits, {injected} of {len(labels)} labels flipped: confident learning "
            f"estimates {estimated} (rate {rate['rate']:.3f}, 95% CI "
            f"[{rate['ci95'][0]:.3f}, {rate['ci95'][1]:.3f}]); find_label_issues flags "
            f"{int(mask.sum())}, precision {precision:.3f}, recall {flipped[mask].sum() / injected:.3f}"
        )
