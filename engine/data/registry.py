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

KINDS = ("image", "text")  # what a source's payloads are: images (bytes or arrays) or texts
ON_BAD = ("error", "skip")  # what ingest does with a bad sample: stop, or skip and list it
DEFAULT_MAX_PIXELS = 50_000_000  # larger images are refused as decompression bombs


class BadInputError(ValueError):
    """A sample or a source the ingest cannot use; the message names the file or row.

    Attributes:
        key: The sample's key (or the file) at fault.
        reason: What is wrong with it.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


def skip_or_raise(exc: BadInputError, on_bad: str, skipped: list[tuple[str, str]]) -> None:
    """A bad sample under ``on_bad``: listed in ``skipped`` as ``(key, reason)`` for ``skip``.

    Raises:
        BadInputError: ``exc`` itself, for ``on_bad: error``.
    """
    if on_bad != "skip":
        raise exc
    skipped.append((exc.key, exc.reason))


@dataclass(frozen=True)
class SourceConfig:
    """The options of one source, as ``data:`` (or ``data.train`` / ``data.pool``) sets them.

    Attributes:
        source: Registered source name.
        path: A folder, file or glob (what it means is the source's).
        image_column: Table column with an image path (relative to the table's folder)
            or encoded image bytes.
        text_column: Table column with a text.
        label_column: Column with the label (a class name or an index); absent from
            the data: the samples are unlabelled.
        id_column: Column with a unique sample key (default: the image path or the row).
        split_column: Column with ``train`` / ``heldout`` per sample.
        class_names: The class list (default: from the folders or the sorted labels).
        image_size: ``(height, width)`` every image is resized to (shorter side, then
            centre crop), or None to keep the size (all images must then agree).
        channels: 1 (grey) or 3 (RGB), or None for the first image's.
        max_pixels: Images with more pixels are refused (decompression bombs).
        on_bad: ``error`` or ``skip`` (see :data:`ON_BAD`).
        encoding: Text encoding of a CSV or JSON-lines table (None: UTF-8).
        limit: Keep this many samples, evenly spaced in key order within each split
            the source gives (a quick run on a large source), or None for all.
    """

    source: str
    path: str | None = None
    image_column: str | None = None
    text_column: str | None = None
    label_column: str | None = "label"
    id_column: str | None = None
    split_column: str | None = None
    class_names: tuple[str, ...] | None = None
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    on_bad: str = "error"
    limit: int | None = None
    encoding: str | None = None

    def to_dict(self) -> dict:
        """The options as JSON-able values (for the fingerprint and ``dataset.json``)."""
        return {
            "source": self.source,
            "path": self.path,
            "image_column": self.image_column,
            "text_column": self.text_column,
            "label_column": self.label_column,
            "id_column": self.id_column,
            "split_column": self.split_column,
            "class_names": list(self.class_names) if self.class_names else None,
            "image_size": list(self.image_size) if self.image_size else None,
            "channels": self.channels,
            "max_pixels": self.max_pixels,
            "on_bad": self.on_bad,
            "limit": self.limit,
            "encoding": self.encoding,
        }


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
    _load_builtin()
    if name not in _SOURCES:
        raise unknown_name_error("data source", name, _SOURCES)
    return _SOURCES[name]


def list_registered_sources(pattern: str = "*") -> list[str]:
    """Names of the registered sources matching the glob ``pattern``, sorted."""
    _load_builtin()
    return sorted(n for n in _SOURCES if fnmatch.fnmatch(n, pattern))


def _load_builtin() -> None:
    import engine.data.archives
    import engine.data.bundled
    import engine.data.folders
    import engine.data.tables  # noqa: F401  (registers table and hf_disk)
