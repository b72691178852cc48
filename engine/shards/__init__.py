"""Prediction shards: Arrow schema, atomic writer, per-replica manifests, block reader, provenance."""

from engine.shards.layout import (
    MANIFEST_NAME,
    block_path,
    num_blocks,
    preds_dir,
    replica_manifest_path,
)
from engine.shards.manifest import (
    ShardManifestError,
    consolidate_manifest,
    read_manifest,
    record_epoch,
)
from engine.shards.reader import BlockReader
from engine.shards.schema import shard_schema
from engine.shards.writer import atomic_write_bytes, atomic_write_table, write_epoch_shards

__all__ = [
    "MANIFEST_NAME",
    "BlockReader",
    "ShardManifestError",
    "atomic_write_bytes",
    "atomic_write_table",
    "block_path",
    "consolidate_manifest",
    "num_blocks",
    "preds_dir",
    "read_manifest",
    "record_epoch",
    "replica_manifest_path",
    "shard_schema",
    "write_epoch_shards",
]
