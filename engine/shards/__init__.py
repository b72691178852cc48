"""Prediction shards: Arrow schema, atomic writer, per-replica manifests, block reader, provenance."""

from engine.shards.layout import (
    MANIFEST_NAME,
    block_path,
    is_packed,
    num_blocks,
    packed_block_path,
    preds_dir,
    replica_manifest_path,
)
from engine.shards.manifest import (
    ShardManifestError,
    consolidate_manifest,
    manifest_rows,
    read_manifest,
    read_packed_manifest,
    read_replica_manifest,
    record_epoch,
    record_packed_epoch,
)
from engine.shards.reader import BlockReader, EpochBlock, ShardValueError
from engine.shards.schema import packed_schema, shard_schema
from engine.shards.writer import (
    atomic_write_bytes,
    atomic_write_table,
    fixed_list,
    write_epoch_shards,
    write_packed_epoch_shards,
)

__all__ = [
    "MANIFEST_NAME",
    "BlockReader",
    "EpochBlock",
    "ShardManifestError",
    "ShardValueError",
    "atomic_write_bytes",
    "atomic_write_table",
    "block_path",
    "consolidate_manifest",
    "fixed_list",
    "is_packed",
    "manifest_rows",
    "num_blocks",
    "packed_block_path",
    "packed_schema",
    "preds_dir",
    "read_manifest",
    "read_packed_manifest",
    "read_replica_manifest",
    "record_epoch",
    "record_packed_epoch",
    "replica_manifest_path",
    "shard_schema",
    "write_epoch_shards",
    "write_packed_epoch_shards",
]
