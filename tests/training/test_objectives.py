"""Training objectives: single-label is the old cross-entropy; multi-label learns label sets.

The multi-label objective trains the registered MLP with one sigmoid per label on a
synthetic problem whose label l is present exactly when feature l is positive; its
shard records hold sigmoid probabilities and the summed BCE the multi-label scores
compute from them. Each objective refuses the other's targets.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.scores.multilabel import multilabel_losses
from engine.spec.model_recipes import TrainRecipe
from engine.training import train
from engine.training.classification import infer
from engine.training.objectives import MULTI_LABEL, SINGLE_LABEL

N_LABELS = 4  # labels of the synthetic multi-label problem
N_SAMPLES = 600  # samples of it


def _label_sets(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(N_SAMPLES, 8)).astype(np.float32)
    hot = (x[:, :N_LABELS] > 0).astype(np.uint8)
    hot[hot.sum(axis=1) == 0, 0] = 1  # every sample holds a label
    x[:, 0] = np.where(hot[:, 0] == 1, np.abs(x[:, 0]) + 0.1, x[:, 0])
    return x, hot


def test_single_label_objective_is_cross_entropy():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    y = SINGLE_LABEL.targets(np.array([0, 1]))
    assert torch.equal(SINGLE_LABEL.batch_loss(logits, y), F.cross_entropy(logits, y))
    assert SINGLE_LABEL.batch_correct(logits, y).tolist() == [1, 0]


def test_multi_label_loss_is_summed_bce_and_correct_needs_every_label():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, -0.2, -3.0]])
    y = MULTI_LABEL.targets(np.array([[1, 0, 1], [1, 1, 0]], np.uint8))
    expected = -(y * F.logsigmoid(logits) + (1 - y) * F.logsigmoid(-logits)).sum(1).mean()
    torch.testing.assert_close(MULTI_LABEL.batch_loss(logits, y), expected)
    assert MULTI_LABEL.batch_correct(logits, y).tolist() == [1, 0]
    zero = torch.zeros(1, 3)  # p = 0.5 exactly is predicted absent, as the scores say
    assert MULTI_LABEL.batch_correct(zero, torch.tensor([[0.0, 0.0, 0.0]])).tolist() == [1]
    assert MULTI_LABEL.batch_correct(zero, torch.tensor([[1.0, 0.0, 0.0]])).tolist() == [0]


def test_each_objective_refuses_the_others_targets():
    with pytest.raises(ValueError, match="multi-hot rows: use the multi-label objective"):
        SINGLE_LABEL.targets(np.array([[1, 0], [0, 1]], np.uint8))
    with pytest.raises(ValueError, match="int class indices: one class per sample"):
        MULTI_LABEL.targets(np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="multi-hot 0/1"):
        MULTI_LABEL.targets(np.array([[0, 2]]))
    x, hot = _label_sets()
    with pytest.raises(ValueError, match="multi-hot rows"):
        train(TrainRecipe(model="mlp", epochs=1), x, hot, num_classes=N_LABELS)


def test_multi_label_training_learns_label_sets_and_records_match_the_scores():
    torch.set_num_threads(1)
    x, hot = _label_sets()
    tr, held = np.arange(400), np.arange(400, N_SAMPLES)
    seen, presented, history = [], [], []
    model = train(
        TrainRecipe(model="mlp", epochs=6, seed=0, lr=0.05), x[tr], hot[tr],
        num_classes=N_LABELS, x_score=x, objective=MULTI_LABEL,
        on_epoch=lambda e, logits, grads: seen.append(logits),
        on_presentations=lambda e, rec: presented.append(rec), history=history,
    )  # fmt: skip
    assert len(seen) == 6 and seen[-1].shape == (N_SAMPLES, N_LABELS)
    rec = MULTI_LABEL.records(seen[-1], hot)
    assert rec.margin is None and rec.probs.dtype == np.float32
    assert ((rec.probs >= 0) & (rec.probs <= 1)).all()
    assert not np.allclose(rec.probs.sum(axis=1), 1.0)  # sigmoids, not a softmax
    per_label = ((rec.probs[held] > 0.5) == hot[held]).mean()
    assert per_label > 0.9, per_label  # chance is about 0.5
    np.testing.assert_allclose(rec.loss, multilabel_losses(hot, rec.probs[None, None])[0, 0],
                               rtol=1e-6)  # fmt: skip
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert set(np.unique(presented[-1])) <= {0, 1}
    np.testing.assert_array_equal(infer(model, x), seen[-1])


def test_multi_label_refuses_a_mitigation_and_input_gradients():
    x, hot = _label_sets()
    with pytest.raises(ValueError, match="without a mitigation or input gradients"):
        train(TrainRecipe(model="mlp", epochs=1), x, hot, num_classes=N_LABELS,
              objective=MULTI_LABEL, x_score=x, y_score=hot, grad_epochs=[0])  # fmt: skip
