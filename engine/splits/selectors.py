"""Split selectors over a score vector. Ties are broken by sample id, so cuts are deterministic."""

from __future__ import annotations

import numpy as np


def _order(scores: np.ndarray, sample_ids: np.ndarray, *, descending: bool) -> np.ndarray:
    """Indices sorting by score (descending or ascending), ties by ascending sample id."""
    key = -scores if descending else scores
    return np.lexsort((sample_ids, key))


def top_fraction(scores: np.ndarray, sample_ids: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the ``round(fraction * N)`` (at least 1) highest-scored samples.

    Args:
        scores: Float (N,) scores, higher = harder.
        sample_ids: Int (N,) ids used to break ties (lower id wins).
        fraction: In (0, 1).

    Returns:
        Bool (N,) mask; True = in the hard split.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(scores) == 0:
        raise ValueError("cannot select from an empty pool")
    count = max(1, round(fraction * len(scores)))
    mask = np.zeros(len(scores), dtype=bool)
    mask[_order(scores, np.asarray(sample_ids), descending=True)[:count]] = True
    return mask


def quantile_bins(scores: np.ndarray, sample_ids: np.ndarray, count: int) -> np.ndarray:
    """Equal-count bins by rank: bin 0 holds the lowest scores, bin ``count-1`` the highest.

    Bin sizes differ by at most one (``floor(rank * count / N)``).

    Args:
        scores: Float (N,) scores.
        sample_ids: Int (N,) ids used to break ties.
        count: Number of bins (>= 2, <= N).

    Returns:
        Int (N,) bin index of each sample.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if count < 2 or count > n:
        raise ValueError(f"count must be in [2, N={n}], got {count}")
    ranks = np.empty(n, dtype=np.int64)
    ranks[_order(scores, np.asarray(sample_ids), descending=False)] = np.arange(n)
    return (ranks * count // n).astype(np.int64)
