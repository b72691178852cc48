"""The MLflow record of a build (driver only), the comparison across builds, plots and reports."""

from engine.tracking.mlflow_log import BuildRecorder, default_store, resolve_tracking_uri

__all__ = ["BuildRecorder", "default_store", "resolve_tracking_uri"]
