"""Per-epoch checkpoints: ``<run>/checkpoints/<owner>/epoch=<e>.pt``.

The owner is a replica (``replica=<r>``) or a packed ensemble (``pack=<p>``).

A checkpoint holds what :func:`engine.training.train` needs to continue exactly where
it stopped (weights, optimizer, schedule, data-order and torch RNG states). It is
written atomically after each epoch's training steps and loaded with
``weights_only=True``; an unreadable checkpoint is skipped in favour of an older one.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import torch

from engine.layout import CHECKPOINTS_DIR
from engine.shards.writer import atomic_write_bytes
from engine.spec.training import KEEP_POLICIES

_NAME = re.compile(r"^epoch=(\d+)\.pt$")


def replica_checkpoint_dir(run_dir: Path | str, replica: int | str) -> Path:
    """Directory of one replica's checkpoints (or a pack's: pass ``"pack=<p>"``)."""
    owner = f"replica={replica}" if isinstance(replica, int) else replica
    return Path(run_dir) / CHECKPOINTS_DIR / owner


def checkpoint_epochs(run_dir: Path | str, replica: int | str) -> list[int]:
    """Epochs with a checkpoint file for ``replica``, ascending."""
    folder = replica_checkpoint_dir(run_dir, replica)
    if not folder.is_dir():
        return []
    found = (_NAME.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def save_checkpoint(
    run_dir: Path | str, replica: int | str, epoch: int, state: dict, *, keep: str = "last"
) -> Path | None:
    """Write ``state`` as epoch ``epoch``'s checkpoint, then apply the keep policy.

    With ``keep="last"`` older checkpoints are deleted once the new one is on disk, and
    a checkpoint older than the newest present is not written at all (a replay that
    regenerates an early epoch must not replace the newest one).

    Returns:
        The checkpoint path, or None when the keep policy skipped it.
    """
    if keep not in KEEP_POLICIES:
        raise ValueError(f"keep must be one of {KEEP_POLICIES}, got {keep!r}")
    existing = checkpoint_epochs(run_dir, replica)
    if keep == "last" and existing and existing[-1] > epoch:
        return None
    buf = io.BytesIO()
    torch.save(state, buf)
    path = replica_checkpoint_dir(run_dir, replica) / f"epoch={epoch}.pt"
    atomic_write_bytes(path, buf.getvalue())
    if keep == "last":
        for old in existing:
            if old < epoch:
                (replica_checkpoint_dir(run_dir, replica) / f"epoch={old}.pt").unlink(
                    missing_ok=True
                )
    return path


def load_checkpoint(
    run_dir: Path | str, replica: int | str, *, at_most: int, log: object = None
) -> dict | None:
    """The newest readable checkpoint of ``replica`` at an epoch <= ``at_most``, or None.

    Args:
        run_dir: The run directory.
        replica: Replica index.
        at_most: Latest epoch acceptable.
        log: Optional callable told about checkpoints that could not be read.

    Returns:
        The state dict (``epoch`` says which), or None to start from scratch.
    """
    for epoch in reversed([e for e in checkpoint_epochs(run_dir, replica) if e <= at_most]):
        path = replica_checkpoint_dir(run_dir, replica) / f"epoch={epoch}.pt"
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or corrupt: fall back to an older one
            if callable(log):
                log(f"[train] replica {replica}: checkpoint {path} unreadable ({exc}); skipped")
    return None


def resume_point(
    run_dir: Path,
    owner: int | str,
    name: str,
    done: set[int],
    epochs: int,
    stale: int,
    log: Callable[[str], None],
) -> tuple[list[int], dict | None]:
    """Epochs still to write and the checkpoint to continue from (None: from scratch).

    The checkpoint is the newest readable one at or before the first unfinished epoch.
    """
    todo = [e for e in range(epochs) if e not in done]
    if not todo:
        return todo, None
    state = load_checkpoint(run_dir, owner, at_most=todo[0], log=log)
    if done or state is not None or stale:
        log(
            f"[train] {name}: {len(done)}/{epochs} epochs already done, continuing from "
            f"{'checkpoint of epoch ' + str(state['epoch']) if state else 'scratch'}"
            f"{f', removed {stale} temp files' if stale else ''}"
        )
    return todo, state
