"""Arrow schema of a prediction shard."""

from __future__ import annotations

import json

import pyarrow as pa

PROBS_DTYPES = {"float32": pa.float32(), "float16": pa.float16()}  # allowed probs storage types
METADATA_KEY = b"hardbench"  # schema-metadata key holding the shard's provenance JSON


def shard_schema(
    num_classes: int, probs_dtype: str = "float32", metadata: dict | None = None
) -> pa.Schema:
    """Schema of one shard: ``sample_id, probs[K], loss, label``.

    Args:
        num_classes: K, the fixed list size of ``probs``.
        probs_dtype: ``"float32"`` or ``"float16"``.
        metadata: Provenance stored as JSON under the ``hardbench`` schema-metadata key.

    Returns:
        The Arrow schema.
    """
    if probs_dtype not in PROBS_DTYPES:
        raise ValueError(f"probs_dtype must be one of {sorted(PROBS_DTYPES)}, got {probs_dtype!r}")
    fields = [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("probs", pa.list_(PROBS_DTYPES[probs_dtype], num_classes), nullable=False),
        pa.field("loss", pa.float32()),
        pa.field("label", pa.int32()),
    ]
    meta = {METADATA_KEY: json.dumps(metadata or {}, sort_keys=True).encode()}
    return pa.schema(fields, metadata=meta)
