"""Connect to Ray: an existing cluster when ``RAY_ADDRESS`` is set, else a local one."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

RAY_ADDRESS_ENV = "RAY_ADDRESS"  # when set, attach to this cluster instead of starting one
# Driver-side loggers whose INFO/WARNING chatter (token notice, executor summaries)
# drowns the CLI's own progress lines in quiet mode.
QUIET_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray._private")


@contextlib.contextmanager
def ray_session(num_cpus: int | None = None, *, quiet: bool = True) -> Iterator[dict]:
    """Make sure Ray is initialised for the duration of the block.

    Reuses an already-initialised Ray (tests, notebooks, Ray jobs); otherwise attaches
    to ``RAY_ADDRESS`` or starts a local cluster with ``address="local"`` (a bare
    ``ray.init()`` can hang on a stale ``/tmp/ray`` session). Only a cluster this
    function started is shut down on exit; a connection to ``RAY_ADDRESS`` stays open.

    Args:
        num_cpus: CPUs of a local cluster (default: all cores); ignored when attaching.
        quiet: Keep worker logs and Ray Data progress bars off the driver's terminal.

    Yields:
        ``{"address": ..., "started": bool, "cpus": float}``.
    """
    import ray
    from ray.data import DataContext

    if quiet:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    started = False
    # Ray's core worker installs a C-level SIGTERM handler that aborts the driver; the
    # caller's own (the CLI's: record the build as killed, then exit) is put back.
    on_term = signal.getsignal(signal.SIGTERM)
    if not ray.is_initialized():
        address = os.environ.get(RAY_ADDRESS_ENV)
        kwargs: dict = {
            "log_to_driver": not quiet,
            "logging_level": logging.WARNING if quiet else logging.INFO,
        }
        if address:
            # Attached, not started: stay connected until the process exits. Inside a
            # Ray job, disconnecting lets Ray delete the job's working_dir, which is this
            # process's cwd, while the run still has stages to go.
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
            started = True
        if callable(on_term) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_term)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = not quiet
    ctx.print_on_execution_start = not quiet
    try:
        yield {
            "address": ray.get_runtime_context().gcs_address,
            "started": started,
            "cpus": float(ray.cluster_resources().get("CPU", 0)),
        }
    finally:
        if started:
            ray.shutdown()


def fit_in_thread(trainer: object, name: str) -> tuple[threading.Thread, dict]:
    """Start ``trainer.fit()`` in a daemon thread, so the caller can print progress meanwhile.

    Returns:
        The started thread and the outcome dict it fills: ``"result"`` (the fit's
        result) or ``"error"`` (what it raised, to re-raise in the caller's thread).
    """
    outcome: dict = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # surfaced in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=fit, name=name, daemon=True)
    thread.start()
    return thread, outcome
