"""The epochs-and-seeds ablation's settings and figures, and the correlation intervals."""

import math

import numpy as np
import pytest
from scipy import stats

from engine.evaluation.ablation import (
    FULL,
    AblationSetting,
    ablation_settings,
    epoch_subsets,
    histogram_edges,
    replica_subsets,
    setting_figures,
    spaced_epochs,
)
from engine.evaluation.metrics import correlation_ci


def test_spaced_epochs_are_every_kth_ending_at_the_last():
    assert spaced_epochs(list(range(10)), 5) == [1, 3, 5, 7, 9]
    assert spaced_epochs(list(range(20)), 5) == [3, 7, 11, 15, 19]
    assert spaced_epochs(list(range(3)), 2) == [1, 2]  # 3 / 2 epochs apart, rounded up
    assert spaced_epochs([4, 5, 6], 3) == [4, 5, 6]
    with pytest.raises(ValueError, match="cannot pick 4 of 3"):
        spaced_epochs([0, 1, 2], 4)


def test_epoch_subsets_collapse_counts_at_or_above_the_run():
    subsets, notes = epoch_subsets(list(range(10)), (5, 10, 20))
    assert [s[0] for s in subsets] == ["e5_every2", "e5_first", "eall"]
    assert subsets[1][2] == (0, 1, 2, 3, 4)
    assert len(notes) == 2 and "10 epochs: the run recorded 10" in notes[0]
    with pytest.raises(ValueError, match="positive"):
        epoch_subsets([0, 1], (0,))


def test_replica_subsets_draw_distinct_subsets_with_the_seed():
    subsets, _ = replica_subsets([0, 1, 2, 3], (1, 3), draws=3, seed=7)
    ones = [s[2] for s in subsets if s[0].startswith("r1_")]
    threes = [s[2] for s in subsets if s[0].startswith("r3_")]
    assert len(ones) == 3 and len(set(ones)) == 3 and all(len(s) == 1 for s in ones)
    assert len(threes) == 3 and len(set(threes)) == 3 and all(len(s) == 3 for s in threes)
    assert subsets[-1] == ("rall", 0, (0, 1, 2, 3))
    again, _ = replica_subsets([0, 1, 2, 3], (1, 3), draws=3, seed=7)
    assert again == subsets
    every, _ = replica_subsets([0, 1, 2], (1,), draws=5, seed=0)  # 3 subsets <= 5 draws: all
    assert [s[2] for s in every[:-1]] == [(0,), (1,), (2,)]


def test_settings_cross_epochs_and_replicas_full_last():
    settings, _ = ablation_settings(list(range(4)), [0, 1], epoch_counts=(2,), replica_counts=(1,))
    names = [s.name for s in settings]
    assert len(names) == len(set(names)) == 3 * 3
    assert names[-1] == FULL
    assert settings[-1].epochs == (0, 1, 2, 3) and settings[-1].replicas == (0, 1)


def test_histogram_edges_run_to_ln_k_for_an_entropy():
    edges = histogram_edges([np.array([0.1, 0.5]), np.array([0.2, np.nan])], math.log(10))
    assert edges[0] == 0 and edges[-1] == pytest.approx(math.log(10))
    other = histogram_edges([np.array([-3.0, 2.0])], None)
    assert other[0] == -3.0 and other[-1] == 2.0


def test_correlation_ci_is_scipys_point_biserial_and_spearman():
    rng = np.random.default_rng(0)
    x = rng.random(400)
    wrong = (rng.random(400) < 0.6 * x).astype(float)
    r, lo, hi = correlation_ci(x, wrong, seed=3)
    assert r == pytest.approx(stats.pointbiserialr(wrong, x).statistic, abs=1e-12)
    assert lo < r < hi
    assert correlation_ci(x, wrong, seed=3) == (r, lo, hi)  # reproducible with the seed
    assert correlation_ci(x, wrong, seed=4)[1:] != (lo, hi)
    rs, los, his = correlation_ci(x, wrong, method="spearman", seed=3)
    assert rs == pytest.approx(stats.spearmanr(x, wrong).statistic, abs=1e-12)
    assert los < rs < his


def test_correlation_ci_refuses_an_interval_on_too_few_errors():
    x = np.linspace(0, 1, 500)
    wrong = np.zeros(500)
    wrong[-2:] = 1.0  # 2 errors: a resample draws none about 2% of the time
    wrong[:1] = 1.0
    r, lo, hi = correlation_ci(x, wrong, n_boot=400)
    assert not math.isnan(r) and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in correlation_ci(x, np.zeros(500)))


def _setting(name: str = FULL) -> AblationSetting:
    return AblationSetting(name, (0, 1), (0,), "all")


def test_hard_overlap_on_crafted_scores():
    ids = np.arange(10)
    full = np.arange(10, dtype=float)  # hardest: 9, 8, 7, 6
    mine = full.copy()
    mine[[9, 8]] = -1.0  # two of the full setting's hardest drop out
    edges = np.linspace(0, 10, 5)
    f = setting_figures(_setting("x"), "confusion", mine, full_score=full, sample_ids=ids,
                        hard_count=4, edges=edges, error=None, n_boot=50, seed=0)  # fmt: skip
    assert f["hard_overlap"] == pytest.approx(2 / 4)  # 7, 6 kept; 5, 4 came in
    assert f["hard_jaccard"] == pytest.approx(2 / 6)
    assert math.isnan(f["pearson_r"]) and f["histogram"] == [3, 2, 3, 0]  # the -1.0s: left of 0
    same = setting_figures(_setting(), "confusion", full, full_score=full, sample_ids=ids,
                           hard_count=4, edges=edges, error=None, n_boot=50, seed=0)  # fmt: skip
    assert same["hard_overlap"] == 1.0 and same["hard_jaccard"] == 1.0


def test_a_lower_is_harder_score_is_read_in_its_direction():
    ids = np.arange(200)
    aum = np.linspace(-1, 1, 200)  # lower AUM = harder
    wrong = (aum < -0.5).astype(float)
    f = setting_figures(_setting(), "aum", aum, full_score=aum, sample_ids=ids, hard_count=20,
                        edges=np.linspace(-1, 1, 5), error=wrong, n_boot=100, seed=0)  # fmt: skip
    assert f["pearson_r"] > 0.5 and f["auroc"] == pytest.approx(1.0)
