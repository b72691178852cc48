"""Atomic shard writes: temp file in the target directory, then rename."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.shards.layout import block_path
from engine.shards.schema import PROBS_DTYPES, shard_schema


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_table(path: Path | str, table: pa.Table) -> str:
    """Write ``table`` as Parquet to ``path`` atomically.

    Returns:
        The SHA-256 hex digest of the written file.
    """
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def write_epoch_shards(
    run_dir: Path | str,
    *,
    replica: int,
    epoch: int,
    probs: np.ndarray,
    loss: np.ndarray | None,
    labels: np.ndarray | None,
    block_size: int,
    probs_dtype: str = "float32",
    metadata: dict | None = None,
) -> list[dict]:
    """Write one (replica, epoch) of predictions as fixed sample-id blocks.

    Args:
        run_dir: The run directory.
        replica: Replica index r.
        epoch: Epoch index e (0-based).
        probs: Float array (N, K) for sample ids 0..N-1.
        loss: Float array (N,) of per-sample losses, or None without labels.
        labels: Int array (N,), or None without labels.
        block_size: Samples per block.
        probs_dtype: Storage type of ``probs``.
        metadata: Provenance stored in each file's schema metadata.

    Returns:
        One manifest entry per block: ``{"block", "rows", "sha256"}``.
    """
    n, k = probs.shape
    schema = shard_schema(k, probs_dtype, {**(metadata or {}), "replica": replica, "epoch": epoch})
    np_dtype = np.dtype(PROBS_DTYPES[probs_dtype].to_pandas_dtype())
    entries = []
    for block, start in enumerate(range(0, n, block_size)):
        stop = min(start + block_size, n)
        flat = pa.array(probs[start:stop].astype(np_dtype).reshape(-1))
        columns = [
            pa.array(np.arange(start, stop, dtype=np.int64)),
            pa.FixedSizeListArray.from_arrays(flat, k),
            pa.array(loss[start:stop].astype(np.float32))
            if loss is not None
            else pa.nulls(stop - start, pa.float32()),
            pa.array(labels[start:stop].astype(np.int32))
            if labels is not None
            else pa.nulls(stop - start, pa.int32()),
        ]
        table = pa.Table.from_arrays(columns, schema=schema)
        digest = atomic_write_table(block_path(run_dir, replica, epoch, block), table)
        entries.append({"block": block, "rows": stop - start, "sha256": digest})
    return entries
