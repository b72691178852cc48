"""Arrow schemas of prediction shards (per-replica and packed forms)."""

from __future__ import annotations

import json

import pyarrow as pa

PROBS_DTYPES = {"float32": pa.float32(), "float16": pa.float16()}  # allowed probs storage types
METADATA_KEY = b"hardbench"  # schema-metadata key holding the shard's provenance JSON
SIGMOID_KEY = "sigmoid_probs"  # shard metadata flag: probs are per-label sigmoids (multi-label)
LABEL_SET_FIELD = "label_set"  # multi-label shards' multi-hot truth (uint8 (L,) per sample)
PACKED_SCALARS = ("loss", "margin", "p_true", "el2n")  # per-replica float columns of a packed shard


def _meta(metadata: dict | None) -> dict[bytes, bytes]:
    return {METADATA_KEY: json.dumps(metadata or {}, sort_keys=True).encode()}


def _probs_type(probs_dtype: str) -> pa.DataType:
    if probs_dtype not in PROBS_DTYPES:
        raise ValueError(f"probs_dtype must be one of {sorted(PROBS_DTYPES)}, got {probs_dtype!r}")
    return PROBS_DTYPES[probs_dtype]


def _replica_extras(pred: bool, presentations: bool) -> list[pa.Field]:
    """Optional per-replica columns of full and top-k shards, in file order."""
    fields = [pa.field("pred", pa.int32())] if pred else []
    if presentations:
        fields.append(pa.field("train_correct", pa.int8()))
    return fields


def shard_schema(
    num_classes: int,
    probs_dtype: str = "float32",
    metadata: dict | None = None,
    *,
    grad_dim: int | None = None,
    pred: bool = True,
    presentations: bool = False,
    label_set: bool = False,
) -> pa.Schema:
    """Schema of one per-replica shard.

    Columns: ``sample_id``, ``probs[K]``, ``loss`` (nullable), ``label`` (nullable),
    ``margin`` (given logit minus largest other, nullable), ``pred`` (the replica's
    argmax of its float32 logits: correctness is exact however ``probs`` is rounded),
    ``train_correct`` (int8 presentation records, when recorded: 1 right, 0 wrong, -1
    not presented during the epoch) and, on epochs where input gradients were recorded,
    ``input_grad[D]`` (float32). Shards written before ``pred`` existed lack it.
    A multi-label shard (``label_set``) holds per-label sigmoid probabilities in
    ``probs[L]`` (its metadata says ``sigmoid_probs``: rows need not sum to 1), no
    ``label``, ``margin`` or ``pred``, and ``label_set[L]`` (uint8 multi-hot truth).

    Args:
        num_classes: K, the fixed list size of ``probs``.
        probs_dtype: ``"float32"`` or ``"float16"``.
        metadata: Provenance stored as JSON under the ``hardbench`` schema-metadata key.
        grad_dim: D, when the shard carries input gradients.
        pred: Whether the shard has the ``pred`` column.
        presentations: Whether the shard has the ``train_correct`` column.
        label_set: Whether it is a multi-label shard with the ``label_set`` column.

    Returns:
        The Arrow schema.
    """
    if label_set:
        metadata = {**(metadata or {}), SIGMOID_KEY: True}
    fields = [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("probs", pa.list_(_probs_type(probs_dtype), num_classes), nullable=False),
        pa.field("loss", pa.float32()),
        pa.field("label", pa.int32()),
        pa.field("margin", pa.float32()),
        *_replica_extras(pred, presentations),
    ]
    if label_set:
        fields.append(pa.field(LABEL_SET_FIELD, pa.list_(pa.uint8(), num_classes), nullable=False))
    if grad_dim is not None:
        fields.append(pa.field("input_grad", pa.list_(pa.float32(), grad_dim)))
    return pa.schema(fields, metadata=_meta(metadata))


def packed_schema(
    num_classes: int,
    num_replicas: int,
    probs_dtype: str = "float32",
    metadata: dict | None = None,
    *,
    ensemble_pred: bool = True,
) -> pa.Schema:
    """Schema of one packed-form shard: the ensemble mean and per-replica scalars.

    Columns: ``sample_id``, ``label`` (nullable), ``mean_probs[K]``, and for each of
    ``loss, margin, p_true, el2n`` a float32 list of length R, plus ``correct`` (int8
    list of length R, from each replica's float32 logits) and ``ensemble_pred`` (int32
    argmax of the float32 replica mean, so rounding ``mean_probs`` cannot move it;
    shards written before it existed lack it). Storage is O(N*(K + 5R)) per epoch
    instead of O(N*K*R).
    """
    fields = [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("label", pa.int32()),
        pa.field("mean_probs", pa.list_(_probs_type(probs_dtype), num_classes), nullable=False),
        *[pa.field(name, pa.list_(pa.float32(), num_replicas)) for name in PACKED_SCALARS],
        pa.field("correct", pa.list_(pa.int8(), num_replicas)),
    ]
    if ensemble_pred:
        fields.append(pa.field("ensemble_pred", pa.int32(), nullable=False))
    return pa.schema(fields, metadata=_meta(metadata))


REDUCED_SCALARS = ("loss", "margin")  # per-replica float16 columns of a reduced shard


def reduced_schema(
    num_replicas: int, metadata: dict | None = None, *, grad_dim: int | None = None
) -> pa.Schema:
    """Schema of one reduced-form shard: what the scores need, reduced in the worker.

    Columns: ``sample_id``, ``label`` (nullable), ``mean_entropy`` (entropy of the
    replica-mean distribution, float32), ``ensemble_pred`` (int16 argmax of that mean:
    K <= 32,767) and ``ensemble_conf`` (its max, float16), and per replica ``loss`` and ``margin`` (float16
    lists of length R) and ``correct`` (int8 list). ``p_true`` is ``exp(-loss)``.
    Storage is O(N*(1 + 5R)) bytes per epoch whatever K is. On an epoch of
    ``shards.grad_epochs`` (text VoG) also ``input_grad``: every replica's D input
    gradients (float32, replica-major: replica r's at ``[r*D, (r+1)*D)``; NaN at
    padded tokens), O(N*R*D*4) bytes more.
    """
    fields = [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("label", pa.int32()),
        pa.field("mean_entropy", pa.float32(), nullable=False),
        pa.field("ensemble_pred", pa.int16(), nullable=False),
        pa.field("ensemble_conf", pa.float16(), nullable=False),
        *[pa.field(name, pa.list_(pa.float16(), num_replicas)) for name in REDUCED_SCALARS],
        pa.field("correct", pa.list_(pa.int8(), num_replicas)),
    ]
    if grad_dim is not None:
        fields.append(pa.field("input_grad", pa.list_(pa.float32(), num_replicas * grad_dim)))
    return pa.schema(fields, metadata=_meta(metadata))


def topk_shard_schema(
    num_classes: int,
    top_k: int,
    probs_dtype: str = "float16",
    metadata: dict | None = None,
    *,
    pred: bool = True,
    sumsq: bool = True,
    presentations: bool = False,
) -> pa.Schema:
    """Schema of a per-replica shard that keeps only each sample's ``top_k`` probabilities.

    Columns: ``sample_id``, ``topk_probs[k]`` (descending) and ``topk_idx[k]`` (their
    classes, int32), then ``loss``, ``label`` and ``margin`` as in the full shard
    (exact: the worker computes them from the logits), ``pred`` (argmax of the
    logits), ``sumsq`` (float32 sum of all K squared probabilities, which with the
    loss's p(label) makes EL2N exact) and optionally ``train_correct``. K is stored in
    the schema metadata as ``num_classes``; a reader spreads the remaining mass evenly
    over the other K - k classes. Shards written before ``pred`` and ``sumsq`` existed
    lack them.
    """
    fields = [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("topk_probs", pa.list_(_probs_type(probs_dtype), top_k), nullable=False),
        pa.field("topk_idx", pa.list_(pa.int32(), top_k), nullable=False),
        pa.field("loss", pa.float32()),
        pa.field("label", pa.int32()),
        pa.field("margin", pa.float32()),
        *_replica_extras(pred, False),
    ]
    if sumsq:
        fields.append(pa.field("sumsq", pa.float32()))
    if presentations:
        fields.append(pa.field("train_correct", pa.int8()))
    return pa.schema(fields, metadata=_meta({**(metadata or {}), "num_classes": num_classes}))
