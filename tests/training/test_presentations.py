"""Forgetting counted over training presentations (Toneva et al. 2019), issue 14 item 5.

With one mini-batch per epoch, the presentation of epoch e is a forward pass with the
weights the model had after epoch e-1: its records must equal the correctness of the
end-of-epoch predictions of e-1 (and of the untrained model for epoch 0).
"""

import copy

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.models import create_model
from engine.scores import forgetting_events, forgetting_from_presentations
from engine.spec.model_recipes import TrainRecipe
from engine.training import infer, train
from engine.training.packed import train_packed


@pytest.fixture(scope="module")
def digits():
    return load_dataset("sklearn_digits", heldout_fraction=0.4, split_seed=0)


def _records(digits, recipe, **kwargs):
    tr = digits.indices("train")
    torch.set_num_threads(1)
    got, logits, states = {}, {}, {}
    train(
        recipe, digits.inputs[tr], digits.labels[tr], num_classes=10, x_score=digits.inputs[tr],
        on_epoch=lambda e, lg, g: logits.__setitem__(e, lg),
        on_presentations=lambda e, rec: got.__setitem__(e, rec.copy()),
        on_checkpoint=lambda e, st: states.__setitem__(e, copy.deepcopy(st)), **kwargs,
    )  # fmt: skip
    return got, logits, states


def test_presentation_records_are_the_correctness_before_each_step(digits):
    tr = digits.indices("train")
    y = digits.labels[tr]
    recipe = TrainRecipe(model="mlp", epochs=4, batch_size=len(tr), lr=0.5, seed=3)
    got, logits, _ = _records(digits, recipe)
    assert sorted(got) == [0, 1, 2, 3] and all(r.dtype == np.int8 for r in got.values())
    torch.manual_seed(3)  # train()'s initialisation
    init = create_model("mlp", num_classes=10, input_shape=(1, 8, 8))
    np.testing.assert_array_equal(got[0], infer(init, digits.inputs[tr]).argmax(1) == y)
    for e in (1, 2, 3):
        np.testing.assert_array_equal(got[e], logits[e - 1].argmax(1) == y)
    assert 0 < got[3].mean() < 1 and got[0].mean() < got[3].mean()


def test_small_batches_record_every_sample_once_and_resume_reports_the_checkpointed_epoch(digits):
    recipe = TrainRecipe(model="mlp", epochs=3, batch_size=64, seed=1)
    got, _, states = _records(digits, recipe)
    assert all(set(np.unique(r)) <= {0, 1} for r in got.values())  # every sample presented
    tr = digits.indices("train")
    resumed = {}
    train(
        recipe, digits.inputs[tr], digits.labels[tr], num_classes=10, x_score=digits.inputs[:5],
        on_epoch=lambda e, lg, g: None, resume=states[0],
        on_presentations=lambda e, rec: resumed.__setitem__(e, rec.copy()),
    )  # fmt: skip
    assert sorted(resumed) == [0, 1, 2]
    for e in range(3):
        np.testing.assert_array_equal(resumed[e], got[e])


def test_a_packed_ensemble_records_each_replicas_presentations(digits):
    tr = digits.indices("train")
    y = digits.labels[tr]
    recipe = TrainRecipe(model="mlp", epochs=3, batch_size=len(tr), lr=0.5)
    got, logits = {}, {}
    train_packed(
        recipe, [5, 6], digits.inputs[tr], y, num_classes=10, x_score=digits.inputs[tr],
        on_epoch=lambda e, lg: logits.__setitem__(e, lg),
        on_presentations=lambda e, rec: got.__setitem__(e, rec.copy()),
    )  # fmt: skip
    assert got[0].shape == (2, len(tr))
    for e in (1, 2):
        np.testing.assert_array_equal(got[e], logits[e - 1].argmax(-1) == y)


def test_forgetting_over_presentations_hand_computed():
    # replica 0: right, wrong, right, wrong -> 2 events; replica 1: never right -> E = 4
    records = np.array([[[1], [0], [1], [0]], [[0], [0], [0], [0]]], dtype=np.int8)
    assert forgetting_from_presentations(records).tolist() == [6.0]
    # a missing presentation does not break the sequence: right, (none), wrong -> 1 event
    gap = np.array([[[1], [-1], [0]]], dtype=np.int8)
    assert forgetting_from_presentations(gap).tolist() == [1.0]
    # never presented (a held-out sample): undefined
    assert np.isnan(forgetting_from_presentations(np.full((1, 3, 1), -1, np.int8))).all()
    # every sample presented every epoch: the after-epoch count on the same record
    rng = np.random.default_rng(0)
    correct = rng.random((3, 6, 20)) < 0.6
    probs = np.where(correct[..., None], [0.9, 0.1], [0.1, 0.9])
    np.testing.assert_array_equal(
        forgetting_from_presentations(correct.astype(np.int8)),
        forgetting_events(np.zeros(20, int), probs),
    )
    with pytest.raises(ValueError, match="presentation records must be"):
        forgetting_from_presentations(np.full((1, 1, 1), 2, np.int8))


def test_a_replica_writes_presentations_and_the_pool_counts_forgetting_from_them(tmp_path, digits):
    from engine.distributed.replicas import train_replica
    from engine.distributed.scoring import score_block
    from engine.shards import consolidate_manifest
    from engine.spec import SpecError, load_spec

    overrides = ["replicas.count=1", "scores=[confusion, forgetting]", "shards.grad_epochs=[]",
                 "score_options={forgetting: {counted: during_training}}",
                 "shards.block_size=2048"]  # fmt: skip
    spec = load_spec("tests/fixtures/tiny.yaml", overrides)
    assert spec.records_presentations
    torch.set_num_threads(1)
    train_replica(tmp_path, spec, 0, log=lambda line: None)
    consolidate_manifest(tmp_path, replicas=1, epochs=3, blocks=1)
    options = {"forgetting": {"counted": "during_training"}}
    table = score_block(tmp_path, 0, replicas=[0], epochs=[0, 1, 2], scores=["forgetting"],
                        options=options)  # fmt: skip
    got, _, _ = _records(digits, spec.replicas.recipe.with_seed(0))
    tr = digits.indices("train")
    expected = forgetting_from_presentations(np.stack([got[e] for e in range(3)])[None])
    forgetting = table.column("forgetting").to_numpy()
    np.testing.assert_array_equal(forgetting[tr], expected)
    assert np.isnan(forgetting[digits.indices("heldout")]).all()
    after = score_block(tmp_path, 0, replicas=[0], epochs=[0, 1, 2], scores=["forgetting"])
    assert not np.array_equal(after.column("forgetting").to_numpy()[tr], forgetting[tr])
    with pytest.raises(SpecError, match="cut it from pool: train"):
        load_spec("tests/fixtures/tiny.yaml", [*overrides, "splits.score=forgetting"])
    with pytest.raises(SpecError, match="during_training records are stored in full shards"):
        load_spec("tests/fixtures/tiny.yaml", [*overrides, "replicas.count=2",
                                               "replicas.pack_size=all", "shards.mode=mean"])  # fmt: skip
