"""The label-aware, label-free and gradient scores: exact values, streaming equality, references."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.scores import (
    AUMAccumulator,
    DataMapAccumulator,
    EL2NAccumulator,
    EnsembleAccumulator,
    FinalEpochAccumulator,
    ForgettingAccumulator,
    VoGAccumulator,
    action,
    aum,
    data_map,
    el2n,
    ensemble_margin,
    ensemble_max_prob,
    forgetting_events,
    get_score,
    list_scores,
    normalized_margin,
    self_confidence,
    vog,
)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_hand_computed_data_map_forgetting_el2n_aum():
    # R=1, E=3, N=2, K=2; labels [0, 1]
    probs = np.array(
        [[[[0.9, 0.1], [0.8, 0.2]], [[0.3, 0.7], [0.6, 0.4]], [[0.6, 0.4], [0.7, 0.3]]]]
    )
    labels = np.array([0, 1])
    dm = data_map(labels, probs)
    np.testing.assert_allclose(dm["confidence"], [0.6, 0.3])
    np.testing.assert_allclose(
        dm["variability"], [np.std([0.9, 0.3, 0.6]), np.std([0.2, 0.4, 0.3])]
    )
    np.testing.assert_allclose(dm["correctness"], [2 / 3, 0.0])
    # sample 0: correct, wrong, correct -> 1 event; sample 1 never correct -> E = 3
    np.testing.assert_array_equal(forgetting_events(labels, probs), [1.0, 3.0])
    # EL2N at the last epoch: ||(0.6,0.4)-(1,0)|| = sqrt(0.32); ||(0.7,0.3)-(0,1)|| = sqrt(0.98)
    np.testing.assert_allclose(el2n(labels, probs), [math.sqrt(0.32), math.sqrt(0.98)])
    np.testing.assert_allclose(el2n(labels, probs, epoch=0), [math.sqrt(0.02), math.sqrt(1.28)])
    logits = np.array([[[[2.0, 0.0, 1.0]], [[0.0, 3.0, 1.0]]]])  # R=1, E=2, N=1, K=3; label 0
    np.testing.assert_allclose(aum(np.array([0]), logits), [(1.0 + -3.0) / 2])


def test_label_free_and_label_quality_hand_computed():
    probs = np.array(
        [[[[0.5, 0.3, 0.2]]], [[[0.1, 0.7, 0.2]]]]
    )  # R=2, E=1, N=1 -> mean (0.3, 0.5, 0.2)
    np.testing.assert_allclose(ensemble_max_prob(probs), [0.5])
    np.testing.assert_allclose(ensemble_margin(probs), [0.2])
    p = np.array([[0.3, 0.5, 0.2]])
    np.testing.assert_allclose(self_confidence(np.array([0]), p), [0.3])
    np.testing.assert_allclose(normalized_margin(np.array([0]), p), [(0.3 - 0.5 + 1) / 2])


def test_vog_hand_computed():
    grads = np.array([[[[1.0, 0.0]], [[3.0, 0.0]]]])  # R=1, T=2, N=1, D=2
    np.testing.assert_allclose(vog(grads), [(1.0 + 0.0) / 2])
    with pytest.raises(ValueError, match="at least 2 checkpoints"):
        vog(grads[:, :1])


@settings(max_examples=40, deadline=None)
@given(
    r=st.integers(1, 3),
    e=st.integers(2, 6),
    n=st.integers(1, 6),
    k=st.integers(2, 5),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_every_accumulator_equals_its_function(r, e, n, k, seed, data):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(r, e, n, k)) * 3
    probs = _softmax(logits)
    labels = rng.integers(0, k, size=n)
    grads = rng.normal(size=(r, e, n, 4))
    cuts = sorted(data.draw(st.lists(st.integers(1, e - 1), max_size=3, unique=True)))
    el2n_epoch = data.draw(st.integers(-e, e - 1))
    accs = {
        "dm": DataMapAccumulator(),
        "aum": AUMAccumulator(),
        "forget": ForgettingAccumulator(),
        "el2n": EL2NAccumulator(epoch=el2n_epoch),
        "maxp": EnsembleAccumulator("max_prob"),
        "margin": EnsembleAccumulator("margin"),
        "sc": FinalEpochAccumulator("self_confidence"),
        "nm": FinalEpochAccumulator("normalized_margin"),
        "vog": VoGAccumulator(),
    }
    for p, lg, g in zip(*(np.split(a, cuts, axis=1) for a in (probs, logits, grads)), strict=True):
        accs["dm"].update(labels, p)
        accs["aum"].update(labels, lg)
        accs["forget"].update(labels, p)
        accs["el2n"].update(labels, p)
        accs["maxp"].update(p)
        accs["margin"].update(p)
        accs["sc"].update(labels, p)
        accs["nm"].update(labels, p)
        accs["vog"].update(g)
    dm = data_map(labels, probs)
    for key in ("confidence", "variability", "correctness"):
        np.testing.assert_allclose(accs["dm"].result()[key], dm[key], atol=1e-10)
    np.testing.assert_allclose(accs["aum"].result(), aum(labels, logits), atol=1e-10)
    np.testing.assert_array_equal(accs["forget"].result(), forgetting_events(labels, probs))
    np.testing.assert_allclose(
        accs["el2n"].result(), el2n(labels, probs, epoch=el2n_epoch), atol=1e-12
    )
    np.testing.assert_allclose(accs["maxp"].result(), ensemble_max_prob(probs), atol=1e-12)
    np.testing.assert_allclose(accs["margin"].result(), ensemble_margin(probs), atol=1e-12)
    final = probs[:, -1].mean(axis=0)
    np.testing.assert_allclose(accs["sc"].result(), self_confidence(labels, final), atol=1e-12)
    np.testing.assert_allclose(accs["nm"].result(), normalized_margin(labels, final), atol=1e-12)
    np.testing.assert_allclose(accs["vog"].result(), vog(grads), atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), a=st.floats(0, 10), b=st.floats(0, 10))
def test_action_is_linear_in_the_losses(seed, a, b):
    rng = np.random.default_rng(seed)
    l1, l2 = rng.exponential(size=(2, 3, 4, 5))
    np.testing.assert_allclose(
        action(a * l1 + b * l2), a * action(l1) + b * action(l2), rtol=1e-10, atol=1e-12
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_forgetting_bounds(seed):
    rng = np.random.default_rng(seed)
    probs = _softmax(rng.normal(size=(2, 5, 7, 3)) * 2)
    f = forgetting_events(rng.integers(0, 3, 7), probs)
    assert np.all(f >= 0) and np.all(f <= 2 * 5)


@pytest.mark.parametrize(
    ("fn", "args", "match"),
    [
        (
            aum,
            (np.array([0, 3]), np.zeros((1, 1, 2, 3))),
            r"labels must lie in \[0, 3\), got 3 at sample index 1",
        ),
        (data_map, (np.array([0]), np.zeros((1, 1, 1, 2))), "sum to 1"),
        (el2n, (np.array([0]), np.full((1, 2, 1, 2), 0.5)), None),
        (
            self_confidence,
            (np.array([0, 1]), np.array([[0.5, 0.5]])),
            r"labels must have shape \(N,\) = \(1,\)",
        ),
        (
            forgetting_events,
            (np.array([0.5]), np.full((1, 1, 1, 2), 0.5)),
            "labels must be integers",
        ),
    ],
)
def test_bad_labels_and_probabilities(fn, args, match):
    if match is None:
        fn(*args)
        with pytest.raises(ValueError, match=r"epoch must be in \[-2, 2\)"):
            el2n(*args, epoch=2)
        return
    with pytest.raises(ValueError, match=match):
        fn(*args)


def test_registry_declares_direction_and_inputs():
    assert set(list_scores()) == {
        "action", "aum", "confidence", "confusion", "correctness", "el2n", "ensemble_margin",
        "ensemble_max_prob", "forgetting", "normalized_margin", "self_confidence", "variability", "vog",
    }  # fmt: skip
    harder_high = {n for n in list_scores() if get_score(n).higher_is_harder}
    assert harder_high == {"action", "confusion", "el2n", "forgetting", "variability", "vog"}
    label_free = {n for n in list_scores() if not get_score(n).needs_labels}
    assert label_free == {"confusion", "ensemble_max_prob", "ensemble_margin"}
    assert get_score("vog").needs == ("input_grad",)


# ---------------------------------------------------------------- cleanlab reference

cleanlab_rank = pytest.importorskip("cleanlab.rank")


@pytest.mark.parametrize("method", ["self_confidence", "normalized_margin"])
def test_equal_to_cleanlab_on_random_predictions(method):
    rng = np.random.default_rng(7)
    probs = _softmax(rng.normal(size=(500, 6)) * 2)
    labels = rng.integers(0, 6, 500)
    ours = {"self_confidence": self_confidence, "normalized_margin": normalized_margin}[method]
    ref = cleanlab_rank.get_label_quality_scores(labels, probs, method=method)
    np.testing.assert_allclose(ours(labels, probs), ref, rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def noisy_digits_run():
    """3 MLP replicas trained on digits with 10% of training labels flipped (seeded)."""
    import torch

    from engine.data import load_dataset
    from engine.spec.model_recipes import TrainRecipe
    from engine.training import train
    from engine.training.objectives import softmax_and_loss

    torch.set_num_threads(1)
    data = load_dataset("sklearn_digits", heldout_fraction=0.4, split_seed=0)
    tr = data.indices("train")
    x, clean = data.inputs[tr], data.labels[tr]
    rng = np.random.default_rng(0)
    flipped = np.zeros(len(tr), bool)
    flipped[rng.choice(len(tr), size=len(tr) // 10, replace=False)] = True
    noisy = clean.copy()
    noisy[flipped] = (clean[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    probs, logits, losses = [], [], []
    for seed in range(3):
        run = {"p": [], "lg": [], "l": []}

        def on_epoch(e, lg, g, run=run):
            p, loss, _ = softmax_and_loss(lg, noisy)
            run["p"].append(p)
            run["lg"].append(lg)
            run["l"].append(loss)

        train(
            TrainRecipe(model="mlp", epochs=15, seed=seed),
            x,
            noisy,
            num_classes=10,
            x_score=x,
            on_epoch=on_epoch,
        )
        probs.append(run["p"])
        logits.append(run["lg"])
        losses.append(run["l"])
    held = data.indices("heldout")
    return {
        "labels": noisy,
        "flipped": flipped,
        "probs": np.asarray(probs, dtype=np.float64),
        "logits": np.asarray(logits, dtype=np.float64),
        "losses": np.asarray(losses, dtype=np.float64),
        "data": data,
        "held": held,
    }


def test_equal_to_cleanlab_on_real_predictions(noisy_digits_run):
    run = noisy_digits_run
    probs = run["probs"][:, -1].mean(axis=0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    for method, fn in (
        ("self_confidence", self_confidence),
        ("normalized_margin", normalized_margin),
    ):
        ref = cleanlab_rank.get_label_quality_scores(run["labels"], probs, method=method)
        np.testing.assert_allclose(fn(run["labels"], probs), ref, rtol=0, atol=1e-12)


def test_flipped_labels_rank_high(noisy_digits_run, capsys):
    from engine.evaluation import auroc

    run = noisy_digits_run
    labels, flipped = run["labels"], run["flipped"]
    final = run["probs"][:, -1].mean(axis=0)
    results = {
        "aum": auroc(-aum(labels, run["logits"]), flipped),
        "action": auroc(action(run["losses"]), flipped),
        "self_confidence": auroc(
            -self_confidence(labels, final / final.sum(1, keepdims=True)), flipped
        ),
        "forgetting": auroc(forgetting_events(labels, run["probs"]), flipped),
    }
    with capsys.disabled():
        print(
            "\nAUROC for 10% flipped digits labels:", {k: round(v, 3) for k, v in results.items()}
        )
    for name in ("aum", "action", "self_confidence"):
        assert results[name] > 0.85, (name, results[name])
