"""The source registry: where samples come from, as listings of items and their raw payloads.

A source is two plain functions. ``list_items(config)`` walks the source once (on the
driver) and returns a :class:`Listing`: one :class:`Item` per sample with a stable
key, its label as the source spells it, an optional split, and what the fingerprint
needs (sizes and modification times). ``read_items(config, items)`` returns the raw
payload of each item (encoded image bytes, a uint8 array, or a text), and runs in the
ingest workers. Decoding, resizing and checks are the ingest's (:mod:`engine.data.ingest`),
so every source gets the same bad-input handling.

Register a source with :func:`register_source`; ``hardbench sources`` lists them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from engine._util import unknown_name_error
from engine.spec.sources import SourceConfig

KINDS = ("image", "text")  # what a source's payloads are: images (bytes or arrays) or texts


class Item(NamedTuple):
    """One sample of a listing (a named tuple: listings of millions are built fast).

    Attributes:
        key: Unique, stable name of the sample (e.g. ``cat/001.png``); sample ids are
            assigned in sorted key order.
        label: The label as the source spells it (a class name or an int), or None.
        split: ``train`` / ``heldout`` when the source says, else None.
        where: Where ``read_items`` finds the payload (JSON-able, source-specific).
        size: Bytes of the sample's own file (0 where a whole file is fingerprinted).
        mtime_ns: Modification time of that file (0 likewise).
    """

    key: str
    label: str | int | None
    split: str | None
    where: object
    size: int = 0
    mtime_ns: int = 0


@dataclass
class Listing:
    """What listing a source found.

    Attributes:
        items: The samples, in any order.
        kind: ``image`` or ``text``.
        class_names: The class list the source defines (image folders), or None.
        class_names_from: Where ``class_names`` come from, in words (``the class
            folders of /data/x``), for errors and the card.
        files: ``(path, size, mtime_ns)`` of every file read as a whole (a table, a
            tar shard, an IDX file): part of the fingerprint.
        skipped: ``(key, reason)`` of samples left out while listing (``on_bad: skip``).
        scale: What a stored uint8 value is divided by to give the model's input
            (255 for images; 16 for the bundled digits, whose pixels are 0..16).
    """

    items: list[Item]
    kind: str = "image"
    class_names: list[str] | None = None
    class_names_from: str = ""
    files: list[tuple[str, int, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    scale: float = 255.0


@dataclass(frozen=True)
class SourceInfo:
    """A registered source.

    Attributes:
        name: What ``data.source`` says.
        description: One line for ``hardbench sources``.
        list_items: ``config -> Listing`` (driver).
        read_items: ``(config, items) -> payloads`` (ingest workers): per item encoded
            image bytes, a uint8 array (H, W) or (H, W, C), a text, or the
            :class:`BadInputError` that reading it raised (the ingest skips or stops).
        needs_path: Whether ``data.path`` must be set.
    """

    name: str
    description: str
    list_items: Callable[[SourceConfig], Listing]
    read_items: Callable[[SourceConfig, list[Item]], list[object]]
    needs_path: bool = True


_SOURCES: dict[str, SourceInfo] = {}


def register_source(info: SourceInfo) -> SourceInfo:
    """Add a source to the registry (a second registration of a name replaces the first)."""
    _SOURCES[info.name] = info
    return info


def get_source(name: str) -> SourceInfo:
    """The registered source ``name``.

    Raises:
        ValueError: For an unknown name (the message lists close matches and all names).
    """
    if name not in _SOURCES:
        raise unknown_name_error("data source", name, _SOURCES)
    return _SOURCES[name]


def list_registered_sources(pattern: str = "*") -> list[str]:
    """Names of the registered sources matching the glob ``pattern``, sorted."""
    return sorted(n for n in _SOURCES if fnmatch.fnmatch(n, pattern))
