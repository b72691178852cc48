import math

import numpy as np
import pytest
import torch

from engine.scores.qa import (
    best_spans,
    span_action,
    span_confusion,
    span_entropy,
    span_losses,
    span_margins,
)

LN2 = math.log(2)


def test_span_entropy_by_hand():
    # Replica 0 puts the start on position 0, replica 1 on position 1: the mean is
    # (1/2, 1/2, 0), entropy ln 2. Both agree on the end: entropy 0.
    start = np.array([[[1.0, 0, 0]], [[0, 1.0, 0]]])
    end = np.array([[[0, 0, 1.0]], [[0, 0, 1.0]]])
    np.testing.assert_allclose(span_entropy(start, end), [LN2])
    # Uniform over 4 positions for start and end: 2 ln 4.
    u = np.full((3, 1, 4), 0.25)
    np.testing.assert_allclose(span_entropy(u, u), [2 * math.log(4)])


def test_span_confusion_averages_epochs():
    start = np.zeros((2, 2, 1, 3))
    end = np.zeros((2, 2, 1, 3))
    start[0, 0, 0, 0] = start[1, 0, 0, 1] = 1  # epoch 0: ln 2 from the start
    end[:, 0, 0, 2] = 1
    start[:, 1, 0, 0] = 1  # epoch 1: everyone agrees, entropy 0
    end[:, 1, 0, 2] = 1
    np.testing.assert_allclose(span_confusion(start, end), [LN2 / 2])


def test_span_losses_action_and_margins_by_hand():
    # One sample, gold span (1, 2). Replica 0: p_start[1] = 1/2, p_end[2] = 1/4.
    start = np.log(np.array([[[0.25, 0.5, 0.25]], [[0.1, 0.8, 0.1]]]))
    end = np.log(np.array([[[0.5, 0.25, 0.25]], [[0.1, 0.1, 0.8]]]))
    gold_s, gold_e = np.array([1]), np.array([2])
    loss = span_losses(start, end, gold_s, gold_e)
    np.testing.assert_allclose(loss[:, 0], [(LN2 + 2 * LN2) / 2, -math.log(0.8)])
    # margins: replica 0 start ln(.5/.25) = ln 2, end ln(.25/.5) = -ln 2 -> 0.
    np.testing.assert_allclose(span_margins(start, end, gold_s, gold_e)[:, 0],
                               [0.0, math.log(8)], atol=1e-12)  # fmt: skip
    # action: sum over 2 epochs (the same predictions twice), mean over replicas.
    two = np.stack([start, start], axis=1), np.stack([end, end], axis=1)
    np.testing.assert_allclose(span_action(*two, gold_s, gold_e), [loss[:, 0].sum()])


def test_padding_never_enters_a_score():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5, 6))  # (R, E, N, L)

    def logp(x):
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    s, e = logp(logits), logp(logits[..., ::-1])
    gs, ge = np.array([0, 1, 2, 3, 4]), np.array([5, 4, 3, 2, 1])
    pad = np.full((2, 3, 5, 4), -np.inf)  # four padded positions: probability 0
    sp, ep = np.concatenate([s, pad], -1), np.concatenate([e, pad], -1)
    np.testing.assert_allclose(
        span_confusion(np.exp(sp), np.exp(ep)), span_confusion(np.exp(s), np.exp(e))
    )
    np.testing.assert_allclose(span_action(sp, ep, gs, ge), span_action(s, e, gs, ge))
    np.testing.assert_allclose(
        span_margins(sp[:, 0], ep[:, 0], gs, ge), span_margins(s[:, 0], e[:, 0], gs, ge)
    )


def test_best_spans_respect_order_and_length():
    start = np.array([[0.1, 0.6, 0.3, 0.0], [0.0, 0.0, 0.0, 1.0]])
    end = np.array([[0.7, 0.0, 0.1, 0.2], [0.5, 0.5, 0.0, 0.0]])
    s, e, p = best_spans(start, end, max_tokens=2)
    # Row 0: (0, 0) has 0.07; (1, 2) 0.06; (2, 2) 0.03; (2, 3) 0.06; (1, 1) 0 -> (0, 0).
    assert (s[0], e[0]) == (0, 0) and p[0] == pytest.approx(0.07)
    # Row 1: every end before the only start: the best allowed span has probability 0.
    assert s[1] <= e[1] < s[1] + 2 and p[1] == 0
    s, e, _ = best_spans(start[:1], end[:1], max_tokens=3)
    assert (s[0], e[0]) == (1, 3)  # 0.6 * 0.2 = 0.12 beats (0, 0) once length 3 is allowed


def test_bad_inputs_are_named():
    ok = np.full((1, 1, 3), 1 / 3)
    with pytest.raises(ValueError, match="sum to 1"):
        span_entropy(ok * 2, ok)
    with pytest.raises(ValueError, match="same shape"):
        span_entropy(ok, np.full((1, 1, 4), 0.25))
    logp = np.array([[[-LN2, -LN2, -np.inf]]])
    with pytest.raises(ValueError, match="gold span probability 0"):
        span_losses(logp, logp, np.array([2]), np.array([0]))
    with pytest.raises(ValueError, match=r"start positions must be in \[0, 3\)"):
        span_losses(logp, logp, np.array([3]), np.array([0]))


def test_reader_gives_the_same_outputs_padded_or_not():
    from engine.models.text import SpanReader

    torch.manual_seed(0)
    reader = SpanReader(vocab=50, max_len=24, dim=16, layers=2, heads=2).eval()
    ids = torch.tensor([[2, 7, 8, 3, 10, 11, 12, 3]])
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    ctx = torch.tensor([[False, False, False, False, True, True, True, False]])
    padded = [torch.nn.functional.pad(x, (0, 16)) for x in (ids, types, ctx)]
    with torch.no_grad():
        s, e = reader(ids, types, ctx)
        sp, ep = reader(*padded)
    torch.testing.assert_close(torch.log_softmax(sp, -1)[:, :8], torch.log_softmax(s, -1))
    torch.testing.assert_close(torch.log_softmax(ep, -1)[:, :8], torch.log_softmax(e, -1))
    assert torch.isinf(sp[:, 7:]).all() and torch.isinf(sp[:, :4]).all()
