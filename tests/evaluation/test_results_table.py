"""The results table names what the scorer is: one replica is not called an ensemble."""

import numpy as np

from engine.evaluation.transfer import format_results_table
from engine.splits.builder import BuiltSplits


def _ev(model: str, replicas: int | None = None, in_sample: bool = False) -> dict:
    return {"model": model, "in_sample": in_sample, "replicas": replicas, "params": 1000,
            "error_per_bin": [0.1, 0.5], "error_hard": 0.5, "error_rest": 0.1, "error_all": 0.2,
            "pearson_rho": 0.9, "pearson_p": 0.01, "hard_minus_rest": 0.4,
            "error_hard_ci95": [0.3, 0.7], "auroc_score_error": 0.8, "ece": 0.1}  # fmt: skip


def _built() -> BuiltSplits:
    return BuiltSplits(sample_ids=np.arange(4), labels=np.zeros(4, int), score=np.arange(4.0),
                       bins=np.array([0, 0, 1, 1]), is_hard=np.array([False, False, False, True]),
                       bin_edges=np.array([[0.0, 1.0], [2.0, 3.0]]), files={})  # fmt: skip


def test_one_replica_is_named_a_single_replica_not_an_ensemble():
    transfer = {"kendall_tau_small_large": 0.3, "reference_models": ["big"], "reference_rule": "r"}
    table = format_results_table(_built(), [_ev("ensemble", 1, True), _ev("big")], "confusion",
                                 transfer)  # fmt: skip
    assert "single replica (scorer, in-sample)" in table and "ensemble (scorer" not in table
    assert "Kendall tau between the single replica's confusion" in table
    assert "replicas.count: 1: its confusion is one model's own predictive entropy" in table
    five = format_results_table(_built(), [_ev("ensemble", 5, True), _ev("big")], "confusion",
                                transfer)  # fmt: skip
    assert "ensemble (scorer, in-sample)" in five and "small ensemble's confusion" in five
    assert "replicas.count: 1" not in five
