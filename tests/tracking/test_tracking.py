from pathlib import Path

from engine.tracking import resolve_tracking_uri
from engine.tracking.mlflow_log import flatten_params
from engine.tracking.plots import plot_error_by_bin


def test_default_store_is_inside_the_run_dir(monkeypatch, tmp_path):
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
