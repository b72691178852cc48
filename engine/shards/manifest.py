"""Manifests of finished (replica, epoch) pairs.

Each replica's worker owns ``preds/replica=<r>/_manifest.json`` and rewrites it
atomically after every epoch, so concurrent workers never write the same file.
After training the driver checks completeness and writes the run-level
``preds/_manifest.json`` with one row per (replica, epoch).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.shards.layout import (
    MANIFEST_NAME,
    packed_manifest_path,
    preds_dir,
    replica_manifest_path,
)
from engine.shards.writer import atomic_write_bytes


class ShardManifestError(RuntimeError):
    """A run's shards are missing or do not match their manifest."""


def _upsert(path: Path, row: dict) -> None:
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    rows = [r for r in rows if r["epoch"] != row["epoch"]]
    rows.append(row)
    rows.sort(key=lambda r: r["epoch"])
    atomic_write_bytes(path, json.dumps({"rows": rows}, indent=1).encode())


def record_epoch(
    run_dir: Path | str, *, replica: int, epoch: int, blocks: list[dict], **extra: object
) -> None:
    """Mark (replica, epoch) finished once all its block shards are written.

    Args:
        run_dir: The run directory.
        replica: Replica index.
        epoch: Epoch index.
        blocks: Entries from ``write_epoch_shards``.
        **extra: JSON-serialisable facts about the epoch (seed, accuracy, seconds).
    """
    _upsert(
        replica_manifest_path(run_dir, replica),
        {"replica": replica, "epoch": epoch, "blocks": blocks, **extra},
    )


def record_packed_epoch(
    run_dir: Path | str, *, replicas: list[int], epoch: int, blocks: list[dict], **extra: object
) -> None:
    """Mark an epoch of a packed ensemble finished for all its ``replicas`` at once."""
    _upsert(
        packed_manifest_path(run_dir),
        {"replicas": list(replicas), "epoch": epoch, "blocks": blocks, **extra},
    )


def read_replica_manifest(run_dir: Path | str, replica: int) -> dict[int, dict]:
    """Finished epochs of one replica (per-replica form): epoch -> manifest row."""
    path = replica_manifest_path(run_dir, replica)
    if not path.exists():
        return {}
    return {row["epoch"]: row for row in json.loads(path.read_text())["rows"]}


def read_packed_manifest(run_dir: Path | str) -> dict[int, dict]:
    """Finished epochs of the packed form (all its replicas at once): epoch -> row."""
    path = packed_manifest_path(run_dir)
    if not path.exists():
        return {}
    return {row["epoch"]: row for row in json.loads(path.read_text())["rows"]}


def read_manifest(run_dir: Path | str) -> dict[tuple[int, int], dict]:
    """All finished (replica, epoch) rows found in the per-replica or packed manifests."""
    found: dict[tuple[int, int], dict] = {}
    for path in sorted(preds_dir(run_dir).glob(f"replica=*/{MANIFEST_NAME}")):
        for row in json.loads(path.read_text())["rows"]:
            found[(row["replica"], row["epoch"])] = row
    for row in read_packed_manifest(run_dir).values():
        for replica in row["replicas"]:
            found[(replica, row["epoch"])] = row
    return found


def manifest_rows(run_dir: Path | str) -> list[dict]:
    """Every distinct manifest row (a packed row covers several replicas but counts once)."""
    return list({id(row): row for row in read_manifest(run_dir).values()}.values())


def consolidate_manifest(
    run_dir: Path | str,
    *,
    replicas: int,
    epochs: int,
    blocks: int,
    allow_partial: bool = False,
) -> dict:
    """Check that every (replica, epoch) finished with every block; write the run manifest.

    Args:
        run_dir: The run directory.
        replicas: R expected.
        epochs: E expected.
        blocks: Blocks expected per (replica, epoch).
        allow_partial: Accept missing pairs; the output lists which were used.

    Returns:
        The run manifest: ``rows`` plus the ``replicas`` and ``epochs`` used.

    Raises:
        ShardManifestError: On a missing (replica, epoch), or a row with the wrong blocks.
    """
    found = read_manifest(run_dir)
    missing = [(r, e) for r in range(replicas) for e in range(epochs) if (r, e) not in found]
    for key, row in found.items():
        got = sorted(b["block"] for b in row["blocks"])
        if got != list(range(blocks)):
            raise ShardManifestError(
                f"replica={key[0]} epoch={key[1]} lists blocks {got}, expected 0..{blocks - 1}"
            )
    if missing and not allow_partial:
        raise ShardManifestError(
            f"{len(missing)} of {replicas * epochs} (replica, epoch) pairs have no finished shards, "
            f"first missing: replica={missing[0][0]} epoch={missing[0][1]}; "
            "pass allow_partial to score the finished ones"
        )
    used_replicas = sorted({r for r, _ in found if r < replicas})
    # A partial run is scored on the epochs every used replica finished.
    used_epochs = [e for e in range(epochs) if all((r, e) in found for r in used_replicas)]
    if not used_replicas or not used_epochs:
        raise ShardManifestError(f"no finished (replica, epoch) pairs under {preds_dir(run_dir)}")
    manifest = {
        "replicas": used_replicas,
        "epochs": used_epochs,
        "blocks": blocks,
        "complete": not missing,
        "rows": list(
            {
                id(row): row for row in (found[(r, e)] for r in used_replicas for e in used_epochs)
            }.values()
        ),
    }
    atomic_write_bytes(preds_dir(run_dir) / MANIFEST_NAME, json.dumps(manifest, indent=1).encode())
    return manifest
