"""Where shards live.

Per-replica form: ``<run>/preds/replica=<r>/epoch=<e>/block=<b>.parquet``.
Packed form (a packed ensemble writes the replica mean and per-replica scalars):
``<run>/preds/packed/epoch=<e>/block=<b>.parquet``.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST_NAME = "_manifest.json"  # per-replica, packed and run-level manifests share this name
PACKED_DIR = "packed"  # directory of the packed-ensemble form under preds/


def preds_dir(run_dir: Path | str) -> Path:
    """The root of a run's prediction shards."""
    return Path(run_dir) / "preds"


def block_path(run_dir: Path | str, replica: int, epoch: int, block: int) -> Path:
    """Path of the shard for one (replica, epoch, sample block)."""
    return preds_dir(run_dir) / f"replica={replica}" / f"epoch={epoch}" / f"block={block}.parquet"


def packed_block_path(run_dir: Path | str, epoch: int, block: int) -> Path:
    """Path of the packed-form shard for one (epoch, sample block), all replicas."""
    return preds_dir(run_dir) / PACKED_DIR / f"epoch={epoch}" / f"block={block}.parquet"


def replica_manifest_path(run_dir: Path | str, replica: int) -> Path:
    """Manifest of one replica's finished epochs; only that replica's worker writes it."""
    return preds_dir(run_dir) / f"replica={replica}" / MANIFEST_NAME


def packed_manifest_path(run_dir: Path | str) -> Path:
    """Manifest of the packed form's finished epochs."""
    return preds_dir(run_dir) / PACKED_DIR / MANIFEST_NAME


def is_packed(run_dir: Path | str) -> bool:
    """Whether the run's shards are in the packed-ensemble form."""
    return (preds_dir(run_dir) / PACKED_DIR).is_dir()


def num_blocks(num_samples: int, block_size: int) -> int:
    """Number of fixed sample-id blocks: block ``b`` holds ids [b*size, (b+1)*size)."""
    return -(-num_samples // block_size)
