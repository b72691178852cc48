"""Atomic shard writes: temp file in the target directory, then rename."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.shards.checksums import DEFAULT_CHECKSUM, digest
from engine.shards.layout import DEFAULT_FORMAT, block_path, packed_block_path, shard_format
from engine.shards.schema import (
    PACKED_SCALARS,
    PROBS_DTYPES,
    REDUCED_SCALARS,
    packed_schema,
    reduced_schema,
    shard_schema,
    topk_shard_schema,
)


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


def atomic_write_table(
    path: Path | str,
    table: pa.Table,
    *,
    use_dictionary: bool = True,
    checksum: str = DEFAULT_CHECKSUM,
) -> str:
    """Write ``table`` as zstd-compressed Parquet to ``path`` atomically.

    Args:
        path: Destination file.
        table: The table.
        use_dictionary: Dictionary-encode columns. Shards turn it off: their float
            columns have no repeats to exploit, and dictionary pages made reading them
            3x slower (measured on a 65,536-row float16 shard: 9.9 ms vs 3.2 ms).
        checksum: The algorithm of the returned digest (``engine.shards.checksums``).

    Returns:
        The hex digest of the written file's bytes by ``checksum``.
    """
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", use_dictionary=use_dictionary)
    data = sink.getvalue().to_pybytes()
    hex_digest = digest(data, checksum)  # first: an unknown algorithm writes nothing
    atomic_write_bytes(path, data)
    return hex_digest


def atomic_write_ipc(path: Path | str, table: pa.Table, *, checksum: str = DEFAULT_CHECKSUM) -> str:
    """Write ``table`` as an uncompressed Arrow IPC file (Feather v2) to ``path`` atomically.

    Uncompressed on purpose: reading is then a memory map with no decoding, which is
    what makes ``shards.format: arrow`` fast to score (see the README's Scoring section).

    Args:
        path: Destination file.
        table: The table.
        checksum: The algorithm of the returned digest (``engine.shards.checksums``).

    Returns:
        The hex digest of the written file's bytes by ``checksum``.
    """
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    hex_digest = digest(data, checksum)  # first: an unknown algorithm writes nothing
    atomic_write_bytes(path, data)
    return hex_digest


def fixed_list(values: np.ndarray, value_type: pa.DataType) -> pa.FixedSizeListArray:
    """(n, w) array -> Arrow fixed_size_list<value_type>[w] column."""
    values = np.ascontiguousarray(values)
    flat = pa.array(
        values.reshape(-1).astype(value_type.to_pandas_dtype(), copy=False), type=value_type
    )
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _nullable(values: np.ndarray | None, n: int, value_type: pa.DataType) -> pa.Array:
    if values is None:
        return pa.nulls(n, value_type)
    return pa.array(np.asarray(values).astype(value_type.to_pandas_dtype()), type=value_type)


def _blocks(n: int, block_size: int) -> list[tuple[int, int, int]]:
    return [
        (b, start, min(start + block_size, n)) for b, start in enumerate(range(0, n, block_size))
    ]


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
    margin: np.ndarray | None = None,
    input_grad: np.ndarray | None = None,
    metadata: dict | None = None,
    top_k: int | None = None,
    fmt: str = DEFAULT_FORMAT,
    pred: np.ndarray | None = None,
    train_correct: np.ndarray | None = None,
    label_sets: np.ndarray | None = None,
    checksum: str = DEFAULT_CHECKSUM,
    first_sample: int = 0,
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
        margin: Float (N,) given logit minus largest other logit, or None.
        input_grad: Float (N, D) input gradients of the true-class logit, or None.
        metadata: Provenance stored in each file's schema metadata.
        top_k: Keep only each sample's ``top_k`` largest probabilities and their
            classes (``topk_shard_schema``); must be below K.
        fmt: File format, ``parquet`` or ``arrow`` (uncompressed Arrow IPC).
        pred: Int (N,) the replica's argmax of its float32 logits (``argmax_of_logits``);
            stored so correctness does not depend on how ``probs`` is rounded. None
            leaves the column out (correctness is then taken from ``probs``).
        train_correct: Int8 (N,) presentation records of the epoch (1 right, 0 wrong,
            -1 not presented), or None.
        label_sets: Uint8 (N, L) multi-hot truth of a multi-label run, whose ``probs``
            are per-label sigmoids (no ``labels``, ``margin``, ``pred``, top-k or
            gradients), or None.
        checksum: The algorithm of each block's recorded checksum (``shards.checksum``).
        first_sample: The sample id of the arrays' first row, a multiple of
            ``block_size``: the arrays then hold blocks ``first_sample // block_size``
            onwards (a prediction actor writes one block; 0 writes the whole epoch).

    Returns:
        One manifest entry per block: ``{"block", "rows", <checksum>: hex, "format"}``.

    Raises:
        ValueError: For multi-label shards with single-label columns, or ``label_sets``
            whose shape is not (N, L).
    """
    n, k = probs.shape
    if first_sample % block_size:
        raise ValueError(
            f"first_sample {first_sample} is not a multiple of block_size {block_size}"
        )
    if label_sets is not None:
        if label_sets.shape != (n, k):
            raise ValueError(f"label_sets has shape {label_sets.shape}, probs {(n, k)}")
        given = {"labels": labels, "margin": margin, "pred": pred, "top_k": top_k,
                 "input_grad": input_grad}  # fmt: skip
        bad = [name for name, value in given.items() if value is not None]
        if bad:
            raise ValueError(f"multi-label shards take no {', '.join(bad)}")
    meta = {**(metadata or {}), "replica": replica, "epoch": epoch}
    value_type = PROBS_DTYPES[probs_dtype]
    flags = {"pred": pred is not None, "presentations": train_correct is not None}
    if top_k is not None:
        if not 1 <= top_k < k:
            raise ValueError(f"top_k must be in [1, K={k}), got {top_k}")
        if input_grad is not None:
            raise ValueError("top-k shards do not carry input gradients")
        schema = topk_shard_schema(k, top_k, probs_dtype, meta, **flags)
        vals, idx = top_k_of(probs, top_k)
        p32 = np.asarray(probs, dtype=np.float32)
        sumsq = np.einsum("nk,nk->n", p32, p32)

        def prob_columns(a: int, b: int) -> list[pa.Array]:
            return [fixed_list(vals[a:b], value_type), fixed_list(idx[a:b], pa.int32())]

        def tail_columns(a: int, b: int) -> list[pa.Array]:
            return [pa.array(sumsq[a:b], pa.float32())]
    else:
        grad_dim = None if input_grad is None else int(np.prod(input_grad.shape[1:]))
        schema = shard_schema(k, probs_dtype, meta, grad_dim=grad_dim, **flags,
                              label_set=label_sets is not None)  # fmt: skip

        def prob_columns(a: int, b: int) -> list[pa.Array]:
            return [fixed_list(probs[a:b], value_type)]

        def tail_columns(a: int, b: int) -> list[pa.Array]:
            return []

    def label_set_columns(a: int, b: int) -> list[pa.Array]:
        if label_sets is None:
            return []
        return [fixed_list(np.asarray(label_sets[a:b], np.uint8), pa.uint8())]

    entries = []
    first_block = first_sample // block_size
    for block, start, stop in _blocks(n, block_size):
        block += first_block  # the block's index in the whole epoch
        columns = [
            pa.array(np.arange(first_sample + start, first_sample + stop, dtype=np.int64)),
            *prob_columns(start, stop),
            _nullable(None if loss is None else loss[start:stop], stop - start, pa.float32()),
            _nullable(None if labels is None else labels[start:stop], stop - start, pa.int32()),
            _nullable(None if margin is None else margin[start:stop], stop - start, pa.float32()),
        ]
        if pred is not None:
            columns.append(pa.array(np.asarray(pred[start:stop], dtype=np.int32)))
        columns += tail_columns(start, stop)
        if train_correct is not None:
            columns.append(pa.array(np.asarray(train_correct[start:stop], dtype=np.int8)))
        columns += label_set_columns(start, stop)
        if input_grad is not None:
            columns.append(
                fixed_list(input_grad[start:stop].reshape(stop - start, -1), pa.float32())
            )
        path = block_path(run_dir, replica, epoch, block, fmt)
        entries.append(_write_block(path, columns, schema, checksum))
    return entries


def top_k_of(probs: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` largest probabilities of each row, descending, and their classes.

    Args:
        probs: Float (N, K).
        top_k: k < K.

    Returns:
        ``(values (N, k), classes (N, k) int32)``.
    """
    idx = np.argpartition(-probs, top_k - 1, axis=1)[:, :top_k]
    vals = np.take_along_axis(probs, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1).astype(
        np.int32
    )


def _replica_lists(
    schema: pa.Schema,
    scalars: dict[str, np.ndarray] | None,
    names: tuple[str, ...],
    value_type: pa.DataType,
    start: int,
    stop: int,
) -> list[pa.Array]:
    """Per-replica list columns ``names`` (as ``value_type``), then ``correct`` (int8).

    Covers samples [start, stop); all null when ``scalars`` is None (no labels).
    """
    out = []
    for name, vtype in [*((n, value_type) for n in names), ("correct", pa.int8())]:
        if scalars is None:
            out.append(pa.nulls(stop - start, schema.field(name).type))
        else:
            out.append(fixed_list(np.asarray(scalars[name])[:, start:stop].T, vtype))
    return out


def _write_block(path: Path, columns: list[pa.Array], schema: pa.Schema, checksum: str) -> dict:
    """Write one block's table atomically in the format its suffix names; its manifest entry.

    The entry records the file's checksum under the algorithm's name (``checksum``).
    """
    table = pa.Table.from_arrays(columns, schema=schema)
    fmt = shard_format(path)
    if fmt == "arrow":
        hex_digest = atomic_write_ipc(path, table, checksum=checksum)
    else:
        hex_digest = atomic_write_table(path, table, use_dictionary=False, checksum=checksum)
    block = int(path.stem.split("=")[1])
    return {"block": block, "rows": table.num_rows, checksum: hex_digest, "format": fmt}


def write_packed_epoch_shards(
    run_dir: Path | str,
    *,
    epoch: int,
    mean_probs: np.ndarray,
    scalars: dict[str, np.ndarray],
    labels: np.ndarray | None,
    block_size: int,
    probs_dtype: str = "float32",
    metadata: dict | None = None,
    fmt: str = DEFAULT_FORMAT,
    ensemble_pred: np.ndarray | None = None,
    checksum: str = DEFAULT_CHECKSUM,
) -> list[dict]:
    """Write one epoch of a packed ensemble: the replica mean and per-replica scalars.

    Args:
        run_dir: The run directory.
        epoch: Epoch index.
        mean_probs: Float (N, K) replica-mean probabilities.
        scalars: ``loss, margin, p_true, el2n`` as float (R, N) and ``correct`` as bool
            (R, N); all required when ``labels`` is given, ignored otherwise.
        labels: Int (N,), or None without labels.
        block_size: Samples per block.
        probs_dtype: Storage type of ``mean_probs``.
        metadata: Provenance stored in each file's schema metadata.
        fmt: File format, ``parquet`` or ``arrow``.
        ensemble_pred: Int (N,) argmax of the float32 replica mean (default: computed
            from ``mean_probs`` before any rounding).
        checksum: The algorithm of each block's recorded checksum (``shards.checksum``).

    Returns:
        One manifest entry per block: ``{"block", "rows", <checksum>: hex, "format"}``.
    """
    n, k = mean_probs.shape
    r = scalars["loss"].shape[0] if labels is not None else int((metadata or {}).get("replicas", 1))
    schema = packed_schema(k, r, probs_dtype, {**(metadata or {}), "epoch": epoch})
    if ensemble_pred is None:
        ensemble_pred = np.asarray(mean_probs).argmax(axis=1)
    entries = []
    for block, start, stop in _blocks(n, block_size):
        m = stop - start
        columns = [
            pa.array(np.arange(start, stop, dtype=np.int64)),
            _nullable(None if labels is None else labels[start:stop], m, pa.int32()),
            fixed_list(mean_probs[start:stop], PROBS_DTYPES[probs_dtype]),
        ]
        columns += _replica_lists(
            schema, None if labels is None else scalars, PACKED_SCALARS, pa.float32(), start, stop
        )
        columns.append(pa.array(np.asarray(ensemble_pred[start:stop], dtype=np.int32)))
        path = packed_block_path(run_dir, epoch, block, fmt)
        entries.append(_write_block(path, columns, schema, checksum))
    return entries


def write_reduced_epoch_shards(
    run_dir: Path | str,
    *,
    epoch: int,
    mean_entropy: np.ndarray,
    ensemble_pred: np.ndarray,
    ensemble_conf: np.ndarray,
    scalars: dict[str, np.ndarray] | None,
    labels: np.ndarray | None,
    num_replicas: int,
    block_size: int,
    metadata: dict | None = None,
    fmt: str = DEFAULT_FORMAT,
    checksum: str = DEFAULT_CHECKSUM,
    input_grad: np.ndarray | None = None,
) -> list[dict]:
    """Write one epoch of a packed ensemble in the reduced form (no probabilities).

    Args:
        run_dir: The run directory.
        epoch: Epoch index.
        mean_entropy: Float (N,) entropy (natural log) of the replica-mean distribution.
        ensemble_pred: Int (N,) argmax of the replica mean.
        ensemble_conf: Float (N,) max of the replica mean.
        scalars: ``loss`` and ``margin`` as float (R, N) and ``correct`` as bool (R, N);
            None without labels.
        labels: Int (N,), or None without labels.
        num_replicas: R.
        block_size: Samples per block.
        metadata: Provenance stored in each file's schema metadata.
        fmt: File format, ``parquet`` or ``arrow``.
        checksum: The algorithm of each block's recorded checksum (``shards.checksum``).
        input_grad: Float (R, N, ...) every replica's input gradients on a gradient
            epoch (NaN at padding), stored float32; None on other epochs.

    Returns:
        One manifest entry per block: ``{"block", "rows", <checksum>: hex, "format"}``.
    """
    n = len(mean_entropy)
    if len(ensemble_pred) and int(np.max(ensemble_pred)) > np.iinfo(np.int16).max:
        raise ValueError("reduced shards store class ids as int16: K must be <= 32,767")
    grads = None
    if input_grad is not None:
        grads = np.asarray(input_grad)
        if grads.shape[:2] != (num_replicas, n):
            raise ValueError(
                f"input_grad must have shape ({num_replicas}, {n}, ...), got {grads.shape}"
            )
        grads = grads.reshape(num_replicas, n, -1)
    schema = reduced_schema(
        num_replicas, {**(metadata or {}), "epoch": epoch},
        grad_dim=None if grads is None else grads.shape[2],
    )  # fmt: skip
    entries = []
    for block, start, stop in _blocks(n, block_size):
        m = stop - start
        columns = [
            pa.array(np.arange(start, stop, dtype=np.int64)),
            _nullable(None if labels is None else labels[start:stop], m, pa.int32()),
            pa.array(np.asarray(mean_entropy[start:stop], dtype=np.float32)),
            pa.array(np.asarray(ensemble_pred[start:stop], dtype=np.int16)),
            pa.array(np.asarray(ensemble_conf[start:stop], dtype=np.float16)),
        ]
        columns += _replica_lists(schema, scalars, REDUCED_SCALARS, pa.float16(), start, stop)
        if grads is not None:  # (R, m, D) -> (m, R * D), replica-major per sample
            columns.append(fixed_list(grads[:, start:stop].transpose(1, 0, 2).reshape(m, -1),
                                      pa.float32()))  # fmt: skip
        path = packed_block_path(run_dir, epoch, block, fmt)
        entries.append(_write_block(path, columns, schema, checksum))
    return entries


def remove_stale_temp_files(*folders: Path) -> int:
    """Delete temp files a killed writer left in ``folders``; returns how many."""
    removed = 0
    for folder in folders:
        if folder.is_dir():
            for tmp in folder.rglob(".*.tmp-*"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed
