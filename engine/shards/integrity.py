"""Shard integrity: every shard is checked against its manifest entry before it is used.

The writer records each block's row count and a checksum of the file's bytes, under
the algorithm's name (``xxh3_128`` by default, ``sha256`` when ``shards.checksum``
says so and in every manifest written before it could be chosen; see
:mod:`engine.shards.checksums`). A shard whose bytes, row count or schema differ from
that record (a truncated copy, a flipped bit, a file rewritten by something else) is
never scored: the reader raises :class:`ShardIntegrityError`, and :func:`verify_shards`
lists every such shard so :func:`quarantine_shards` can move them aside and drop their
manifest rows, after which resuming the run regenerates them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.layout import QUARANTINE_DIR
from engine.shards.checksums import EntryChecksumError, digest, entry_checksum
from engine.shards.layout import (
    DEFAULT_FORMAT,
    MANIFEST_NAME,
    block_path,
    packed_block_path,
    packed_manifest_path,
    preds_dir,
    replica_manifest_path,
    shard_format,
)
from engine.shards.manifest import ShardManifestError, manifest_rows
from engine.shards.schema import (
    LABEL_SET_FIELD,
    METADATA_KEY,
    PROBS_DTYPES,
    packed_schema,
    reduced_schema,
    shard_schema,
    topk_shard_schema,
)
from engine.shards.writer import atomic_write_bytes


class ShardIntegrityError(ShardManifestError):
    """A shard's bytes, row count or schema differ from its manifest entry."""


@dataclass(frozen=True)
class ShardProblem:
    """One shard that failed verification.

    Attributes:
        path: The shard file.
        replicas: The replicas whose predictions it holds (one, or all in the packed form).
        epoch: Epoch index.
        block: Block index.
        reason: What is wrong, for people.
        packed: Whether it is a packed-form shard.
    """

    path: Path
    replicas: tuple[int, ...]
    epoch: int
    block: int
    reason: str
    packed: bool = False


def manifest_entries(
    run_dir: Path | str, rows: Iterable[dict]
) -> Iterator[tuple[Path, dict, dict]]:
    """``(path, block entry, row)`` for every block of every manifest row."""
    for row in rows:
        for entry in row["blocks"]:
            fmt = entry.get("format", DEFAULT_FORMAT)
            if "replicas" in row:
                path = packed_block_path(run_dir, row["epoch"], entry["block"], fmt)
            else:
                path = block_path(run_dir, row["replica"], row["epoch"], entry["block"], fmt)
            yield path, entry, row


def manifest_checksums(run_dir: Path | str) -> dict[str, tuple[str, str]]:
    """Shard path -> the ``(algorithm, hex digest)`` the manifest records for it.

    Entries that record no usable checksum are left out (:func:`verify_shards` lists
    them as problems).
    """
    out = {}
    for path, entry, _ in manifest_entries(run_dir, manifest_rows(run_dir)):
        try:
            out[str(path)] = entry_checksum(entry, path)
        except EntryChecksumError:
            continue
    return out


def file_matches(path: Path | str, checksum: tuple[str, str]) -> bool:
    """Whether the file at ``path`` exists and has the ``(algorithm, hex digest)`` given."""
    path = Path(path)
    if not path.is_file():
        return False
    algorithm, hex_digest = checksum
    return digest(path.read_bytes(), algorithm) == hex_digest


def expected_entries(run_dir: Path | str, rows: Iterable[dict]) -> dict[str, dict]:
    """Manifest entries keyed by the shard's resolved path, for :func:`read_verified_table`."""
    return {str(Path(p).resolve()): e for p, e, _ in manifest_entries(run_dir, rows)}


def _expected_schema(table_schema: pa.Schema, packed: bool) -> pa.Schema | None:
    """The schema the writer would have produced for a file with this K (and R, D)."""
    try:
        if packed and "mean_entropy" in table_schema.names:
            width = table_schema.field("correct").type.list_size
            grad = table_schema.get_field_index("input_grad")
            grad_dim = table_schema.field(grad).type.list_size // width if grad >= 0 else None
            return reduced_schema(width, grad_dim=grad_dim)
        if not packed and "topk_probs" in table_schema.names:
            top = table_schema.field("topk_probs").type
            dtype = next(k for k, v in PROBS_DTYPES.items() if v == top.value_type)
            meta = json.loads(table_schema.metadata[METADATA_KEY])
            return topk_shard_schema(
                int(meta["num_classes"]), top.list_size, dtype, pred="pred" in table_schema.names,
                sumsq="sumsq" in table_schema.names,
                presentations="train_correct" in table_schema.names,
            )  # fmt: skip
        probs = table_schema.field("mean_probs" if packed else "probs").type
        dtype = next(k for k, v in PROBS_DTYPES.items() if v == probs.value_type)
        if packed:
            width = table_schema.field("correct").type.list_size
            return packed_schema(
                probs.list_size, width, dtype, ensemble_pred="ensemble_pred" in table_schema.names
            )
        grad = table_schema.get_field_index("input_grad")
        grad_dim = table_schema.field(grad).type.list_size if grad >= 0 else None
        return shard_schema(
            probs.list_size, dtype, grad_dim=grad_dim, pred="pred" in table_schema.names,
            presentations="train_correct" in table_schema.names,
            label_set=LABEL_SET_FIELD in table_schema.names,
        )  # fmt: skip
    except (KeyError, AttributeError, StopIteration, TypeError, ValueError):
        return None


def check_schema(path: Path | str, schema: pa.Schema, *, packed: bool = False) -> None:
    """Raise :class:`ShardIntegrityError` unless ``schema`` is a shard schema the writer makes."""
    want = _expected_schema(schema, packed)
    got = schema.remove_metadata()
    if want is None or not got.equals(want.remove_metadata()):
        names = ", ".join(f"{f.name}: {f.type}" for f in got)
        raise ShardIntegrityError(
            f"shard {path} has schema ({names}), not the {'packed ' if packed else ''}shard schema"
        )


def _decode(path: Path, data: bytes) -> pa.Table:
    """The table in a shard's bytes; Arrow IPC files are wrapped without copying."""
    if shard_format(path) == "arrow":
        return pa.ipc.open_file(pa.py_buffer(data)).read_all()
    return pq.read_table(pa.BufferReader(data))


def _num_rows(path: Path, data: bytes) -> int:
    """Row count from a shard's footer (Parquet) or record batches (Arrow IPC)."""
    if shard_format(path) == "arrow":
        reader = pa.ipc.open_file(pa.py_buffer(data))
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    return pq.read_metadata(pa.BufferReader(data)).num_rows


def read_verified_table(path: Path | str, entry: dict | None, *, packed: bool = False) -> pa.Table:
    """Read a shard after checking its checksum, row count and schema against ``entry``.

    Args:
        path: The shard file.
        entry: Its manifest entry ``{"rows", <algorithm>: hex}`` (``xxh3_128`` or
            ``sha256``); None is an error (a shard the manifest does not list is never
            scored).
        packed: Whether it is a packed-form shard.

    Returns:
        The table.

    Raises:
        ShardManifestError: If the file is missing or not in the manifest.
        ShardIntegrityError: On a checksum, row-count or schema mismatch, or an entry
            that records no checksum.
    """
    path = Path(path)
    if entry is None:
        raise ShardManifestError(f"shard {path} is not listed in the run's manifest")
    try:
        algorithm, want = entry_checksum(entry, path)
    except EntryChecksumError as exc:
        raise ShardIntegrityError(str(exc)) from None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ShardManifestError(f"missing shard {path}") from None
    got = digest(data, algorithm)
    if got != want:
        raise ShardIntegrityError(
            f"shard {path} is corrupt: {algorithm} {got[:12]}.. ({len(data)} bytes) does not "
            f"match the manifest's {want[:12]}..; run `hardbench verify --repair` to "
            "regenerate it"
        )
    table = _decode(path, data)
    if table.num_rows != entry["rows"]:
        raise ShardIntegrityError(
            f"shard {path} has {table.num_rows} rows, the manifest lists {entry['rows']}"
        )
    check_schema(path, table.schema, packed=packed)
    return table


def _problem(path: Path, entry: dict, row: dict) -> ShardProblem | None:
    packed = "replicas" in row
    replicas = tuple(row["replicas"]) if packed else (row["replica"],)

    def bad(reason: str) -> ShardProblem:
        return ShardProblem(path, replicas, row["epoch"], entry["block"], reason, packed)

    try:
        algorithm, want = entry_checksum(entry, path)
    except EntryChecksumError as exc:
        return bad(exc.reason)
    if not path.exists():
        return bad("missing")
    data = path.read_bytes()
    got = digest(data, algorithm)
    if got == want:
        return None
    try:
        rows = _num_rows(path, data)
    except (pa.ArrowInvalid, OSError) as exc:
        kind = "Arrow IPC" if shard_format(path) == "arrow" else "Parquet"
        return bad(f"unreadable {kind} ({len(data)} bytes): {exc}")
    if rows != entry["rows"]:
        return bad(f"{rows} rows, the manifest lists {entry['rows']}")
    return bad(f"{algorithm} {got[:12]}.. differs from the manifest's {want[:12]}..")


def verify_shards(run_dir: Path | str) -> tuple[int, list[ShardProblem]]:
    """Check every shard listed by the run's per-replica and packed manifests.

    Returns:
        ``(shards checked, problems)``; problems are sorted by replica, epoch, block.
    """
    checked, problems = 0, []
    for path, entry, row in manifest_entries(run_dir, manifest_rows(run_dir)):
        checked += 1
        problem = _problem(path, entry, row)
        if problem is not None:
            problems.append(problem)
    problems.sort(key=lambda p: (p.replicas, p.epoch, p.block))
    return checked, problems


def _drop_rows(manifest: Path, epochs: set[int]) -> None:
    if not manifest.exists():
        return
    rows = json.loads(manifest.read_text())["rows"]
    kept = [r for r in rows if r["epoch"] not in epochs]
    atomic_write_bytes(manifest, json.dumps({"rows": kept}, indent=1).encode())


def quarantine_shards(run_dir: Path | str, problems: list[ShardProblem]) -> Path | None:
    """Move failed shards aside and forget their (replica, epoch) rows, so they are redone.

    A (replica, epoch) with one bad block loses its whole row: the resume regenerates
    all its blocks (they are rewritten with the same bytes where they were intact).
    The run-level ``preds/_manifest.json`` is removed; scoring rebuilds it.

    Returns:
        The quarantine directory, or None when there was nothing to move.
    """
    if not problems:
        return None
    run_dir = Path(run_dir)
    dest = run_dir / QUARANTINE_DIR / time.strftime("%Y%m%d-%H%M%S")
    for p in problems:
        if p.path.exists():
            target = dest / p.path.relative_to(preds_dir(run_dir))
            target.parent.mkdir(parents=True, exist_ok=True)
            p.path.replace(target)
    by_manifest: dict[Path, set[int]] = {}
    for p in problems:
        manifest = (
            packed_manifest_path(run_dir)
            if p.packed
            else replica_manifest_path(run_dir, p.replicas[0])
        )
        by_manifest.setdefault(manifest, set()).add(p.epoch)
    for manifest, epochs in by_manifest.items():
        _drop_rows(manifest, epochs)
    (preds_dir(run_dir) / MANIFEST_NAME).unlink(missing_ok=True)
    atomic_write_bytes(
        dest / "problems.json",
        json.dumps(
            [{**p.__dict__, "path": str(p.path), "replicas": list(p.replicas)} for p in problems],
            indent=1,
        ).encode(),
    )
    return dest


__all__ = [
    "QUARANTINE_DIR",
    "ShardIntegrityError",
    "ShardProblem",
    "check_schema",
    "expected_entries",
    "file_matches",
    "manifest_checksums",
    "manifest_entries",
    "quarantine_shards",
    "read_verified_table",
    "verify_shards",
]
