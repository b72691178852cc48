"""Paper-faithful score options (issue 14): EL2N at a chosen epoch, VoG normalised per class."""

import numpy as np
import pytest

from engine.scores import el2n, finalize_scores, get_score, normalize_within_groups, vog
from engine.shards import ShardManifestError
from tests.shards.synthetic import write_full_run


@pytest.mark.parametrize("epoch", [0, 1, -1, -3])
def test_el2n_at_a_chosen_epoch_through_the_pool(tmp_path, epoch):
    arrays = write_full_run(tmp_path)  # R=3, E=4, float32 shards
    from engine.distributed.scoring import score_block

    parts = [
        score_block(tmp_path, b, replicas=[0, 1, 2], epochs=[0, 1, 2, 3], scores=["el2n"],
                    options={"el2n": {"epoch": epoch}})
        for b in range(3)
    ]  # fmt: skip
    got = np.concatenate([p.column("el2n").to_numpy() for p in parts])
    p = arrays["probs"].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(got, el2n(arrays["labels"], p, epoch=epoch), atol=2e-6)
    if epoch != -1:  # the option matters
        assert not np.allclose(got, el2n(arrays["labels"], p))


def test_el2n_epoch_is_the_epoch_index_when_only_some_epochs_are_scored(tmp_path):
    from engine.distributed.scoring import score_block

    arrays = write_full_run(tmp_path)
    got = score_block(tmp_path, 0, replicas=[0, 1, 2], epochs=[0, 2, 3], scores=["el2n"],
                      options={"el2n": {"epoch": 2}}).column("el2n").to_numpy()  # fmt: skip
    p = arrays["probs"].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(got, el2n(arrays["labels"], p, epoch=2)[:5], atol=2e-6)
    with pytest.raises(ShardManifestError, match="epoch 1 was never seen"):
        score_block(tmp_path, 0, replicas=[0, 1, 2], epochs=[0, 2, 3], scores=["el2n"],
                    options={"el2n": {"epoch": 1}})  # fmt: skip


def test_vog_is_z_scored_within_each_class_and_split_by_default():
    rng = np.random.default_rng(0)
    grads = (
        rng.normal(size=(2, 3, 40, 5)) * np.where(np.arange(40) % 2, 1.0, 10.0)[None, None, :, None]
    )
    raw = vog(grads)
    labels = np.arange(40) % 2  # class 0 has 10x larger gradients
    split = np.array(["train", "heldout"] * 20)[np.argsort(np.arange(40) // 2 % 2)]
    out = finalize_scores({"vog": raw, "confusion": raw}, {}, labels, split)
    assert out["confusion"] is raw  # scores without a whole-column step are untouched
    for key in {(s, c) for s, c in zip(split, labels, strict=True)}:
        members = (split == key[0]) & (labels == key[1])
        assert abs(out["vog"][members].mean()) < 1e-12
        assert out["vog"][members].std() == pytest.approx(1.0)
    # within each group the ranking is the raw VoG's
    for c in (0, 1):
        members = (labels == c) & (split == "train")
        np.testing.assert_array_equal(np.argsort(out["vog"][members]), np.argsort(raw[members]))
    # raw VoG ranks class 0 above class 1 only by its scale; normalised, the classes mix
    assert raw[labels == 0].min() > raw[labels == 1].max()
    assert out["vog"][labels == 0].min() < out["vog"][labels == 1].max()
    none = finalize_scores({"vog": raw}, {"vog": {"normalize": "none"}}, labels, split)
    np.testing.assert_array_equal(none["vog"], raw)
    assert finalize_scores({"vog": raw}, {}, None)["vog"] is raw  # unlabelled: nothing to do


def test_normalize_within_groups_singletons_and_constant_groups_get_zero():
    out = normalize_within_groups(np.array([3.0, 5.0, 5.0, 1.0]), np.array([0, 1, 1, 2]))
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="labels must have shape"):
        normalize_within_groups(np.ones(3), np.ones(2))


def test_options_are_declared_with_their_defaults():
    assert get_score("el2n").resolve_options() == {"epoch": -1}
    assert get_score("vog").resolve_options() == {"normalize": "class"}
    assert get_score("forgetting").resolve_options() == {"counted": "after_epoch"}
    assert get_score("forgetting").inputs({"counted": "during_training"}) == ("train_correct",)
    assert get_score("confusion").resolve_options() == {}
    with pytest.raises(ValueError, match=r"has no option 'epch' \(did you mean 'epoch'\?\)"):
        get_score("el2n").resolve_options({"epch": 2})
    with pytest.raises(ValueError, match=r"vog\.normalize must be one of class, none"):
        get_score("vog").resolve_options({"normalize": "zscore"})
