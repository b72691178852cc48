"""One metrics function for every task: hand-computed values for each kind of quality and miss.

Six pool samples in three bins of two (bin 2, the hardest, is the hard split), the
splitting score 0..5 (confusion: higher = harder).
"""

import math

import numpy as np
import pytest
from scipy import stats

from engine.evaluation.evaluate import (
    BOOTSTRAP_RESAMPLES,
    evaluate_predictions,
    top1_quality,
    upgrade_evaluation,
)
from engine.evaluation.metrics import (
    auroc,
    bootstrap_ci,
    error_per_bin,
    expected_calibration_error,
    top1_error,
)
from engine.splits.builder import BuiltSplits

KEYS = {
    "model", "in_sample", "params", "error_all", "error_hard", "error_rest", "hard_minus_rest",
    "error_per_bin", "error_all_ci95", "error_hard_ci95", "miss_rate_all", "miss_rate_hard",
    "miss_rate_rest", "miss_rate_all_ci95", "miss_rate_hard_ci95", "num_misses", "pearson_rho",
    "pearson_p", "auroc_score_error", "ece", "pearson_rho_ci95", "error_per_bin_ci95",
    "pearson_r_sample", "pearson_r_sample_ci95", "auroc_score_error_ci95", "bin_centres",
}  # fmt: skip
WIDTH_KEYS = {
    "width_bin_edges", "width_bin_counts", "error_per_width_bin", "error_per_width_bin_ci95",
    "pearson_rho_width", "pearson_p_width", "pearson_rho_width_ci95",
}  # fmt: skip


def _built(
    n: int = 6, hard: np.ndarray | None = None, bins: np.ndarray | None = None
) -> BuiltSplits:
    bins = np.repeat(np.arange(3), n // 3) if bins is None else bins
    return BuiltSplits(
        sample_ids=np.arange(n), labels=np.zeros(n, np.int64), score=np.arange(n, dtype=float),
        bins=bins, is_hard=bins == 2 if hard is None else hard,
        bin_edges=np.zeros((3, 2)), files={},
    )  # fmt: skip


def test_classification_top1_error_hand_computed():
    labels = np.array([0, 1, 0, 1, 0, 1])
    preds = np.array([0, 1, 1, 1, 0, 0])  # wrong on samples 2 and 5
    conf = np.array([0.9, 0.8, 0.6, 0.7, 0.9, 0.55])
    quality, miss = top1_quality("cnn", labels, preds)
    np.testing.assert_array_equal(quality, [1, 1, 0, 1, 1, 0])
    ev = evaluate_predictions("cnn", _built(), quality=quality, miss=miss, confidence=conf,
                              seed=3, params=10)  # fmt: skip
    assert set(ev) == KEYS and ev["model"] == "cnn" and ev["params"] == 10
    assert ev["error_all"] == 2 / 6 and ev["error_hard"] == 0.5 and ev["error_rest"] == 0.25
    assert ev["hard_minus_rest"] == 0.25 and ev["error_per_bin"] == [0.0, 0.5, 0.5]
    assert ev["num_misses"] == 2 and ev["miss_rate_all"] == ev["error_all"]
    assert ev["pearson_rho"] == pytest.approx(math.sqrt(3) / 2)  # bins (0, 1, 2) vs (0, .5, .5)
    # misses at ranks 3 and 6 of 6: U = 9 - 3 = 6 of 2 x 4 pairs
    assert ev["auroc_score_error"] == 0.75
    wrong = (preds != labels).astype(float)
    assert ev["error_all_ci95"] == list(bootstrap_ci(wrong, n_boot=BOOTSTRAP_RESAMPLES, seed=3))
    assert ev["miss_rate_all_ci95"] == ev["error_all_ci95"]
    assert ev["miss_rate_hard_ci95"] == ev["error_hard_ci95"] == [0.0, 1.0]
    assert ev["ece"] == expected_calibration_error(conf, preds == labels)


def test_a_classifier_error_equals_top1_error_bit_for_bit():
    """mean(1 - correct) is (errors / samples) exactly; 1 - mean(correct) is not (1 - 1/3)."""
    rng = np.random.default_rng(0)
    n = 719  # the tiny digits pool
    labels, preds = rng.integers(0, 10, n), rng.integers(0, 10, n)
    right = rng.random(n) < 0.6
    preds[right] = labels[right]
    bins = rng.integers(0, 3, n)
    built = _built(n, hard=rng.random(n) < 0.1, bins=bins)
    quality, miss = top1_quality("m", labels, preds)
    ev = evaluate_predictions("m", built, quality=quality, miss=miss, seed=11)
    hard = built.is_hard
    assert ev["error_all"] == top1_error(labels, preds)
    assert ev["error_hard"] == top1_error(labels[hard], preds[hard])
    assert ev["error_rest"] == top1_error(labels[~hard], preds[~hard])
    assert ev["error_per_bin"] == [float(e) for e in error_per_bin(labels, preds, bins, 3)]
    wrong = preds != labels
    assert ev["error_hard_ci95"] == list(bootstrap_ci(wrong[hard], seed=11))
    assert ev["num_misses"] == int(wrong.sum())


def test_qa_exact_match_with_f1_as_an_extra():
    em = np.array([1.0, 0, 0, 1, 0, 0])
    f1 = np.array([1.0, 0.5, 0, 1, 0.2, 0])
    ev = evaluate_predictions("reader", _built(), quality=em, miss=em == 0, in_sample=True,
                              extra={"em": em, "f1": f1})  # fmt: skip
    assert ev["in_sample"] and math.isnan(ev["ece"]) and ev["params"] is None
    assert ev["em_all"] == 2 / 6 and ev["em_per_bin"] == [0.5, 0.5, 0.0]
    assert ev["error_all"] == 4 / 6 and ev["error_per_bin"] == [0.5, 0.5, 1.0]
    assert ev["f1_all"] == pytest.approx(0.45) and ev["f1_hard"] == pytest.approx(0.1)
    assert ev["f1_rest"] == 0.625 and ev["f1_per_bin"] == pytest.approx([0.75, 0.5, 0.1])
    assert ev["num_misses"] == 4 and ev["miss_rate_hard"] == 1.0 and ev["miss_rate_rest"] == 0.5
    assert ev["auroc_score_error"] == 0.75  # misses at ranks 2, 3, 5, 6: U = 16 - 10 of 8
    assert ev["error_all_ci95"] == ev["miss_rate_all_ci95"]  # EM is 0/1: 1 - EM is the miss
    assert set(ev) == KEYS | {f"{k}_{p}" for k in ("em", "f1")
                              for p in ("all", "hard", "rest", "per_bin")}  # fmt: skip


def test_seq2seq_continuous_rouge_with_the_nll_median_miss():
    rouge = np.array([0.9, 0.5, 0.0, 0.25, 0.0, 0.1])
    nll = np.array([1.0, 2.0, 5.0, 1.5, 4.0, 3.0])
    miss = nll > np.median(nll)  # median 2.5: samples 2, 4, 5
    ev = evaluate_predictions("gen", _built(), quality=rouge, miss=miss,
                              extra={"rouge_l": rouge, "nll": nll})  # fmt: skip
    assert ev["error_all"] == pytest.approx(4.25 / 6)
    assert ev["error_hard"] == pytest.approx(0.95) and ev["error_rest"] == pytest.approx(0.5875)
    assert ev["error_per_bin"] == pytest.approx([0.3, 0.875, 0.95])
    assert ev["nll_all"] == 2.75 and ev["nll_per_bin"] == [1.5, 3.25, 3.5]
    assert ev["rouge_l_all"] == pytest.approx(1.75 / 6)
    assert ev["miss_rate_all"] == 0.5 and ev["miss_rate_hard"] == 1.0 and ev["num_misses"] == 3
    assert ev["auroc_score_error"] == pytest.approx(8 / 9)  # ranks 3, 5, 6: U = 14 - 6 of 9
    x, y = np.arange(3.0), np.array([0.3, 0.875, 0.95])
    assert ev["pearson_rho"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    # the error's interval resamples 1 - ROUGE-L, the miss rate's the misses
    assert ev["error_all_ci95"] == list(bootstrap_ci(1 - rouge, seed=0))
    assert ev["miss_rate_all_ci95"] == list(bootstrap_ci(miss, seed=0))
    assert ev["error_all_ci95"] != ev["miss_rate_all_ci95"]


def test_bad_inputs_are_refused_with_what_to_fix():
    q, m = np.ones(6), np.zeros(6, bool)
    with pytest.raises(ValueError, match=r"m: quality has shape \(5,\), the pool has 6 samples"):
        evaluate_predictions("m", _built(), quality=q[:5], miss=m)
    with pytest.raises(
        ValueError, match=r"quality must lie in \[0, 1\].*got values in \[1.0, 2.0\]"
    ):
        evaluate_predictions("m", _built(), quality=np.r_[q[:5], 2.0], miss=m)
    with pytest.raises(ValueError, match=r"and NaN"):
        evaluate_predictions("m", _built(), quality=np.r_[q[:5], np.nan], miss=m)
    with pytest.raises(ValueError, match=r"miss must be boolean"):
        evaluate_predictions("m", _built(), quality=q, miss=m.astype(int))
    with pytest.raises(ValueError, match=r"extra\['error'\] would overwrite error_all"):
        evaluate_predictions("m", _built(), quality=q, miss=m, extra={"error": q})


def test_an_old_run_s_num_errors_reads_as_num_misses():
    old = {"model": "cnn", "error_all": 0.25, "num_errors": 3}
    assert upgrade_evaluation(old) == {"model": "cnn", "error_all": 0.25, "num_misses": 3}
    assert old["num_errors"] == 3  # the record read is left as it was
    new = {"model": "cnn", "num_misses": 4}
    assert upgrade_evaluation(new) == new


def test_an_unlabelled_pool_has_the_same_keys_with_nothing_counted():
    from engine.evaluation.label_free import evaluate_label_free

    probs = np.full((6, 3), 1 / 3)
    ev = evaluate_label_free("m", probs, np.zeros((1, 6), np.int64), _built())
    assert KEYS <= set(ev) and ev["num_misses"] is None  # not 0: no error was measured
    for key in KEYS - {"model", "in_sample", "params", "num_misses", "pearson_rho", "pearson_p"}:
        assert np.isnan(ev[key]).all(), key


def test_fixed_width_bins_in_nats_beside_the_equal_count_bins():
    score = np.array([0.1, 0.4, 0.9, 1.0, 1.5, 2.2, 2.3, 0.0])  # confusion, nats
    n = len(score)
    built = BuiltSplits(
        sample_ids=np.arange(n), labels=np.zeros(n, np.int64), score=score,
        bins=np.array([0, 0, 1, 1, 1, 2, 2, 0]), is_hard=score > 2, bin_edges=np.zeros((3, 2)),
        files={}, width=1.0,
    )  # fmt: skip
    quality = np.array([1.0, 1, 1, 0, 1, 0, 0, 1])
    ev = evaluate_predictions("m", built, quality=quality, miss=quality == 0, seed=1)
    assert set(ev) == KEYS | WIDTH_KEYS
    assert ev["width_bin_edges"] == [0.0, 1.0, 2.0, 3.0]  # 1.0 opens [1, 2); 2.3 < ln 10 < 3
    assert ev["width_bin_counts"] == [4, 2, 2]
    assert ev["error_per_width_bin"] == [0.0, 0.5, 1.0]
    assert ev["error_per_width_bin_ci95"][0] == [0.0, 0.0]
    assert ev["error_per_width_bin_ci95"][2] == [1.0, 1.0]
    centres = [np.mean([0.1, 0.4, 0.9, 0.0]), 1.25, 2.25]  # the mean score in each bin
    assert ev["pearson_rho_width"] == pytest.approx(np.corrcoef(centres, [0, 0.5, 1])[0, 1])


def test_per_sample_point_biserial_and_intervals_on_every_correlation():
    rng = np.random.default_rng(5)
    n = 600
    score = rng.random(n) * 2.3
    wrong = rng.random(n) < 0.15 + 0.2 * (score > 1.2)  # a step: rho well inside (-1, 1)
    bins = np.minimum((np.argsort(np.argsort(score)) * 5) // n, 4)
    built = BuiltSplits(sample_ids=np.arange(n), labels=np.zeros(n, np.int64), score=score,
                        bins=bins, is_hard=bins == 4, bin_edges=np.zeros((5, 2)), files={},
                        width=0.5)  # fmt: skip
    ev = evaluate_predictions("m", built, quality=(~wrong).astype(float), miss=wrong, seed=2)
    assert ev["pearson_r_sample"] == pytest.approx(stats.pointbiserialr(wrong, score).statistic)
    for key in ("pearson_r_sample", "pearson_rho", "auroc_score_error", "pearson_rho_width"):
        lo, hi = ev[f"{key}_ci95"]
        assert lo <= ev[key] <= hi, key
    assert ev["auroc_score_error"] == auroc(score, wrong)
    for (lo, hi), e in zip(ev["error_per_bin_ci95"], ev["error_per_bin"], strict=True):
        assert lo <= e <= hi
    again = evaluate_predictions("m", built, quality=(~wrong).astype(float), miss=wrong, seed=2)
    assert again["auroc_score_error_ci95"] == ev["auroc_score_error_ci95"]  # seeded
    # the bins sit at their centres: unequal bins move rho away from the index's
    centres = [score[bins == b].mean() for b in range(5)]
    assert ev["pearson_rho"] == pytest.approx(np.corrcoef(centres, ev["error_per_bin"])[0, 1])
