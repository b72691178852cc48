"""Shard checksums: the algorithms a manifest entry may record, and how an entry names one.

A block's manifest entry carries its checksum under the algorithm's name, e.g.
``{"block": 0, "rows": 1024, "xxh3_128": "9f..", "format": "parquet"}``. Entries
written before the algorithm was selectable all carry ``sha256``, so they verify
unchanged. ``xxh3_128`` (the default) is a non-cryptographic 128-bit hash that runs at
memory speed and catches truncation and flipped bits (a random change goes unnoticed
with probability 2^-128); ``sha256`` is cryptographic (it also catches a shard altered
on purpose to pass) and about 16x slower per core (2.2 vs 35 GB/s measured on one
core, ``tests/perf/bench_checksums.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

import xxhash


def _xxh3_128(data: bytes | bytearray | memoryview) -> str:
    """XXH3 128-bit digest as 32 hex digits (stable across xxHash >= 0.8)."""
    return xxhash.xxh3_128_hexdigest(data)


def _sha256(data: bytes | bytearray | memoryview) -> str:
    """SHA-256 digest as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


CHECKSUMS: dict[str, Callable[[bytes | bytearray | memoryview], str]] = {
    "xxh3_128": _xxh3_128,
    "sha256": _sha256,
}  # algorithm name (also the manifest entry's key) -> hex digest of a file's bytes
DEFAULT_CHECKSUM = "xxh3_128"  # what writers record unless ``shards.checksum`` says otherwise


class ChecksumError(ValueError):
    """An unknown checksum algorithm, or a manifest entry that records no usable checksum."""


class EntryChecksumError(ChecksumError):
    """A shard's manifest entry records no usable checksum.

    Attributes:
        shard: The shard file.
        reason: What is wrong with the entry, without the shard's name.
    """

    def __init__(self, shard: Path | str, reason: str) -> None:
        super().__init__(f"shard {shard}: {reason}")
        self.shard = shard
        self.reason = reason


def digest(data: bytes | bytearray | memoryview, algorithm: str = DEFAULT_CHECKSUM) -> str:
    """The hex digest of ``data`` by ``algorithm``.

    Args:
        data: The bytes (any buffer: bytes, memoryview, an Arrow buffer's view).
        algorithm: A name in :data:`CHECKSUMS`.

    Returns:
        Lower-case hex digest.

    Raises:
        ChecksumError: If ``algorithm`` is not a name in :data:`CHECKSUMS`.
    """
    try:
        fn = CHECKSUMS[algorithm]
    except KeyError:
        raise ChecksumError(
            f"unknown checksum {algorithm!r}: use one of {', '.join(CHECKSUMS)}"
        ) from None
    return fn(data)


def entry_checksum(entry: Mapping, shard: Path | str) -> tuple[str, str]:
    """The ``(algorithm, hex digest)`` a shard's manifest entry records.

    Args:
        entry: The block's manifest entry.
        shard: The shard file the entry describes (named in errors).

    Returns:
        The algorithm's name and the recorded hex digest.

    Raises:
        EntryChecksumError: If the entry records none of the known checksums, more than
            one, or a digest that is not a string.
    """
    found = [name for name in CHECKSUMS if name in entry]
    if len(found) != 1:
        what = "no checksum" if not found else f"{len(found)} checksums ({', '.join(found)})"
        raise EntryChecksumError(
            shard,
            f"its manifest entry records {what}; it needs exactly one of "
            f"{', '.join(CHECKSUMS)} (entry keys: {', '.join(sorted(map(str, entry)))}); "
            "run `hardbench verify --repair` to regenerate the shard",
        )
    value = entry[found[0]]
    if not isinstance(value, str):
        raise EntryChecksumError(
            shard, f"its manifest entry's {found[0]} is {value!r}, not a hex digest"
        )
    return found[0], value


__all__ = [
    "CHECKSUMS",
    "DEFAULT_CHECKSUM",
    "ChecksumError",
    "EntryChecksumError",
    "digest",
    "entry_checksum",
]
