"""Difficulty scores for sequence-to-sequence tasks under teacher forcing.

For every sample the replicas give a next-token distribution over the vocabulary at
each target position (teacher forcing: the gold prefix is fed). Only positions in
the target mask (the target's tokens and its end token) enter a score, so padding
and truncation never do.

- token confusion: mean over target positions of the entropy of the replica-mean
  next-token distribution, averaged over epochs. Higher = harder.
- token action: the token-averaged negative log-likelihood of the target, summed
  over epochs, averaged over replicas. Higher = harder.

In a run the worker computes the per-epoch reductions (:func:`token_entropy`,
:func:`token_nll`) in torch batch by batch (``engine.training.seq2seq``; a test checks
they equal these functions) and stores only per-sample values.
"""

from __future__ import annotations

import numpy as np

from engine.scores._validation import as_float_array, check_probabilities
from engine.scores.classification import entropy_native


def _mask(mask: np.ndarray, n: int, t: int) -> np.ndarray:
    m = np.asarray(mask, dtype=bool)
    if m.shape != (n, t):
        raise ValueError(f"mask must have shape ({n}, {t}), got {m.shape}")
    if not m.any(axis=1).all():
        raise ValueError(f"sample {int(np.flatnonzero(~m.any(axis=1))[0])} has no target position")
    return m


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the last axis of ``values`` (..., N, T) where ``mask`` (N, T) is True."""
    return (values * mask).sum(axis=-1) / mask.sum(axis=-1)


def token_entropy(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-epoch token confusion: masked mean over positions of H(mean_r p(. | prefix)).

    Args:
        probs: Next-token distributions (R, N, T, V).
        mask: Bool (N, T): the positions that count.

    Returns:
        Float64 (N,), in [0, ln V]. Higher = more uncertain.
    """
    p = as_float_array("probs", probs, 4, "(R, N, T, V)")
    check_probabilities("probs", p)
    m = _mask(mask, p.shape[1], p.shape[2])
    return _masked_mean(entropy_native(p.mean(axis=0)), m)


def token_confusion(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Token confusion: :func:`token_entropy` averaged over epochs.

    Args:
        probs: Next-token distributions (R, E, N, T, V).
        mask: Bool (N, T).

    Returns:
        Float64 (N,). Higher = harder.
    """
    p = np.asarray(probs)
    if p.ndim != 5:
        raise ValueError(f"probs must have shape (R, E, N, T, V), got {p.shape}")
    return np.mean([token_entropy(p[:, e], mask) for e in range(p.shape[1])], axis=0)


def token_nll(log_probs: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Token-averaged negative log-likelihood of each replica.

    Args:
        log_probs: Next-token log-probabilities (R, N, T, V).
        targets: Int (N, T) target ids (any value where ``mask`` is False).
        mask: Bool (N, T).

    Returns:
        Float64 (R, N), >= 0. Higher = worse.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 4:
        raise ValueError(f"log_probs must have shape (R, N, T, V), got {lp.shape}")
    m = _mask(mask, lp.shape[1], lp.shape[2])
    tgt = np.where(m, np.asarray(targets), 0)
    if tgt.min() < 0 or tgt.max() >= lp.shape[3]:
        raise ValueError(f"targets must be in [0, {lp.shape[3]}), got {tgt.min()}..{tgt.max()}")
    gold = np.take_along_axis(lp, np.broadcast_to(tgt[None, ..., None], (*lp.shape[:3], 1)), -1)
    gold = np.where(m, gold[..., 0], 0.0)
    return -_masked_mean(gold, m)


def token_action(log_probs: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Token action: :func:`token_nll` summed over epochs, averaged over replicas.

    Args:
        log_probs: Next-token log-probabilities (R, E, N, T, V).
        targets: Int (N, T).
        mask: Bool (N, T).

    Returns:
        Float64 (N,). Higher = harder.
    """
    lp = np.asarray(log_probs)
    if lp.ndim != 5:
        raise ValueError(f"log_probs must have shape (R, E, N, T, V), got {lp.shape}")
    per_epoch = [token_nll(lp[:, e], targets, mask) for e in range(lp.shape[1])]
    return np.sum(per_epoch, axis=0).mean(axis=0)


__all__ = ["token_action", "token_confusion", "token_entropy", "token_nll"]
