"""Read one sample block across all (replica, epoch) shards, epoch by epoch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from engine.shards.layout import block_path
from engine.shards.manifest import ShardManifestError


@dataclass
class EpochBlock:
    """All replicas' predictions for one epoch of one sample block.

    Attributes:
        epoch: Epoch index.
        sample_ids: Int64 (N_b,).
        probs: Float32 (R, N_b, K).
        loss: Float32 (R, N_b), or None when the shards hold no labels.
        labels: Int64 (N_b,), or None.
    """

    epoch: int
    sample_ids: np.ndarray
    probs: np.ndarray
    loss: np.ndarray | None
    labels: np.ndarray | None


class BlockReader:
    """Iterates a block's shards one epoch at a time, holding R files at once.

    Args:
        run_dir: The run directory.
        block: Block index.
        replicas: Replica indices to read.
        epochs: Epoch indices to read, in order.
    """

    def __init__(
        self, run_dir: Path | str, block: int, replicas: list[int], epochs: list[int]
    ) -> None:
        self.run_dir = Path(run_dir)
        self.block = block
        self.replicas = list(replicas)
        self.epochs = list(epochs)

    def _read(self, replica: int, epoch: int) -> tuple[Path, dict[str, np.ndarray]]:
        path = block_path(self.run_dir, replica, epoch, self.block)
        if not path.exists():
            raise ShardManifestError(f"missing shard {path}")
        table = pq.read_table(path)
        k = table.schema.field("probs").type.list_size
        probs = table.column("probs").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        loss_col, label_col = table.column("loss"), table.column("label")
        return path, {
            "sample_id": table.column("sample_id").to_numpy(),
            "probs": probs.reshape(-1, k).astype(np.float32, copy=False),
            "loss": None
            if loss_col.null_count == len(table)
            else loss_col.to_numpy(zero_copy_only=False),
            "label": None
            if label_col.null_count == len(table)
            else label_col.to_numpy(zero_copy_only=False),
        }

    def __iter__(self) -> Iterator[EpochBlock]:
        """Yield one :class:`EpochBlock` per epoch, checking the replicas agree."""
        for epoch in self.epochs:
            parts = [self._read(r, epoch) for r in self.replicas]
            ref_path, ref = parts[0]
            for path, part in parts[1:]:
                _check_same(ref_path, ref, path, part)
            has_loss = all(p["loss"] is not None for _, p in parts)
            yield EpochBlock(
                epoch=epoch,
                sample_ids=ref["sample_id"],
                probs=np.stack([p["probs"] for _, p in parts]),
                loss=np.stack([p["loss"] for _, p in parts]).astype(np.float32)
                if has_loss
                else None,
                labels=None if ref["label"] is None else ref["label"].astype(np.int64),
            )


def _check_same(ref_path: Path, ref: dict, path: Path, part: dict) -> None:
    if len(part["sample_id"]) != len(ref["sample_id"]):
        raise ShardManifestError(
            f"shard {path} has {len(part['sample_id'])} rows but {ref_path} has {len(ref['sample_id'])}"
        )
    diff = np.flatnonzero(part["sample_id"] != ref["sample_id"])
    if len(diff):
        i = diff[0]
        raise ShardManifestError(
            f"shard {path} row {i} holds sample_id {part['sample_id'][i]} where {ref_path} "
            f"holds {ref['sample_id'][i]}: sample ids differ between replicas"
        )
    if (ref["label"] is None) != (part["label"] is None):
        raise ShardManifestError(
            f"shard {path} and {ref_path} disagree on whether labels are present"
        )
    if ref["label"] is not None:
        diff = np.flatnonzero(part["label"] != ref["label"])
        if len(diff):
            i = diff[0]
            raise ShardManifestError(
                f"shard {path} gives sample {part['sample_id'][i]} label {part['label'][i]} "
                f"where {ref_path} gives {ref['label'][i]}"
            )
