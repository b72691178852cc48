"""The score comparison on crafted scores: the Spearman matrix in the hardness direction,
each score's AUROC for misses with its bootstrap interval, the record's files and lines."""

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import spearmanr

from engine.evaluation.score_comparison import (
    compare_scores,
    comparison_summary,
    format_score_comparison,
    read_score_comparison,
    write_score_comparison,
)

N = 200  # crafted samples: the first half training, the rest held out


def _table() -> pa.Table:
    """Action, confusion, confidence (lower = harder), variability and AUM on N samples."""
    rng = np.random.default_rng(0)
    action = rng.normal(size=N)
    return pa.table({
        "sample_id": np.arange(N),
        "split": ["train"] * (N // 2) + ["heldout"] * (N // 2),
        "action": action,
        "confusion": action + rng.normal(scale=0.5, size=N),
        "confidence": -action,  # the same ranking, read in its own (lower = harder) direction
        "variability": rng.normal(size=N),
        "aum": -action,  # lower = harder: not in the Spearman set, but an AUROC column
        "not_a_score": rng.normal(size=N),  # unregistered: neither compared nor an AUROC
    })  # fmt: skip


def test_the_spearman_matrix_reads_every_score_as_higher_is_harder():
    table = _table()
    out = compare_scores(table, np.arange(N), {}, seed=0, n_boot=50)
    assert out["scores"] == ["action", "confusion", "confidence", "variability"]  # no vog column
    act, conf, var = (table.column(c).to_numpy() for c in ("action", "confusion", "variability"))
    for part, rows in (("all", slice(None)), ("train", slice(0, N // 2)),
                       ("heldout", slice(N // 2, None))):  # fmt: skip
        m = np.asarray(out["spearman"][part])
        assert m.shape == (4, 4) and np.allclose(m, m.T) and np.allclose(np.diag(m), 1)
        assert m[0, 1] == pytest.approx(spearmanr(act[rows], conf[rows]).statistic)
        assert m[0, 2] == pytest.approx(1.0)  # confidence = -action: the same hardness order
        assert m[0, 3] == pytest.approx(spearmanr(act[rows], var[rows]).statistic)
        assert out["spearman_action_confusion"][part] == m[0, 1]
    summary = comparison_summary(out)
    assert summary["spearman_action_confusion_all"] == out["spearman"]["all"][0][1]
    assert summary["spearman_action_confidence_heldout"] == pytest.approx(1.0)
    assert "spearman_confusion_variability_train" in summary


def test_auroc_and_interval_follow_each_scores_direction():
    table = _table()
    action = table.column("action").to_numpy()
    pool = np.arange(N // 2, N)
    hard = action[pool] > np.quantile(action[pool], 0.7)  # the misses: the hardest by action
    noisy = hard ^ (np.random.default_rng(1).random(len(pool)) < 0.1)  # and a few flipped
    out = compare_scores(table, pool, {"big": noisy, "none": np.zeros(len(pool), bool)},
                         seed=3, n_boot=200)  # fmt: skip
    aucs, cis = out["auroc"]["big"], out["auroc_ci95"]["big"]
    assert set(aucs) == {"action", "confusion", "confidence", "variability", "aum"}
    assert out["directions"]["confidence"] == "lower = harder"
    for score in ("action", "confidence", "aum"):  # one ranking, three directions: one AUROC
        assert aucs[score] == pytest.approx(aucs["action"]) and aucs[score] > 0.8
        assert cis[score][0] <= aucs[score] <= cis[score][1] and cis[score][0] > 0.7
    assert cis["confidence"] == pytest.approx(cis["action"])
    assert cis["variability"][0] < 0.5 < cis["variability"][1]  # noise: the interval spans 0.5
    again = compare_scores(table, pool, {"big": noisy}, seed=3, n_boot=200)
    assert again["auroc_ci95"]["big"] == cis  # seeded
    assert all(math.isnan(v) for v in out["auroc"]["none"].values())  # no miss: undefined
    assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in out["auroc_ci95"]["none"].values())
    assert out["misses"] == {"big": int(noisy.sum()), "none": 0} and out["pool_size"] == N // 2
    lines = format_score_comparison(out)
    assert any(line.startswith(f"AUROC for big's misses ({int(noisy.sum())} of 100): action ")
               for line in lines)  # fmt: skip
    assert "Spearman(action, confidence): all 1.000, train 1.000, held-out 1.000" in lines
    assert comparison_summary(out)["auroc_big_confidence"] == aucs["confidence"]


def test_a_run_without_misses_says_why_and_the_record_round_trips(tmp_path):
    out = compare_scores(_table(), np.arange(N), {}, seed=0, n_boot=10,
                         no_misses_reason="the pool has no labels")  # fmt: skip
    assert out["auroc"] == {} and out["no_misses_reason"] == "the pool has no labels"
    assert "AUROC for misses: not measured (the pool has no labels)" in format_score_comparison(out)
    path = write_score_comparison(tmp_path, out)
    assert path == tmp_path / "eval" / "score_comparison.json"
    assert read_score_comparison(tmp_path) == json.loads(path.read_text())
    assert read_score_comparison(tmp_path / "elsewhere") is None
