"""Who drives a run, whether that driver still runs, and so the run's effective state.

``run.json`` keeps one record per attempt (host, pid and process start time of its
driver), so a resume can refuse a run whose driver still runs (a reused pid is told
apart) and ``hardbench ls`` can show a run whose driver died without a word (``kill -9``,
a lost machine) as :data:`INTERRUPTED` rather than running for ever.

A driver on another host cannot be checked by pid, so while a driver works a
:class:`Heartbeat` daemon thread refreshes the modification time of
``<run>/.heartbeat`` (a small JSON naming the driver) every :data:`HEARTBEAT_EVERY_S`;
another host calls the driver gone once no beat came for :data:`HEARTBEAT_STALE_S`. The
heartbeat is its own file, never ``run.json`` (which the driver rewrites atomically
after every stage), and its name starts with a dot, so mirrors skip it: a downloaded
mirror holds no live driver's heartbeat and so cannot be judged by one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.layout import HEARTBEAT_FILE
from engine.processes import ALIVE, ELSEWHERE, GONE, process_record, process_start, process_state
from engine.shards import atomic_write_bytes

__all__ = [
    "HEARTBEAT_EVERY_S",
    "HEARTBEAT_FILE",
    "HEARTBEAT_STALE_S",
    "INTERRUPTED",
    "DriverCheck",
    "Heartbeat",
    "RunState",
    "check_driver",
    "driver_alive",
    "driver_record",
    "last_heartbeat",
    "process_start",
    "run_state",
]

HEARTBEAT_EVERY_S = 30.0  # seconds between two beats of a working driver
# No beat for this long: another host's driver is gone. 20 missed beats, so clock skew
# between hosts and a shared filesystem that stalls for minutes never end a live run.
HEARTBEAT_STALE_S = 600.0
INTERRUPTED = "interrupted"  # the effective status of a run marked running whose driver is gone
JOIN_TIMEOUT_S = 5.0  # how long stopping a heartbeat waits for its thread


def driver_record() -> dict:
    """Who is driving this attempt: when it started, host, pid and the process's start time."""
    return {"started": time.time(), **process_record()}


def driver_alive(record: Mapping) -> bool:
    """Whether the driver in ``record`` still runs here (same host, pid and start time).

    This process is never counted: a driver that resumes its own run is not in its way.
    """
    return record.get("pid") != os.getpid() and process_state(record) == ALIVE


def _same_driver(a: Mapping, b: Mapping) -> bool:
    return all(a.get(k) == b.get(k) for k in ("host", "pid", "pid_start"))


class Heartbeat:
    """A daemon thread that shows a driver is alive to other hosts while it works.

    :meth:`start` writes ``<run>/.heartbeat`` (the driver's host, pid and start time),
    then a daemon thread refreshes its modification time every ``every_s`` until
    :meth:`stop`. The thread never keeps the process alive, and a failing beat (a
    vanished run directory, a full disk) is logged once, never raised into the run.

    Args:
        run_dir: The run directory.
        record: This attempt's driver record (:func:`driver_record`).
        every_s: Seconds between beats.
        log: Told one line when a beat fails.
    """

    def __init__(
        self,
        run_dir: Path | str,
        record: Mapping,
        *,
        every_s: float = HEARTBEAT_EVERY_S,
        log: Callable[[str], None] = print,
    ) -> None:
        self.path = Path(run_dir) / HEARTBEAT_FILE
        self.record = {k: record.get(k) for k in ("host", "pid", "pid_start")}
        self.every_s = every_s
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False

    def start(self) -> Heartbeat:
        """Write the first beat and start the thread; returns ``self``."""
        try:
            self._write()
        except OSError as exc:
            self._failed_once(exc)
        self._thread = threading.Thread(target=self._run, name="hardbench-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (the file stays: the driver's last sign of life)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            self._thread = None

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write(self) -> None:
        atomic_write_bytes(self.path, json.dumps({**self.record, "every_s": self.every_s}).encode())

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                try:
                    os.utime(self.path)
                except FileNotFoundError:
                    if not self.path.parent.is_dir():  # the run directory is gone: not remade
                        raise
                    self._write()  # the file was removed under the driver: written again
            except OSError as exc:
                self._failed_once(exc)

    def _failed_once(self, exc: OSError) -> None:
        if not self._failed:
            self._failed = True
            self._log(f"[run] heartbeat {self.path} failed (other hosts may call the run "
                      f"interrupted after {HEARTBEAT_STALE_S:.0f} s): {exc}")  # fmt: skip


def last_heartbeat(run_dir: Path | str, record: Mapping) -> float | None:
    """When the driver ``record`` names last beat (epoch seconds), or None if it left no beat."""
    path = Path(run_dir) / HEARTBEAT_FILE
    try:
        beat = json.loads(path.read_text())
        mtime = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    return mtime if isinstance(beat, dict) and _same_driver(beat, record) else None


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class DriverCheck:
    """What this machine can tell about a run's driver.

    Attributes:
        state: ``alive``, ``gone`` or ``elsewhere`` (another host that left no heartbeat
            of this attempt: cannot be told).
        reason: One line saying what was checked, e.g. ``driver pid 4242 on n1 is gone``.
    """

    state: str
    reason: str


def check_driver(run_dir: Path | str, record: Mapping, *, now: float | None = None) -> DriverCheck:
    """Whether the driver of ``record`` (an attempt of the run in ``run_dir``) still runs.

    On this host the pid and its start time decide; on another host the heartbeat:
    alive while it beat within :data:`HEARTBEAT_STALE_S`, gone after.

    Args:
        run_dir: The run directory (holds the heartbeat).
        record: The attempt's driver record.
        now: The current time (epoch seconds); default now.
    """
    who = f"driver pid {record.get('pid')} on {record.get('host')}"
    state = process_state(record)
    if state == ALIVE:
        return DriverCheck(ALIVE, f"{who} is running")
    if state == GONE:
        return DriverCheck(GONE, f"{who} is gone")
    beat = last_heartbeat(run_dir, record)
    if beat is None:
        return DriverCheck(ELSEWHERE, f"{who}, another host, left no heartbeat to check")
    age = max(0.0, (time.time() if now is None else now) - beat)
    if age > HEARTBEAT_STALE_S:
        return DriverCheck(GONE, f"{who} is gone (no heartbeat for {_age(age)})")
    return DriverCheck(ALIVE, f"{who} is running (last heartbeat {_age(age)} ago)")


@dataclass(frozen=True)
class RunState:
    """A run's effective state, computed from ``run.json`` without writing it.

    Attributes:
        status: ``run.json``'s status (``running``, ``complete``, ``failed``, ``killed``),
            or ``interrupted`` when it says running and its driver is gone.
        reason: For a run marked running, what was checked (:class:`DriverCheck`).
    """

    status: str
    reason: str = ""


def run_state(run_dir: Path | str, status: Mapping, *, now: float | None = None) -> RunState:
    """The effective state of the run in ``run_dir`` whose ``run.json`` is ``status``.

    A run marked running whose last attempt's driver is gone (on this host: its process
    no longer runs; on another: no heartbeat for :data:`HEARTBEAT_STALE_S`) is
    :data:`INTERRUPTED`; ``hardbench run --resume`` continues it. A driver on another
    host that left no heartbeat (a downloaded mirror, a run of an older version) cannot
    be told and stays ``running``.
    """
    recorded = str(status.get("status"))
    attempts = status.get("attempts") or []
    if recorded != "running" or not attempts:
        return RunState(recorded)
    check = check_driver(run_dir, attempts[-1], now=now)
    return RunState(INTERRUPTED if check.state == GONE else recorded, check.reason)
