"""Partial cache folders: made with their builder recorded, removed once that builder is gone.

Every cache (the dataset cache, the token cache, the tokenized-table cache) is built in a
``.<name>.<hex>.tmp`` folder beside its final place and renamed into place when whole
(:func:`engine.data.ingest.publish_folder`). A builder killed on the way (``kill -9``,
a lost machine) leaves that folder behind. :func:`make_tmp_folder` records who builds
it (host, pid, process start time) in the folder; :func:`remove_stale_tmp`, run by the
next build of the same cache, removes the folders whose builder is gone and never one
whose builder still runs: two builds of the same cache at once are legal, and both end
with the same published folder.

A folder whose builder is on another host cannot be checked by pid, nor can one made by
an older version (no owner record): those are removed once nothing in them changed for
:data:`STALE_TMP_S`. The record stays in the published folder (it says which process
built it); nothing reads it there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from engine.processes import ALIVE, GONE, process_record, process_state

OWNER_FILE = ".owner.json"  # inside a partial folder: host, pid and start time of its builder
TMP_HEX_CHARS = 8  # random hex characters telling apart the partial folders of concurrent builds
# A partial folder that cannot be checked by pid (its builder is on another host, or it has
# no owner record) is abandoned once nothing in it changed for a day. A build writes a
# block every few seconds but may go quiet for long (a vocabulary's counting pass writes
# nothing); removing a live folder fails another host's build, while keeping a dead one
# only holds disk until the next build after a day, so the limit errs long.
STALE_TMP_S = 24 * 3600.0


def make_tmp_folder(root: Path | str, name: str) -> Path:
    """Make ``<root>/.<name>.<hex>.tmp`` (and ``root``), recording this process as its builder.

    Args:
        root: The folder the cache is published in.
        name: The cache folder's name.

    Returns:
        The new, empty folder but for its owner record (:data:`OWNER_FILE`).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.{uuid.uuid4().hex[:TMP_HEX_CHARS]}.tmp"
    tmp.mkdir()
    record = {**process_record(), "created": time.time()}
    part = tmp / f"{OWNER_FILE}.part"
    part.write_text(json.dumps(record))
    os.replace(part, tmp / OWNER_FILE)  # a reader sees the whole record or none
    return tmp


def tmp_folders(root: Path | str, name: str) -> list[Path]:
    """The partial folders of the cache ``name`` under ``root`` (``.<name>.<hex>.tmp``)."""
    pattern = re.compile(rf"\.{re.escape(name)}\.[0-9a-f]+\.tmp")
    try:
        entries = sorted(Path(root).iterdir())
    except OSError:  # no root yet: nothing was built there
        return []
    return [p for p in entries if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]


def _read_owner(folder: Path) -> dict | None:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _newest_change(folder: Path, enough: float) -> float:
    """The newest modification time in ``folder``'s tree; stops at the first at ``enough`` or later."""
    newest = folder.lstat().st_mtime
    stack = [folder]
    while stack and newest < enough:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:  # removed while we looked
            continue
        for entry in entries:
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except FileNotFoundError:  # a temp file renamed meanwhile: its folder changed too
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    return newest


def stale_reason(folder: Path, *, now: float | None = None) -> str | None:
    """Why the partial folder ``folder`` is abandoned, or None while its builder may still run.

    Args:
        folder: A ``.<name>.<hex>.tmp`` folder.
        now: The current time (epoch seconds); default now.

    Returns:
        ``"builder pid P on H is gone"`` (this host), ``"builder pid P on H, another host,
        changed nothing for 26 h"`` or ``"no owner record (an older version), changed
        nothing for 26 h"``; None for a folder to keep.
    """
    now = time.time() if now is None else now
    owner = _read_owner(folder)
    who = None if owner is None else f"builder pid {owner.get('pid')} on {owner.get('host')}"
    if owner is not None:
        state = process_state(owner)
        if state == ALIVE:
            return None
        if state == GONE:
            return f"{who} is gone"
    try:
        age = now - _newest_change(folder, now - STALE_TMP_S)
    except FileNotFoundError:  # removed by another build meanwhile
        return None
    if age < STALE_TMP_S:
        return None
    what = f"{who}, another host" if owner is not None else "no owner record (an older version)"
    return f"{what}, changed nothing for {age / 3600:.0f} h"


def remove_stale_tmp(
    root: Path | str,
    name: str,
    log: Callable[[str], None] = print,
    *,
    stage: str = "ingest",
) -> list[Path]:
    """Remove the abandoned partial folders of the cache ``name`` (see :func:`stale_reason`).

    Args:
        root: The folder the cache is published in.
        name: The cache folder's name.
        log: Told one line per folder removed, with why.
        stage: The log line's prefix (``ingest``, ``tokens``).

    Returns:
        The folders removed.
    """
    removed = []
    for folder in tmp_folders(root, name):
        reason = stale_reason(folder)
        if reason is None:
            continue
        shutil.rmtree(folder, ignore_errors=True)  # another build may be removing it too
        if folder.exists():
            log(f"[{stage}] could not remove the stale partial cache {folder} ({reason})")
            continue
        removed.append(folder)
        log(f"[{stage}] removed a stale partial cache {folder} ({reason})")
    return removed
