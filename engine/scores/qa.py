"""Difficulty scores for extractive QA: span confusion and span action.

A reader predicts, for every sample, a start and an end distribution over the L
positions of its input; positions outside the passage window have probability 0
(their logits are -inf), so padding and the question never enter a score.

- span confusion: entropy of the replica-mean start distribution plus entropy of the
  replica-mean end distribution, averaged over epochs. Higher = harder.
- span action: the span loss (mean of the start and end cross-entropies, as in
  ``transformers``' QA heads) summed over epochs, averaged over replicas. Higher =
  harder.

The functions take full arrays; in a run the worker reduces each epoch with
:func:`span_entropy` and :func:`span_losses` and stores only per-sample values
(the reduced shard form), and the scoring pool sums them over epochs.
"""

from __future__ import annotations

import numpy as np

from engine.scores._validation import as_float_array, check_probabilities
from engine.scores.classification import entropy_native


def _check_pair(start: np.ndarray, end: np.ndarray, ndim: int, doc: str) -> None:
    if start.shape != end.shape:
        raise ValueError(
            f"start and end distributions must have the same shape {doc}, got {start.shape} "
            f"and {end.shape}"
        )


def span_entropy(start_probs: np.ndarray, end_probs: np.ndarray) -> np.ndarray:
    """Per-epoch span confusion: H(mean_r start) + H(mean_r end), natural log.

    Args:
        start_probs: Start distributions (R, N, L); each row sums to 1.
        end_probs: End distributions (R, N, L).

    Returns:
        Float64 (N,), in [0, 2 ln L]. Higher = more uncertain.
    """
    s = as_float_array("start_probs", start_probs, 3, "(R, N, L)")
    e = as_float_array("end_probs", end_probs, 3, "(R, N, L)")
    _check_pair(s, e, 3, "(R, N, L)")
    check_probabilities("start_probs", s)
    check_probabilities("end_probs", e)
    return entropy_native(s.mean(axis=0)) + entropy_native(e.mean(axis=0))


def span_confusion(start_probs: np.ndarray, end_probs: np.ndarray) -> np.ndarray:
    """Span confusion: :func:`span_entropy` averaged over epochs.

    Args:
        start_probs: Start distributions (R, E, N, L).
        end_probs: End distributions (R, E, N, L).

    Returns:
        Float64 (N,). Higher = harder.
    """
    s = as_float_array("start_probs", start_probs, 4, "(R, E, N, L)")
    e = as_float_array("end_probs", end_probs, 4, "(R, E, N, L)")
    _check_pair(s, e, 4, "(R, E, N, L)")
    return np.mean([span_entropy(s[:, t], e[:, t]) for t in range(s.shape[1])], axis=0)


def span_losses(
    start_log_probs: np.ndarray, end_log_probs: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Span loss of each replica: (-log p_start[gold start] - log p_end[gold end]) / 2.

    Args:
        start_log_probs: Log start distributions (R, N, L); -inf where impossible.
        end_log_probs: Log end distributions (R, N, L).
        start: Int (N,) gold start positions.
        end: Int (N,) gold end positions (inclusive).

    Returns:
        Float64 (R, N), >= 0. Higher = worse.

    Raises:
        ValueError: On mismatched shapes, positions outside [0, L), or a gold position
            a replica gives probability 0 (its loss would be infinite).
    """
    s = np.asarray(start_log_probs, dtype=np.float64)
    e = np.asarray(end_log_probs, dtype=np.float64)
    if s.ndim != 3:
        raise ValueError(f"start_log_probs must have shape (R, N, L), got {s.shape}")
    _check_pair(s, e, 3, "(R, N, L)")
    start, end = np.asarray(start), np.asarray(end)
    n, length = s.shape[1], s.shape[2]
    for name, pos in (("start", start), ("end", end)):
        if pos.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {pos.shape}")
        if pos.size and (pos.min() < 0 or pos.max() >= length):
            raise ValueError(
                f"{name} positions must be in [0, {length}), got {pos.min()}..{pos.max()}"
            )
    rows = np.arange(n)
    loss = -(s[:, rows, start] + e[:, rows, end]) / 2
    if not np.isfinite(loss).all():
        r, i = np.argwhere(~np.isfinite(loss))[0]
        raise ValueError(
            f"replica {r} gives sample {i}'s gold span probability 0 (outside its window?)"
        )
    return loss


def span_action(
    start_log_probs: np.ndarray, end_log_probs: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Span action: span loss summed over epochs, averaged over replicas.

    Args:
        start_log_probs: Log start distributions (R, E, N, L).
        end_log_probs: Log end distributions (R, E, N, L).
        start: Int (N,) gold start positions.
        end: Int (N,) gold end positions.

    Returns:
        Float64 (N,). Higher = harder.
    """
    s = np.asarray(start_log_probs, dtype=np.float64)
    e = np.asarray(end_log_probs, dtype=np.float64)
    if s.ndim != 4:
        raise ValueError(f"start_log_probs must have shape (R, E, N, L), got {s.shape}")
    _check_pair(s, e, 4, "(R, E, N, L)")
    per_epoch = [span_losses(s[:, t], e[:, t], start, end) for t in range(s.shape[1])]
    return np.sum(per_epoch, axis=0).mean(axis=0)


def span_margins(
    start_log_probs: np.ndarray, end_log_probs: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Mean of the start and end margins: gold log-probability minus the best other one.

    The QA counterpart of a classifier's logit margin (log-probabilities share a
    normalizer, so their differences are logit differences); AUM averages it over epochs.

    Returns:
        Float64 (R, N); positive when both gold positions are each distribution's argmax.
    """
    out = []
    for logp, pos in ((start_log_probs, start), (end_log_probs, end)):
        lp = np.asarray(logp, dtype=np.float64)
        rows = np.arange(lp.shape[1])
        gold = lp[:, rows, pos].copy()
        other = lp.copy()
        other[:, rows, pos] = -np.inf
        out.append(gold - other.max(axis=-1))
    return (out[0] + out[1]) / 2


def best_spans(
    start_probs: np.ndarray, end_probs: np.ndarray, *, max_tokens: int, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The most probable span with start <= end < start + max_tokens, per sample.

    Args:
        start_probs: Start distributions (N, L).
        end_probs: End distributions (N, L).
        max_tokens: Longest span allowed.
        chunk: Samples scored at a time (memory is chunk * L * L floats).

    Returns:
        ``(start (N,), end (N,), probability (N,))``: positions (int64) and
        p_start[start] * p_end[end].
    """
    s = np.asarray(start_probs, dtype=np.float64)
    e = np.asarray(end_probs, dtype=np.float64)
    n, length = s.shape
    offset = np.arange(length)[None, :] - np.arange(length)[:, None]
    band = (offset >= 0) & (offset < max_tokens)  # (L, L): end - start in [0, max_tokens)
    starts, ends, probs = (np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n))
    for a in range(0, n, chunk):
        joint = s[a : a + chunk, :, None] * e[a : a + chunk, None, :]
        joint *= band
        flat = joint.reshape(len(joint), -1)
        best = flat.argmax(axis=1)
        starts[a : a + chunk], ends[a : a + chunk] = np.divmod(best, length)
        probs[a : a + chunk] = flat[np.arange(len(flat)), best]
    return starts, ends, probs


__all__ = [
    "best_spans",
    "span_action",
    "span_confusion",
    "span_entropy",
    "span_losses",
    "span_margins",
]
