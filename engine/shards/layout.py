"""Where shards live: ``<run>/preds/replica=<r>/epoch=<e>/block=<b>.parquet``."""

from __future__ import annotations

from pathlib import Path

MANIFEST_NAME = "_manifest.json"  # per-replica and run-level manifests share this name


def preds_dir(run_dir: Path | str) -> Path:
    """The root of a run's prediction shards."""
    return Path(run_dir) / "preds"


def block_path(run_dir: Path | str, replica: int, epoch: int, block: int) -> Path:
    """Path of the shard for one (replica, epoch, sample block)."""
    return preds_dir(run_dir) / f"replica={replica}" / f"epoch={epoch}" / f"block={block}.parquet"


def replica_manifest_path(run_dir: Path | str, replica: int) -> Path:
    """Manifest of one replica's finished epochs; only that replica's worker writes it."""
    return preds_dir(run_dir) / f"replica={replica}" / MANIFEST_NAME


def num_blocks(num_samples: int, block_size: int) -> int:
    """Number of fixed sample-id blocks: block ``b`` holds ids [b*size, (b+1)*size)."""
    return -(-num_samples // block_size)
