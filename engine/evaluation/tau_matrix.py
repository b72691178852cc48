"""Kendall's tau between every pair of difficulty scores, per set of samples, with intervals.

The paper's Figure 3: the confusion of seed ensembles of different architectures and
scales (and of the small replicas) ranks the samples alike. Every score here is read
as hardness (confusion: higher = harder). Tau uses every sample of a set; its
bootstrap interval resamples at most :data:`MAX_INTERVAL_SAMPLES` of them (a seeded
subsample), since one ``kendalltau`` on 60,000 samples takes ~30 ms and an interval
takes 1,000 of them.
"""

from __future__ import annotations

import numpy as np

from engine.evaluation.metrics import kendall_tau, kendall_tau_ci

MAX_INTERVAL_SAMPLES = 10_000  # samples of a set behind each tau's bootstrap interval


def tau_matrix(
    scores: dict[str, np.ndarray],
    sets: dict[str, np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Kendall tau for every pair of scores on every set of samples.

    Args:
        scores: Name -> float (N,) hardness of every sample (by sample id).
        sets: Set name (e.g. ``train``, ``heldout``) -> bool (N,) mask of its samples.
        n_boot: Resamples behind each interval.
        seed: Seed of the subsample and of the resampling.

    Returns:
        ``{"names": [...], "sets": {set: {"count", "interval_samples", "tau": M x M,
        "tau_ci95": M x M x 2}}}``; the diagonal is 1, intervals on the diagonal are
        ``[1, 1]``; NaN where a score is constant on the set.
    """
    names = list(scores)
    out: dict[str, object] = {"names": names, "sets": {}}
    rng = np.random.default_rng(seed)
    for set_name, mask in sets.items():
        idx = np.flatnonzero(mask)
        sub = (
            np.sort(rng.choice(idx, MAX_INTERVAL_SAMPLES, replace=False))
            if len(idx) > MAX_INTERVAL_SAMPLES
            else idx
        )
        m = len(names)
        tau = np.eye(m)
        ci = np.tile(np.array([1.0, 1.0]), (m, m, 1))
        for i in range(m):
            for j in range(i + 1, m):
                a, b = scores[names[i]], scores[names[j]]
                tau[i, j] = tau[j, i] = kendall_tau(a[idx], b[idx])[0]
                ci[i, j] = ci[j, i] = kendall_tau_ci(a[sub], b[sub], n_boot=n_boot, seed=seed)
        out["sets"][set_name] = {
            "count": len(idx),
            "interval_samples": len(sub),
            "tau": tau.tolist(),
            "tau_ci95": ci.tolist(),
        }
    return out
