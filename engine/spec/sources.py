"""The options a source is read with, as the spec's ``data`` section resolves them.

:class:`SourceConfig` is what a registered source and the ingest read (one per
source); :class:`Part` is one source of a dataset made of several (``data.train`` +
``data.pool``). Both are plain values of the spec: the data layer reads them
(:mod:`engine.data.registry`, :mod:`engine.data.ingest`) and nothing here reads data.
"""

from __future__ import annotations

from dataclasses import dataclass

ON_BAD = ("error", "skip")  # what ingest does with a bad sample: stop, or skip and list it
DEFAULT_MAX_PIXELS = 50_000_000  # larger images are refused as decompression bombs
TRAIN_PREFIX = "train/"  # key prefix of data.train's samples in a two-source cache
POOL_PREFIX = "pool/"  # key prefix of data.pool's samples


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
        label_lists: Whether ``label_column`` holds a list of labels per sample
            (multi-label: set by that task's defaults), not one class.
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
    label_lists: bool = False

    def to_dict(self) -> dict:
        """The options as JSON-able values (for the fingerprint and ``dataset.json``).

        ``label_lists`` appears only when set, so the fingerprints of single-label
        caches made before it stay the same.
        """
        out = {
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
        if self.label_lists:
            out["label_lists"] = True
        return out


@dataclass(frozen=True)
class Part:
    """One source of a dataset made of several (``data.train`` + ``data.pool``).

    Attributes:
        prefix: Put in front of the source's keys (``train/``, ``pool/``), or "".
        config: The source's options.
        split: The split of every sample of this source, or None for the source's own.
    """

    prefix: str
    config: SourceConfig
    split: str | None = None

    def to_dict(self) -> dict:
        """JSON-able, for the fingerprint and the cache's meta."""
        return {"prefix": self.prefix, "split": self.split, "source": self.config.to_dict()}
