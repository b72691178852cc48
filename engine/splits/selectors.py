"""Split selectors over a score vector. Ties are broken by sample id, so cuts are deterministic."""

from __future__ import annotations

import numpy as np


def _order(scores: np.ndarray, sample_ids: np.ndarray, *, descending: bool) -> np.ndarray:
    """Indices sorting by score (descending or ascending), ties by ascending sample id."""
    key = -scores if descending else scores
    return np.lexsort((sample_ids, key))


def top_fraction(scores: np.ndarray, sample_ids: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the ``round(fraction * N)`` (at least 1) highest-scored samples.

    The builder passes :func:`engine.scores.hardness`, so these are the hardest
    samples whatever the score's direction.

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


def bottom_fraction(scores: np.ndarray, sample_ids: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the ``round(fraction * N)`` (at least 1) lowest-scored samples (ties: lower id)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(scores) == 0:
        raise ValueError("cannot select from an empty pool")
    count = max(1, round(fraction * len(scores)))
    mask = np.zeros(len(scores), dtype=bool)
    mask[_order(scores, np.asarray(sample_ids), descending=False)[:count]] = True
    return mask


def threshold(
    scores: np.ndarray, *, min_score: float | None = None, max_score: float | None = None
) -> np.ndarray:
    """Mask of samples with ``score >= min_score`` (or ``score <= max_score``)."""
    scores = np.asarray(scores, dtype=np.float64)
    if (min_score is None) == (max_score is None):
        raise ValueError("give exactly one of min_score and max_score")
    return scores >= min_score if min_score is not None else scores <= max_score


def per_class(
    scores: np.ndarray,
    sample_ids: np.ndarray,
    labels: np.ndarray,
    *,
    fraction: float,
    descending: bool,
    min_per_class: int = 0,
) -> np.ndarray:
    """A fraction rule applied inside each class, with a minimum per class.

    Each class contributes its ``max(1, round(fraction * n_c), min(min_per_class, n_c))``
    highest (``descending``) or lowest scored samples, ties broken by lower sample id.

    Args:
        scores: Float (N,).
        sample_ids: Int (N,).
        labels: Int (N,).
        fraction: In (0, 1).
        descending: True for a top-fraction rule, False for a bottom-fraction rule.
        min_per_class: Minimum samples per class (a smaller class gives all of its).

    Returns:
        Bool (N,) mask.
    """
    scores, ids, labels = (
        np.asarray(scores, dtype=np.float64),
        np.asarray(sample_ids),
        np.asarray(labels),
    )
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    mask = np.zeros(len(scores), dtype=bool)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        count = max(1, round(fraction * len(idx)), min(min_per_class, len(idx)))
        mask[idx[_order(scores[idx], ids[idx], descending=descending)[:count]]] = True
    return mask


def edge_bins(scores: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin index by fixed thresholds: bin b holds ``edges[b-1] <= score < edges[b]``."""
    return np.searchsorted(
        np.asarray(edges, dtype=np.float64), np.asarray(scores, dtype=np.float64), side="right"
    )


def width_edges(scores: np.ndarray, width: float) -> np.ndarray:
    """Edges ``k * width`` covering every finite score, ascending: (B + 1,).

    For confusion with width 1 on a 10-class pool reaching 2.2 nats: 0, 1, 2, 3 (the
    top bin is [2, ln 10]). A single edge pair when every score lies in one bin.
    """
    finite = np.asarray(scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return np.array([0.0, width])
    low = int(np.floor(finite.min() / width))
    high = max(int(np.ceil(finite.max() / width)), low + 1)  # the top edge closes the last bin
    return np.round(np.arange(low, high + 1) * width, 12)


def width_bins(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Int64 (N,) fixed-width bin of each score: bin b holds ``edges[b] <= s < edges[b+1]``.

    The top edge closes the last bin (a score equal to it goes there); a score outside
    the edges (or NaN) gets -1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    bins = np.searchsorted(edges, scores, side="right") - 1
    bins[scores == edges[-1]] = len(edges) - 2
    bins[(scores < edges[0]) | (scores > edges[-1]) | np.isnan(scores)] = -1
    return bins.astype(np.int64)
