from pathlib import Path

from engine.tracking import resolve_tracking_uri
from engine.tracking.mlflow_log import flatten_params
from engine.tracking.plots import plot_error_by_bin


def test_default_store_is_the_runs_directorys_sqlite(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(tmp_path) == "http://127.0.0.1:5000"


def test_flatten_params():
    flat = flatten_params({"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {}})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "d": "x", "e": "{}"}


def test_error_by_bin_plot_is_a_png(tmp_path):
    evs = [{"model": "m", "error_per_bin": [0.0, 0.1, 0.5], "pearson_rho": 0.9}]
    path = plot_error_by_bin(evs, "confusion", tmp_path / "e.png")
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_transfer_figure_leaves_the_in_sample_scorer_out(tmp_path, monkeypatch):
    import matplotlib.axes

    from engine.splits.display import display_name, transfer_rows

    evs = [
        {"model": "ensemble", "in_sample": True, "error_per_bin": [0, 0.5], "pearson_rho": 1.0},
        {"model": "big", "in_sample": False, "error_per_bin": [0, 0.2], "pearson_rho": 1.0},
    ]
    assert [ev["model"] for ev in transfer_rows(evs)] == ["big"]
    assert [display_name(ev) for ev in evs] == ["ensemble (scorer, in-sample)", "big"]
    drawn = []
    plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "plot",
        lambda self, *a, **k: drawn.append(k.get("label")) or plot(self, *a, **k),
    )
    plot_error_by_bin(evs, "aum", tmp_path / "e.png")
    assert drawn == ["big (rho=1.00)"]


def test_compare_table_marks_the_scorer_and_shows_sizes():
    from engine.tracking.compare import format_compare_table

    rows = [
        {"build": "b", "model": "ensemble", "in_sample": True, "params": 24050.0,
         "error_all": 0.05, "error_bin_0": 0.0},
        {"build": "b", "model": "resnet18", "in_sample": False, "params": 11172810.0,
         "error_all": 0.02, "error_bin_0": 0.0},
    ]  # fmt: skip
    lines = format_compare_table(rows).splitlines()
    assert lines[2].split()[1:6] == ["ensemble", "(scorer,", "in-sample)", "24.1k", "5.0%"]
    assert lines[3].split()[1:3] == ["resnet18", "11.2M"]


def test_compare_table_shows_fixed_width_bins_and_skips_interval_metrics():
    from engine.tracking.compare import format_compare_table

    rows = [
        {"build": "b", "model": "m", "in_sample": False, "params": 10.0, "error_all": 0.1,
         "error_bin_0": 0.0, "error_bin_1": 0.2, "error_bin_1_ci95_low": 0.1,
         "error_bin_1_ci95_high": 0.3, "error_width_bin_0": 0.05, "error_width_bin_1": 0.4,
         "error_width_bin_1_ci95_high": 0.5, "width_bin_edges": [0.0, 1.0, 2.0],
         "pearson_r_sample": 0.42},
    ]  # fmt: skip
    lines = format_compare_table(rows).splitlines()
    head = lines[0].split()
    assert head[-7:] == ["bin", "1", "0-1", "1-2", "r", "rho", "AUROC"]  # 2 bins, not "ci95"
    assert lines[2].split()[-5:] == ["5.0%", "40.0%", "+0.420", "n/a", "n/a"]


def test_reference_models_default_to_models_larger_than_the_whole_replica_ensemble():
    from engine.evaluation.transfer import model_parameter_counts, reference_models
    from engine.spec import load_spec

    spec = load_spec("benchmarks/digits.yaml")
    params = model_parameter_counts(spec, 10, (1, 8, 8))
    replica = params.pop("replica")
    assert (replica, params) == (
        4810,
        {"small_cnn": 16794, "mlp_wide": 301066, "wide_cnn": 1037450, "resnet18": 11172810},
    )
    names, rule = reference_models(spec, params, replica)
    assert names == ["mlp_wide", "wide_cnn", "resnet18"]  # small_cnn: 16.8k < 5 x 4.8k
    assert rule == "models with more parameters than the 5-replica ensemble (24,050)"
    listed = load_spec("benchmarks/digits.yaml", ["evaluate.reference_models=[small_cnn]"])
    assert reference_models(listed, params, replica) == (
        ["small_cnn"],
        "listed in evaluate.reference_models",
    )
