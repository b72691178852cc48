"""MLflow logging (driver only) and the plots of a run."""

from engine.tracking.mlflow_log import log_benchmark_run, resolve_tracking_uri

__all__ = ["log_benchmark_run", "resolve_tracking_uri"]
