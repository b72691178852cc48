"""Which process owns something (a run, a partial cache folder), and whether it still runs.

A process is named by its host, pid and start time (clock ticks since boot, from Linux
``/proc``), so a pid the kernel has since given to another process is told apart. Only
a process on this host can be checked: one on another host is :data:`ELSEWHERE`, and
the caller decides from what else it knows (a heartbeat, the age of what it wrote).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

ALIVE = "alive"  # on this host and still running (this very process included)
GONE = "gone"  # on this host and no longer running: exited, a zombie, or its pid reused
ELSEWHERE = "elsewhere"  # on another host: cannot be checked from here
EXITED_STATES = ("Z", "X")  # /proc/<pid>/stat states of a process that has exited
PROC = Path("/proc")  # Linux's process table; without it a pid that answers is trusted


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the parenthesised name (state first), or None."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (Linux ``/proc``), or None."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[19]  # field 22 of stat


def process_record() -> dict:
    """This process: ``{"host", "pid", "pid_start"}``."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": process_start(pid)}


def process_state(record: Mapping) -> str:
    """Whether the process ``record`` names (:func:`process_record`) still runs.

    Args:
        record: ``host``, ``pid`` and ``pid_start`` of the process.

    Returns:
        :data:`ALIVE` (this host, same pid and start time; this process too),
        :data:`GONE` (this host, and no such process, a zombie, or the pid now belongs
        to a process started at another time) or :data:`ELSEWHERE` (another host).
    """
    if record.get("host") != socket.gethostname():
        return ELSEWHERE
    try:
        pid = int(record["pid"])
    except (KeyError, TypeError, ValueError):
        return GONE
    if pid <= 0:  # 0 and -1 would signal a process group or every process
        return GONE
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return GONE
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:  # no /proc here (the pid answered), or it exited just now
        return GONE if PROC.joinpath("self").exists() else ALIVE
    if fields[0] in EXITED_STATES or fields[19] != record.get("pid_start"):
        return GONE
    return ALIVE
