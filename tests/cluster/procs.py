"""Find and stop the processes of a Ray cluster a test started (by temp dir or port)."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pids_using(*markers: str) -> list[int]:
    """Processes whose command line mentions a marker (a cluster's temp dir or GCS port), and
    all their descendants (Ray renames agents and workers, e.g. ``ray::DashboardAgent``)."""
    cmdlines, parents = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            cmdlines[int(entry.name)], parents[int(entry.name)] = cmd, ppid
    found = {
        pid
        for pid, cmd in cmdlines.items()
        if any(m in cmd for m in markers) and pid != os.getpid()
    }
    grew = True
    while grew:
        kids = {pid for pid, ppid in parents.items() if ppid in found} - found - {os.getpid()}
        found |= kids
        grew = bool(kids)
    return sorted(found)


def stop_pids(pids: list[int], grace_s: float = 2.0) -> None:
    """SIGTERM, then SIGKILL, each of ``pids`` (listed before any dies: orphans lose their
    parent link)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(grace_s)


def kill_driver_and_cluster(proc: subprocess.Popen, ray_tmpdir: str) -> int:
    """SIGKILL a driver and every process of the local Ray cluster it started, at once.

    As when the driver's machine goes down: no process gets to clean up or finish an
    epoch. Returns how many Ray processes were killed.
    """
    doomed = [proc.pid, *pids_using(ray_tmpdir)]
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)
    stop_pids(pids_using(ray_tmpdir), grace_s=1)
    return len(doomed) - 1


@contextmanager
def private_ray_env(prefix: str) -> Iterator[dict]:
    """The environment of CLI builds with their own local Ray clusters (a private RAY_TMPDIR,
    no RAY_ADDRESS or MLFLOW_TRACKING_URI); every process of those clusters is stopped at the end."""
    temp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")  # short: Ray's socket paths are long
    env = {**os.environ, "RAY_TMPDIR": temp, "MLFLOW_LOGGING_LEVEL": "WARNING"}
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    try:
        yield env
    finally:
        stop_pids(pids_using(temp))
        shutil.rmtree(temp, ignore_errors=True)
