"""Where shards live.

Per-replica form: ``<run>/preds/replica=<r>/epoch=<e>/block=<b>.parquet``.
Packed form (a packed ensemble writes the replica mean and per-replica scalars):
``<run>/preds/packed/epoch=<e>/block=<b>.parquet``.
With ``shards.format: arrow`` the same paths end in ``.arrow`` (uncompressed Arrow IPC
files, the Feather v2 format) instead of ``.parquet``.
"""

from __future__ import annotations

from pathlib import Path

from engine.layout import PREDS_DIR
from engine.spec.training import SHARD_FORMATS

MANIFEST_NAME = "_manifest.json"  # per-replica, packed and run-level manifests share this name
PACKED_DIR = "packed"  # directory of the packed-ensemble form under preds/
DEFAULT_FORMAT = "parquet"  # format of shards whose manifest entry names none (older runs)


def preds_dir(run_dir: Path | str) -> Path:
    """The root of a run's prediction shards."""
    return Path(run_dir) / PREDS_DIR


def _file_name(block: int, fmt: str) -> str:
    if fmt not in SHARD_FORMATS:
        raise ValueError(f"shard format must be one of {', '.join(SHARD_FORMATS)}, got {fmt!r}")
    return f"block={block}.{fmt}"


def block_path(
    run_dir: Path | str, replica: int, epoch: int, block: int, fmt: str = DEFAULT_FORMAT
) -> Path:
    """Path of the shard for one (replica, epoch, sample block) in format ``fmt``."""
    return preds_dir(run_dir) / f"replica={replica}" / f"epoch={epoch}" / _file_name(block, fmt)


def packed_block_path(
    run_dir: Path | str, epoch: int, block: int, fmt: str = DEFAULT_FORMAT
) -> Path:
    """Path of the packed-form shard for one (epoch, sample block), all replicas."""
    return preds_dir(run_dir) / PACKED_DIR / f"epoch={epoch}" / _file_name(block, fmt)


def shard_format(path: Path | str) -> str:
    """The format of a shard file, from its suffix."""
    fmt = Path(path).suffix.lstrip(".")
    if fmt not in SHARD_FORMATS:
        raise ValueError(f"{path} is not a shard file (.{' or .'.join(SHARD_FORMATS)})")
    return fmt


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
