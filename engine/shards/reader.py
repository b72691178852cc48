"""Read one sample block across all (replica, epoch) shards, one epoch at a time.

Every shard is checked as it is read; an error names the file and the first
offending sample id. Both shard forms (per-replica and packed) give the same
:class:`EpochBlock`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.scores import entropy_float32, replica_scalars
from engine.scores._validation import PROBS_SUM_ATOL
from engine.shards.integrity import expected_entries, read_verified_table
from engine.shards.layout import block_path, is_packed, packed_block_path
from engine.shards.manifest import ShardManifestError, read_manifest
from engine.shards.schema import LABEL_SET_FIELD, METADATA_KEY, PACKED_SCALARS, SIGMOID_KEY
from engine.spec.training import SHARD_FORMATS


class ShardValueError(ValueError):
    """A shard holds values no score can use (NaN, bad probabilities, bad labels)."""


class EpochBlock:
    """All replicas' predictions for one epoch of one sample block.

    Attributes (R replicas, N_b samples, K classes):
        epoch: Epoch index.
        sample_ids: Int64 (N_b,).
        labels: Int64 (N_b,), or None without labels.
        probs: Float32 (R, N_b, K), or None in the packed forms.
        mean_probs: Float (N_b, K) replica mean, or None in the reduced form.
        mean_entropy: Float (N_b,) entropy of the replica mean (stored in the reduced
            form, computed from ``mean_probs`` otherwise).
        ensemble_pred, ensemble_conf: Int and float (N_b,) argmax and max of the mean;
            an exact tie in the (rounded) mean goes to the class most replicas predict
            from their float32 logits (``pred``), then to the lowest class.
        loss, margin, p_true, el2n: Float (R, N_b), or None.
        correct: Bool (R, N_b), or None: from the replicas' float32 logits where the
            shards store ``pred``, else from the stored probabilities.
        pred: Int (R, N_b) each replica's argmax of its logits, or None (older shards).
        train_correct: Int8 (R, N_b) presentation records (1 right, 0 wrong, -1 not
            presented during the epoch), or None when not recorded.
        input_grad: Float32 (R, N_b, D), or None on epochs without gradients.
        label_sets: Uint8 (N_b, L) multi-hot truth of multi-label shards, else None.
            Their ``probs`` are per-label sigmoids: ``labels`` is None, and the
            softmax views (``mean_entropy``, ``ensemble_pred``, ``ensemble_conf``) and
            the single-label scalars refuse them rather than misread them.
    """

    def __init__(
        self,
        epoch: int,
        sample_ids: np.ndarray,
        labels: np.ndarray | None,
        *,
        probs: np.ndarray | None = None,
        mean_probs: np.ndarray | None = None,
        per_replica: dict[str, np.ndarray | None] | None = None,
        input_grad: np.ndarray | None = None,
        reduced: dict[str, np.ndarray] | None = None,
        pred: np.ndarray | None = None,
        train_correct: np.ndarray | None = None,
        label_sets: np.ndarray | None = None,
    ) -> None:
        self.epoch = epoch
        self.label_sets = label_sets
        self.sample_ids = sample_ids
        self.labels = labels
        self.probs = probs
        self._mean_probs = mean_probs
        self._given = per_replica or {}
        self.input_grad = input_grad
        self._reduced = reduced or {}
        self.pred = pred
        self.train_correct = train_correct

    @cached_property
    def mean_probs(self) -> np.ndarray | None:
        """Replica-mean probabilities (N_b, K); None in the reduced form."""
        if self._mean_probs is not None:
            return self._mean_probs
        return None if self.probs is None else self.probs.mean(axis=0)

    @property
    def multilabel(self) -> bool:
        """Whether the shards are multi-label (per-label sigmoids, ``label_sets``)."""
        return self.label_sets is not None

    def _single_label(self, what: str) -> None:
        if self.multilabel:
            raise ShardValueError(
                f"{what} reads a softmax over classes; block of sample {int(self.sample_ids[0])} "
                "holds multi-label shards (per-label sigmoids): use the multi-label scores"
            )

    @cached_property
    def mean_entropy(self) -> np.ndarray:
        """Entropy (natural log) of the replica-mean distribution (N_b,)."""
        self._single_label("mean_entropy")
        if "mean_entropy" in self._reduced:
            return self._reduced["mean_entropy"]
        return entropy_float32(self.mean_probs)

    @cached_property
    def ensemble_pred(self) -> np.ndarray:
        """Argmax of the replica mean (N_b,)."""
        self._single_label("ensemble_pred")
        if "ensemble_pred" in self._reduced:
            return self._reduced["ensemble_pred"]
        return ensemble_argmax(self.mean_probs, self.pred)

    @cached_property
    def ensemble_conf(self) -> np.ndarray:
        """Max of the replica mean (N_b,)."""
        self._single_label("ensemble_conf")
        if "ensemble_conf" in self._reduced:
            return self._reduced["ensemble_conf"]
        return self.mean_probs.max(axis=1)

    @cached_property
    def _derived(self) -> dict[str, np.ndarray]:
        if self.probs is None or self.labels is None:
            return {}
        s = replica_scalars(self.labels, self.probs[:, None].astype(np.float64))
        out = {k: v[:, 0] for k, v in s.items()}
        if self.pred is not None:  # exact, from the float32 logits
            out["correct"] = self.pred == self.labels
        return out

    def _scalar(self, name: str) -> np.ndarray | None:
        self._single_label(name)
        value = self._given.get(name)
        return value if value is not None else self._derived.get(name)

    loss = property(lambda self: self._scalar("loss"))
    margin = property(lambda self: self._scalar("margin"))
    p_true = property(lambda self: self._scalar("p_true"))
    correct = property(lambda self: self._scalar("correct"))
    el2n = property(lambda self: self._scalar("el2n"))


def _list_column(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    width = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def ensemble_argmax(mean_probs: np.ndarray, replica_preds: np.ndarray | None) -> np.ndarray:
    """Argmax of the replica-mean probabilities, exact ties broken by the replicas' votes.

    Rounding probabilities to float16 can turn two nearly equal classes of the mean
    into an exact tie (0.49995 and 0.50005 both store as 0.5), where a plain argmax
    would pick the lower class whatever the float32 logits said. A tied row goes to
    the tied class most replicas predict from their float32 logits, then to the lowest
    tied class. Rows that are not tied keep their argmax: a float16 mean can still
    differ from the float32 mean's argmax when the two leading classes are within the
    rounding error of each other (below 2**-11 = 4.9e-4 apart; see docs).

    Args:
        mean_probs: Float (N, K).
        replica_preds: Int (R, N) each replica's argmax of its logits, or None.

    Returns:
        Int64 (N,).
    """
    pred = mean_probs.argmax(axis=1)
    if replica_preds is None or mean_probs.shape[1] < 2:
        return pred
    top2 = np.partition(mean_probs, -2, axis=1)[:, -2:]
    for i in np.flatnonzero(top2[:, 0] == top2[:, 1]):
        tied = np.flatnonzero(mean_probs[i] == top2[i, 1])
        votes = np.array([(replica_preds[:, i] == c).sum() for c in tied])
        pred[i] = tied[int(np.argmax(votes))]  # argmax takes the first (lowest) on a tie
    return pred


HALF_TO_SINGLE = np.float32(2.0**112)  # 2**(127 - 15): float32 minus float16 exponent bias


def widen_probs(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Float16 or float32 probabilities as float32, fast.

    NumPy's float16 cast converts one element at a time (about 0.8 GB/s here). For
    non-negative finite halves, shifting the 15 value bits into a float32's place and
    multiplying by 2**112 gives the same float32 exactly, subnormals included, at
    memory speed. Negative, infinite or NaN halves come out as values above 1, so the
    probability checks still reject them; :func:`check_shard_values` callers re-widen
    with NumPy's cast to name the exact fault.

    Args:
        values: Float16 or float32 array of any shape.
        out: Optional float32 array of the same shape to write into.

    Returns:
        Float32 array of the same shape (``out`` when given).
    """
    if values.dtype != np.float16:
        if out is None:
            return values.astype(np.float32, copy=False)
        out[...] = values
        return out
    bits = values.view(np.uint16).astype(np.uint32)
    bits <<= 13
    return np.multiply(bits.view(np.float32), HALF_TO_SINGLE, out=out)


def _num_classes(table: pa.Table) -> int:
    """K of a per-replica shard (full or top-k)."""
    if "topk_probs" in table.column_names:
        return int(json.loads(table.schema.metadata[METADATA_KEY])["num_classes"])
    return table.schema.field("probs").type.list_size


def _is_sigmoid(table: pa.Table) -> bool:
    """Whether a per-replica shard holds per-label sigmoid probabilities (multi-label)."""
    meta = (table.schema.metadata or {}).get(METADATA_KEY)
    return bool(meta and json.loads(meta).get(SIGMOID_KEY))


def check_sigmoid_values(path: Path, ids: np.ndarray, probs: np.ndarray, part: dict) -> None:
    """Raise :class:`ShardValueError` naming ``path`` and the first bad sample of a multi-label shard.

    Checks: every probability finite and in [0, 1] (rows need not sum to 1), the
    ``label_set`` present and 0/1, losses finite and >= 0.
    """
    _first_bad(path, ids, ~np.isfinite(probs), "probabilities hold NaN or inf")
    _first_bad(path, ids, (probs < 0) | (probs > 1), "a sigmoid probability is outside [0, 1]")
    hot = part["label_set"]
    if hot is None:
        raise ShardValueError(f"shard {path}: a multi-label shard without its label_set column")
    _first_bad(path, ids, hot > 1, "label_set holds a value other than 0 or 1")
    loss = part["loss"]
    if loss is not None:
        _first_bad(path, ids, ~np.isfinite(loss) | (loss < 0), "loss is NaN, inf or negative")


def _optional(table: pa.Table, name: str) -> np.ndarray | None:
    if name not in table.column_names or table.column(name).null_count == len(table):
        return None
    col = table.column(name)
    if col.null_count:
        raise ShardValueError(f"column {name!r} is partly null")
    if pa.types.is_fixed_size_list(col.type):
        return _list_column(table, name)
    return col.to_numpy(zero_copy_only=False)


def _expand_top_k(path: Path, table: pa.Table) -> np.ndarray:
    """Dense (N_b, K) probabilities rebuilt from a top-k shard.

    The k stored values go to their classes; the remaining mass is spread evenly over
    the other K - k classes (the most uncertain completion).
    """
    k_total = int(json.loads(table.schema.metadata[METADATA_KEY])["num_classes"])
    vals = _list_column(table, "topk_probs").astype(np.float32)
    idx = _list_column(table, "topk_idx").astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= k_total):
        raise ShardValueError(f"shard {path}: top-k class index outside [0, {k_total})")
    rest = np.clip(1.0 - vals.sum(axis=1, dtype=np.float64), 0.0, None).astype(np.float32)
    dense = np.repeat((rest / (k_total - vals.shape[1]))[:, None], k_total, axis=1)
    np.put_along_axis(dense, idx, vals, axis=1)
    return dense


def _first_bad(path: Path, ids: np.ndarray, bad: np.ndarray, what: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(len(ids), -1).any(axis=1))[0])
        raise ShardValueError(f"shard {path}: sample_id {int(ids[row])} (row {row}): {what}")


def _row_sums(probs: np.ndarray) -> np.ndarray:
    """Sums over the last axis as one matrix-vector product (several times faster than sum)."""
    k = probs.shape[-1]
    return (probs.reshape(-1, k) @ np.ones(k, dtype=probs.dtype)).reshape(probs.shape[:-1])


def probs_look_valid(probs: np.ndarray, sums: np.ndarray | None = None) -> bool:
    """One cheap pass: every row sums to 1 within tolerance and no value is negative.

    NaN and inf make a row sum fail the comparison, so a True here means the detailed
    checks in :func:`check_shard_values` would all pass. ``sums`` are the row sums if
    the caller already has them.
    """
    if probs.size == 0:
        return True
    sums = _row_sums(probs) if sums is None else sums
    return bool(np.all(np.abs(sums - 1.0) <= PROBS_SUM_ATOL)) and bool(probs.min() >= 0)


def check_shard_values(
    path: Path,
    ids: np.ndarray,
    probs: np.ndarray | None,
    labels: np.ndarray | None,
    scalars: dict,
    *,
    sums: np.ndarray | None = None,
) -> None:
    """Raise :class:`ShardValueError` naming ``path`` and the first bad sample.

    Checks: probabilities finite, non-negative and summing to 1 within
    ``PROBS_SUM_ATOL``; labels in [0, K); losses finite and >= 0; margins finite.
    ``sums`` are the probabilities' row sums, if already computed.
    """
    if probs is not None and not probs_look_valid(probs, sums):
        _first_bad(path, ids, ~np.isfinite(probs), "probabilities hold NaN or inf")
        _first_bad(path, ids, probs < 0, "probabilities hold a negative value")
        sums = probs.sum(axis=-1, dtype=np.float64)
        off = np.abs(sums - 1.0) > PROBS_SUM_ATOL
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise ShardValueError(
                f"shard {path}: sample_id {int(ids[row])} (row {row}): probabilities sum to "
                f"{sums[row]:.6f}, not 1 (tolerance {PROBS_SUM_ATOL})"
            )
    if probs is not None:
        k = probs.shape[-1]
        if labels is not None:
            _first_bad(path, ids, (labels < 0) | (labels >= k), f"label out of range [0, {k})")
    for name in ("loss", "margin", "p_true", "el2n"):
        value = scalars.get(name)
        if value is not None:
            _first_bad(path, ids, ~np.isfinite(value), f"{name} holds NaN or inf")
    if scalars.get("loss") is not None:
        _first_bad(path, ids, scalars["loss"] < 0, "loss is negative")


def _check_widened(
    path: Path,
    table: pa.Table,
    column: str,
    ids: np.ndarray,
    probs: np.ndarray,
    labels: np.ndarray | None,
    scalars: dict,
) -> None:
    """:func:`check_shard_values` on probabilities from :func:`widen_probs`, then renormalise.

    On a failure the check runs again on NumPy's exact cast of ``column``, so the
    error names the real fault (a NaN, a negative value) rather than its widened form;
    when the exact values pass (a ``-0.0`` half, which the fast widening does not
    map to 0) they replace the widened ones. Rows widened from float16 are then
    divided by their sums: rounding K probabilities to float16 leaves rows up to about
    4e-4 off 1 (``tests/perf/results/float16.md``), which would otherwise reach every
    score read from them.
    """
    sums = _row_sums(probs) if probs.size else None
    try:
        check_shard_values(path, ids, probs, labels, scalars, sums=sums)
    except ShardValueError:
        if column not in table.column_names:
            raise
        exact = _list_column(table, column).astype(np.float32)
        check_shard_values(path, ids, exact, labels, scalars)  # raises the real fault
        probs[...] = exact
        sums = _row_sums(probs)
    if sums is not None and table.schema.field(column).type.value_type == pa.float16():
        probs /= sums[..., None]


class BlockReader:
    """Iterates a block's shards one epoch at a time, holding R files (or one packed file).

    Args:
        run_dir: The run directory.
        block: Block index.
        replicas: Replica indices to read.
        epochs: Epoch indices to read, in order.
        expected: Manifest entries by resolved shard path (``expected_entries``); by
            default read from the run's manifests. Every shard is checked against its
            entry (checksum, rows, schema) before any value is used.
    """

    def __init__(
        self,
        run_dir: Path | str,
        block: int,
        replicas: list[int],
        epochs: list[int],
        *,
        expected: dict[str, dict] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.block = block
        self.replicas = list(replicas)
        self.epochs = list(epochs)
        self.packed = is_packed(self.run_dir)
        if expected is None:
            expected = expected_entries(self.run_dir, read_manifest(self.run_dir).values())
        self.expected = expected

    def _read_table(self, paths: list[Path]) -> tuple[Path, pa.Table]:
        """Read the shard among ``paths`` (one per format) that the manifest lists."""
        for path in paths:
            entry = self.expected.get(str(path.resolve()))
            if entry is not None:
                break
        else:
            path = next((p for p in paths if p.exists()), paths[0])
            if not path.exists():
                raise ShardManifestError(f"missing shard {path}")
        return path, read_verified_table(path, entry, packed=self.packed)

    def _replica_table(self, replica: int, epoch: int) -> tuple[Path, pa.Table]:
        return self._read_table(
            [block_path(self.run_dir, replica, epoch, self.block, fmt) for fmt in SHARD_FORMATS]
        )

    def _parse_replica(self, path: Path, table: pa.Table, out: np.ndarray) -> dict:
        """One replica's columns; its float32 probabilities are written into ``out`` (N_b, K)."""
        ids = table.column("sample_id").to_numpy()
        top_k = "topk_probs" in table.column_names
        shape = (table.num_rows, _num_classes(table))
        if shape != out.shape:
            raise ShardManifestError(
                f"shard {path} holds {shape[0]} samples x {shape[1]} classes where the block's "
                f"first replica holds {out.shape[0]} x {out.shape[1]}"
            )
        if top_k:
            out[...] = _expand_top_k(path, table)
        else:
            widen_probs(_list_column(table, "probs"), out=out)
        part = {
            "sample_id": ids,
            "probs": out,
            "label": _optional(table, "label"),
            "loss": _optional(table, "loss"),
            "margin": _optional(table, "margin"),
            "pred": _optional(table, "pred"),
            "sumsq": _optional(table, "sumsq"),
            "train_correct": _optional(table, "train_correct"),
            "input_grad": _optional(table, "input_grad"),
            "top_k": top_k,
            "label_set": _optional(table, LABEL_SET_FIELD),
        }
        k = shape[1]
        if _is_sigmoid(table):
            check_sigmoid_values(path, ids, out, part)
            return part
        if part["pred"] is not None and part["pred"].size:
            _first_bad(
                path, ids, (part["pred"] < 0) | (part["pred"] >= k), f"pred outside [0, {k})"
            )
        if top_k:
            check_shard_values(path, ids, out, part["label"], part)
        else:
            _check_widened(path, table, "probs", ids, out, part["label"], part)
        return part

    def _read_reduced(self, path: Path, table: pa.Table, epoch: int) -> EpochBlock:
        ids = table.column("sample_id").to_numpy()
        labels = _optional(table, "label")
        width = table.schema.field("correct").type.list_size
        if sorted(self.replicas) != list(range(width)):
            raise ShardManifestError(
                f"shard {path} stores the reduction of all {width} replicas; a reduced run "
                f"cannot be scored on a subset {self.replicas}"
            )
        reduced = {
            "mean_entropy": table.column("mean_entropy").to_numpy().astype(np.float64),
            "ensemble_pred": table.column("ensemble_pred").to_numpy().astype(np.int64),
            "ensemble_conf": table.column("ensemble_conf").to_numpy().astype(np.float64),
        }
        per_replica: dict[str, np.ndarray | None] = {}
        for name in ("loss", "margin", "correct"):
            value = _optional(table, name)
            per_replica[name] = None if value is None else value.T.astype(np.float64)
        if per_replica["correct"] is not None:
            per_replica["correct"] = per_replica["correct"].astype(bool)
        if per_replica["loss"] is not None:
            per_replica["p_true"] = np.exp(-per_replica["loss"])
        _first_bad(
            path,
            ids,
            ~np.isfinite(reduced["mean_entropy"]) | (reduced["mean_entropy"] < 0),
            "mean_entropy is NaN, inf or negative",
        )
        check_shard_values(
            path,
            ids,
            None,
            labels,
            {k: v.T for k, v in per_replica.items() if v is not None and k != "correct"},
        )
        grads = _optional(table, "input_grad")  # (N_b, R * D), replica-major
        return EpochBlock(
            epoch,
            ids,
            None if labels is None else labels.astype(np.int64),
            per_replica=per_replica,
            reduced=reduced,
            input_grad=None
            if grads is None
            else grads.reshape(len(ids), width, -1).transpose(1, 0, 2),
        )

    def _read_packed(self, epoch: int) -> EpochBlock:
        path, table = self._read_table(
            [packed_block_path(self.run_dir, epoch, self.block, fmt) for fmt in SHARD_FORMATS]
        )
        if "mean_entropy" in table.column_names:
            return self._read_reduced(path, table, epoch)
        ids = table.column("sample_id").to_numpy()
        labels = _optional(table, "label")
        mean_probs = widen_probs(_list_column(table, "mean_probs"))
        per_replica: dict[str, np.ndarray | None] = {}
        width = table.schema.field("correct").type.list_size
        if max(self.replicas) >= width:
            raise ShardManifestError(
                f"shard {path} holds {width} replicas, asked for {self.replicas}"
            )
        if len(self.replicas) != width:
            raise ShardManifestError(
                f"shard {path} stores the mean of all {width} replicas; a packed run cannot be "
                f"scored on a subset {self.replicas}"
            )
        for name in (*PACKED_SCALARS, "correct"):
            value = _optional(table, name)
            per_replica[name] = None if value is None else value.T[self.replicas]
        if per_replica["correct"] is not None:
            per_replica["correct"] = per_replica["correct"].astype(bool)
        _check_widened(
            path,
            table,
            "mean_probs",
            ids,
            mean_probs,
            labels,
            {k: v.T if v is not None else None for k, v in per_replica.items()},
        )
        stored = _optional(table, "ensemble_pred")
        return EpochBlock(
            epoch,
            ids,
            None if labels is None else labels.astype(np.int64),
            mean_probs=mean_probs,
            per_replica=per_replica,
            reduced=None if stored is None else {"ensemble_pred": stored.astype(np.int64)},
        )

    def __iter__(self) -> Iterator[EpochBlock]:
        """Yield one :class:`EpochBlock` per epoch, checking the replicas agree."""
        for epoch in self.epochs:
            if self.packed:
                yield self._read_packed(epoch)
                continue
            tables = [self._replica_table(r, epoch) for r in self.replicas]
            first = tables[0][1]
            probs = np.empty((len(tables), first.num_rows, _num_classes(first)), np.float32)
            parts = [
                (path, self._parse_replica(path, table, probs[i]))
                for i, (path, table) in enumerate(tables)
            ]
            ref_path, ref = parts[0]
            for path, part in parts[1:]:
                _check_same(ref_path, ref, path, part)
            stacked = {
                name: None if (v := _stacked(parts, name)) is None else v.astype(np.float64)
                for name in ("loss", "margin")
            }
            if stacked["loss"] is not None and any(p["top_k"] for _, p in parts):
                # p(given label) exactly from the stored loss, not from the rebuilt tail,
                # and EL2N from it and the stored sum of squares: ||p - e_y||^2 =
                # sum_k p_k^2 - 2 p_y + 1.
                stacked["p_true"] = np.exp(-stacked["loss"])
                sumsq = _stacked(parts, "sumsq")
                if sumsq is not None:
                    sq = sumsq - 2 * stacked["p_true"] + 1.0
                    stacked["el2n"] = np.sqrt(np.maximum(sq, 0.0))
            pred = _stacked(parts, "pred")
            grads = [p["input_grad"] for _, p in parts]
            yield EpochBlock(
                epoch,
                ref["sample_id"],
                None if ref["label"] is None else ref["label"].astype(np.int64),
                probs=probs,
                per_replica=stacked,
                input_grad=np.stack(grads) if all(g is not None for g in grads) else None,
                pred=None if pred is None else pred.astype(np.int64),
                train_correct=_stacked(parts, "train_correct"),
                label_sets=_same_label_sets(parts),
            )


def _stacked(parts: list[tuple[Path, dict]], name: str) -> np.ndarray | None:
    """(R, N_b) stack of one optional per-replica column, or None unless every shard has it."""
    values = [p[name] for _, p in parts]
    return np.stack(values) if all(v is not None for v in values) else None


def _same_label_sets(parts: list[tuple[Path, dict]]) -> np.ndarray | None:
    """The (N_b, L) multi-hot truth every replica's shard holds, or None for single-label shards.

    Raises:
        ShardManifestError: When the replicas' shards disagree (naming both files).
    """
    ref_path, ref = parts[0]
    for path, part in parts:
        if (part["label_set"] is None) != (ref["label_set"] is None):
            raise ShardManifestError(f"shard {path} and {ref_path} disagree on being multi-label")
        if ref["label_set"] is not None and not np.array_equal(part["label_set"], ref["label_set"]):
            raise ShardManifestError(f"shard {path} and {ref_path} hold different label sets")
    return None if ref["label_set"] is None else ref["label_set"].astype(np.uint8)


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
