"""Who drives a run: the host, pid and start time of each attempt's driver process.

``run.json`` keeps one record per attempt, so a resume can refuse a run whose driver
still runs (same host, same pid and the same process start time: a reused pid is
told apart) and can tell a run driven from another host, which it cannot check.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (Linux ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the parenthesised name


def driver_record() -> dict:
    """Who is driving this attempt: host, pid and the process's start time."""
    return {
        "started": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": process_start(os.getpid()),
    }


def driver_alive(record: dict) -> bool:
    """Whether the driver in ``record`` still runs (same host, same pid and start time)."""
    if record.get("host") != socket.gethostname() or record.get("pid") == os.getpid():
        return False
    try:
        pid = int(record["pid"])
        os.kill(pid, 0)
    except (KeyError, TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    start = process_start(pid)
    return start is None or start == record.get("pid_start")
