"""The Kendall tau matrix of seed ensembles: scipy's tau per pair and set, seeded intervals."""

import numpy as np
import pytest
from scipy import stats

from engine.evaluation import tau_matrix as tm
from engine.splits.display import format_tau_matrix


def test_every_pair_on_every_set_is_scipys_tau(monkeypatch):
    rng = np.random.default_rng(0)
    n = 300
    base = rng.random(n)
    scores = {"replicas": base, "a": base + 0.3 * rng.random(n), "b": rng.random(n)}
    train = np.arange(n) < 200
    monkeypatch.setattr(tm, "MAX_INTERVAL_SAMPLES", 150)  # the held-out set keeps all 100
    rec = tm.tau_matrix(scores, {"train": train, "heldout": ~train}, n_boot=200, seed=3)
    assert rec["names"] == ["replicas", "a", "b"]
    for name, mask in (("train", train), ("heldout", ~train)):
        got = rec["sets"][name]
        assert got["count"] == mask.sum()
        assert np.allclose(np.diag(got["tau"]), 1.0)
        want = stats.kendalltau(base[mask], scores["a"][mask]).statistic
        assert got["tau"][0][1] == pytest.approx(want) == got["tau"][1][0]
        lo, hi = got["tau_ci95"][0][1]
        assert lo < hi and got["tau_ci95"][0][1] == got["tau_ci95"][1][0]
    assert rec["sets"]["train"]["interval_samples"] == 150  # a seeded subsample
    assert rec["sets"]["heldout"]["interval_samples"] == 100
    again = tm.tau_matrix(scores, {"train": train, "heldout": ~train}, n_boot=200, seed=3)
    assert again == rec
    lines = format_tau_matrix(rec)
    assert lines[0].startswith("Kendall tau of confusion between seed ensembles, train samples")
    assert lines[2].split()[0] == "replicas" and len(lines) == 2 * (
        2 + 3
    )  # per set: title, header, 3 rows
