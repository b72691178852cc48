import math

import numpy as np
import pytest
import torch

from engine.scores.seq2seq import token_action, token_confusion, token_entropy, token_nll

LN2 = math.log(2)


def test_token_entropy_by_hand():
    # One sample, two target positions (the third is padding), vocabulary of 3.
    # Position 0: replicas put all mass on tokens 0 and 1 -> mean (1/2, 1/2, 0), ln 2.
    # Position 1: both say token 2 -> 0. Padding: uniform, must not count.
    probs = np.zeros((2, 1, 3, 3))
    probs[0, 0, 0, 0] = probs[1, 0, 0, 1] = 1
    probs[:, 0, 1, 2] = 1
    probs[:, 0, 2] = 1 / 3
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(token_entropy(probs, mask), [LN2 / 2])
    two_epochs = np.stack([probs, probs], axis=1)
    np.testing.assert_allclose(token_confusion(two_epochs, mask), [LN2 / 2])


def test_token_nll_and_action_by_hand():
    logp = np.log(np.array([[[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]]]]))
    targets = np.array([[0, 2, 1]])
    mask = np.array([[True, True, False]])
    # (-ln 0.5 - ln 0.8) / 2 over the two real positions
    expected = (LN2 - math.log(0.8)) / 2
    np.testing.assert_allclose(token_nll(logp, targets, mask), [[expected]])
    three = np.stack([logp] * 3, axis=1)  # (R=1, E=3, N, T, V)
    np.testing.assert_allclose(token_action(three, targets, mask), [3 * expected])


def test_padding_and_truncation_never_enter_a_score():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 5, 7))  # (R, N, T, V)
    logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    targets = rng.integers(0, 7, size=(4, 5))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]], bool)
    junk = logp.copy()
    junk[:, ~mask] = np.where(np.eye(7)[3] > 0, 0.0, -50.0)  # anything at padded positions
    for fn in (lambda lp: token_entropy(np.exp(lp), mask), lambda lp: token_nll(lp, targets, mask)):
        np.testing.assert_allclose(fn(junk), fn(logp))
    # a sample padded to a longer length gives the same scores
    wide = np.concatenate([logp, np.log(np.full((2, 4, 3, 7), 1 / 7))], axis=2)
    wide_mask = np.concatenate([mask, np.zeros((4, 3), bool)], axis=1)
    wide_t = np.concatenate([targets, np.zeros((4, 3), int)], axis=1)
    np.testing.assert_allclose(token_nll(wide, wide_t, wide_mask), token_nll(logp, targets, mask))
    np.testing.assert_allclose(
        token_entropy(np.exp(wide), wide_mask), token_entropy(np.exp(logp), mask)
    )


def test_bad_inputs_are_named():
    p = np.full((1, 1, 2, 3), 1 / 3)
    with pytest.raises(ValueError, match="sample 0 has no target position"):
        token_entropy(p, np.zeros((1, 2), bool))
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 2\)"):
        token_entropy(p, np.ones((1, 3), bool))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 3\)"):
        token_nll(np.log(p), np.array([[0, 5]]), np.ones((1, 2), bool))


def test_worker_reduction_equals_the_numpy_scores():
    from engine.training.seq2seq import reduce_tokens

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, 6, 11)) * 2  # (R, B, T, V)
    targets = rng.integers(0, 11, size=(4, 6))
    mask = rng.random((4, 6)) < 0.6
    mask[:, 0] = True
    m = torch.from_numpy(mask)
    sample = torch.arange(4).repeat_interleave(m.sum(1))
    red = reduce_tokens(torch.from_numpy(logits)[:, m], torch.from_numpy(targets)[m], sample, 4)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(red["mean_entropy"], token_entropy(np.exp(logp), mask), atol=1e-5)
    np.testing.assert_allclose(red["loss"], token_nll(logp, targets, mask), atol=1e-5)
    hits = (logp.argmax(-1) == targets) & mask
    np.testing.assert_array_equal(red["correct"], hits.sum(-1) == mask.sum(-1))


def test_model_gives_the_same_logits_padded_or_not():
    from engine.models.text import Seq2SeqModel

    torch.manual_seed(0)
    model = Seq2SeqModel(
        vocab=40, max_len=20, dim=16, layers=1, heads=2, start_id=2, end_id=3
    ).eval()
    src = torch.tensor([[2, 7, 8, 3, 9]])
    dec = torch.tensor([[2, 11, 12]])
    with torch.no_grad():
        short = model(src, dec)
        long = model(torch.nn.functional.pad(src, (0, 6)), torch.nn.functional.pad(dec, (0, 5)))
    torch.testing.assert_close(long[:, :3], short, atol=1e-5, rtol=1e-5)
