"""Models measured on original and corrected labels, ranked on each, on crafted predictions."""

import math

import numpy as np
import pytest

from engine.evaluation.corrected_labels import (
    CorrectedLabels,
    compare_on_labels,
    format_labels_table,
    ranking_change,
)
from engine.evaluation.evaluate import evaluate_predictions, top1_quality
from engine.splits.builder import BuiltSplits

P = 20  # pool samples of the crafted benchmark


def crafted_pool() -> BuiltSplits:
    """20 samples, 2 equal-count bins by confusion, the last 4 hard; labels i % 3."""
    score = np.linspace(0.0, 1.0, P)
    bins = (np.arange(P) >= P // 2).astype(np.int64)
    return BuiltSplits(
        sample_ids=np.arange(100, 100 + P, dtype=np.int64),
        labels=np.arange(P, dtype=np.int64) % 3,
        score=score,
        bins=bins,
        is_hard=np.arange(P) >= P - 4,
        bin_edges=np.array([[0.0, 0.47], [0.52, 1.0]]),
        files={},
    )


def models(pool: BuiltSplits) -> dict[str, np.ndarray]:
    """A wrong on samples 0, 1; B wrong on the hard samples 16, 17, 18."""
    a, b = pool.labels.copy(), pool.labels.copy()
    a[[0, 1]] = (a[[0, 1]] + 1) % 3
    b[[16, 17, 18]] = (b[[16, 17, 18]] + 1) % 3
    return {"A": a, "B": b}


def test_correcting_the_labels_where_b_disagrees_puts_b_first():
    pool = crafted_pool()
    preds = models(pool)
    corrected = pool.labels.copy()
    corrected[[16, 17, 18]] = preds["B"][[16, 17, 18]]  # the "errors" of B were label errors
    removed = np.zeros(P, dtype=bool)
    removed[0] = True  # one of A's errors is removed from the corrected side
    cmp = compare_on_labels(
        pool, preds, corrected_labels=corrected, removed=removed, version="v1", seed=3
    )
    orig = {ev["model"]: ev for ev in cmp.original}
    corr = {ev["model"]: ev for ev in cmp.corrected}
    assert (orig["A"]["error_all"], orig["B"]["error_all"]) == (2 / P, 3 / P)
    assert (corr["A"]["error_all"], corr["B"]["error_all"]) == (4 / 19, 0.0)  # 1 + 3 of 19
    assert (orig["B"]["error_hard"], corr["B"]["error_hard"]) == (3 / 4, 0.0)
    assert corr["A"]["error_hard"] == 3 / 4 and corr["A"]["error_per_bin"] == [1 / 9, 3 / 10]
    assert (cmp.removed, cmp.relabelled, cmp.pool_samples) == (1, 3, P)
    overall = cmp.rankings["error_all"]
    assert overall.changed and overall.swapped == [("A", "B")]
    assert (overall.first_original, overall.first_corrected) == (["A"], ["B"])
    assert cmp.rankings["error_hard"].changed and cmp.ranking_changed
    table = format_labels_table(cmp, run="r1")
    assert "ranking by overall error changes: A was first on original, B on v1" in table
    assert "1 removed (left out of v1: 19 of 20 measured)" in table
    # per sample: right/wrong differs exactly at the relabelled samples; removed is NaN
    for name in preds:
        right = cmp.correct_corrected[name] == 1
        changed = np.flatnonzero((cmp.correct_original[name] != right) & ~removed)
        assert changed.tolist() == [16, 17, 18], name
        assert math.isnan(cmp.correct_corrected[name][0])
    record = cmp.to_json()
    assert record["rankings"]["error_all"]["changed"] is True and record["removed"] == 1


def test_the_original_side_is_the_builds_own_evaluation():
    pool = crafted_pool()
    preds = models(pool)
    cmp = compare_on_labels(
        pool, preds, corrected_labels=pool.labels, removed=np.zeros(P, dtype=bool),
        version="v2", seed=7, build_records={"A": {"in_sample": True, "params": 12}},
    )  # fmt: skip
    quality, miss = top1_quality("A", pool.labels, preds["A"])
    build = evaluate_predictions("A", pool, quality=quality, miss=miss, seed=7, in_sample=True,
                                 params=12)  # fmt: skip
    got = cmp.original[0]
    for key in ("error_all", "error_hard", "error_all_ci95", "error_per_bin", "pearson_rho"):
        assert got[key] == pytest.approx(build[key], nan_ok=True), key
    assert got["in_sample"] and got["params"] == 12
    assert cmp.corrected[0]["error_all"] == got["error_all"]  # same labels, same numbers
    assert not cmp.ranking_changed and cmp.relabelled == 0


def test_a_tie_that_resolves_is_no_ranking_change():
    change = ranking_change("error_all", {"A": 0.1, "B": 0.1, "C": 0.3}, {"A": 0.05, "B": 0.2,
                                                                          "C": 0.3})  # fmt: skip
    assert not change.changed and change.first_original == ["A", "B"]
    assert change.original == ["A", "B", "C"] and change.first_corrected == ["A"]
    flipped = ranking_change("error_all", {"A": 0.1, "B": 0.2}, {"A": 0.3, "B": math.nan})
    assert not flipped.changed and flipped.corrected == ["A", "B"]  # NaN ranks last, no swap


def test_bad_inputs_are_refused():
    pool = crafted_pool()
    preds = models(pool)
    ok = np.zeros(P, dtype=bool)
    with pytest.raises(ValueError, match=r"removed has shape \(19,\), the pool has 20 samples"):
        compare_on_labels(pool, preds, corrected_labels=pool.labels, removed=ok[1:], version="v1")
    with pytest.raises(ValueError, match="removed must be boolean"):
        compare_on_labels(pool, preds, corrected_labels=pool.labels, removed=ok.astype(int),
                          version="v1")  # fmt: skip
    with pytest.raises(ValueError, match="no model to compare"):
        compare_on_labels(pool, {}, corrected_labels=pool.labels, removed=ok, version="v1")


def test_a_version_is_checked_against_the_pool_it_measures():
    pool = crafted_pool()
    n = 100 + P
    original = np.zeros(n, dtype=np.int64)
    original[pool.sample_ids] = pool.labels
    version = CorrectedLabels("v1", original, original.copy(), np.zeros(n, dtype=bool), "f.parquet")
    labels, removed = version.on_pool(pool.sample_ids, pool.labels)
    assert np.array_equal(labels, pool.labels) and not removed.any()
    original[105] += 1
    with pytest.raises(ValueError, match=r"f\.parquet: original_label of sample 105 is not the"):
        version.on_pool(pool.sample_ids, pool.labels)
