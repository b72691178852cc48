"""The dataset cache: a sample table and fixed-shape uint8 blocks, read through memory maps.

One folder per source fingerprint (:mod:`engine.data.ingest` writes it)::

    <cache_root>/<fingerprint>/
        meta.json        written last: shape, scale, classes, block size, skips, fingerprint
        samples.parquet  sample_id, key, label (-1: unlabelled), split (null: not given), [text]
                         (multi-label: label_set, uint8 (K,) multi-hot, in place of label)
        blocks/block=00000.npy   uint8 (rows, C, H, W); block b holds ids [b*B, (b+1)*B)

Blocks are aligned with the shard blocks (the same ``B``), so a stage that works one
shard block at a time reads one cache block. :class:`CachedInputs` gathers rows from
the memory-mapped blocks and converts only those to float32: no stage holds a whole
float32 copy of the data. A text cache's token ids live in a token cache inside it
(:mod:`engine.data.tokens`), in blocks of the same layout that :class:`CachedInputs`
reads as int64.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

CACHE_VERSION = 2  # bumped when the layout changes; part of every fingerprint (2: duplicates)
META_FILE = "meta.json"  # the cache's description; a folder without it is incomplete
SAMPLES_FILE = "samples.parquet"  # the sample table
LABEL_SET_COLUMN = "label_set"  # a multi-label cache's multi-hot column (uint8 (K,) per sample)
NEAR_PAIRS_FILE = "near_duplicates.parquet"  # confirmed near-duplicate pairs and their measures
THUMBS_FILE = "thumbnails.npy"  # uint8 (N, 32, 32) grey thumbnails while ingesting (then removed)
BLOCKS_DIR = "blocks"  # the uint8 tensors


def block_file(cache_dir: Path | str, block: int) -> Path:
    """Path of block ``block``'s tensor file."""
    return Path(cache_dir) / BLOCKS_DIR / f"block={block:05d}.npy"


class CachedInputs:
    """Model inputs of some samples, gathered from the cache's blocks on demand.

    It stands where a float32 array (N, C, H, W) used to: ``len``, ``shape``,
    ``dtype``, slicing and integer-array indexing (which return float32 arrays of just
    those rows, divided by the cache's ``scale``), and :meth:`subset` (a lazy view).
    A token cache (no ``scale``) stands for an int64 array (N, L) of token ids.
    Pickling sends only the folder and the ids, so Ray ships no pixels.

    Args:
        cache_dir: The cache folder (a dataset cache, or a token cache in one).
        ids: Sample ids this view holds, in order (default all).
    """

    def __init__(self, cache_dir: Path | str, ids: np.ndarray | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        meta = self.meta = read_meta(self.cache_dir)
        self._sample_shape = tuple(meta["shape"])
        self._stored = np.dtype(meta.get("dtype", "uint8"))
        self._scale = None if meta["scale"] is None else np.float32(meta["scale"])
        self._block_size = int(meta["block_size"])
        n = int(meta["num_samples"])
        self.ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        self._maps: dict[int, np.ndarray] = {}

    def __reduce__(self) -> tuple:
        return (CachedInputs, (str(self.cache_dir), self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shape(self) -> tuple[int, ...]:
        """(N, C, H, W) of this view."""
        return (len(self.ids), *self._sample_shape)

    @property
    def scale(self) -> float | None:
        """What a stored uint8 value is divided by (255 for images, 16 for the digits); None for token ids."""
        return None if self._scale is None else float(self._scale)

    @property
    def ndim(self) -> int:
        """4 for images, 2 for token ids, as the array it stands for."""
        return 1 + len(self._sample_shape)

    @property
    def dtype(self) -> np.dtype:
        """What indexing returns: float32, or int64 for token ids."""
        return np.dtype(np.float32 if self._scale is not None else np.int64)

    def subset(self, index: np.ndarray) -> CachedInputs:
        """A view of rows ``index`` of this view (no pixels read)."""
        view = CachedInputs.__new__(CachedInputs)
        view.__dict__.update(self.__dict__)
        view.ids = self.ids[np.asarray(index)]
        view._maps = self._maps
        return view

    def _block(self, b: int) -> np.ndarray:
        mm = self._maps.get(b)
        if mm is None:
            mm = self._maps[b] = np.load(block_file(self.cache_dir, b), mmap_mode="r")
        return mm

    def stored(self, index: object = slice(None)) -> np.ndarray:
        """The stored rows of ``index`` (a slice, an int array or an int), as stored.

        Uint8 (n, C, H, W) pixels, or uint16/int32 (n, L) token ids.
        """
        ids = self.ids[index]
        scalar = np.ndim(ids) == 0
        ids = np.atleast_1d(ids)
        out = np.empty((len(ids), *self._sample_shape), dtype=self._stored)
        blocks, rows = np.divmod(ids, self._block_size)
        if len(ids) and blocks[0] == blocks[-1] and np.all(blocks == blocks[0]):
            out[:] = self._block(int(blocks[0]))[rows]
        else:
            for b in np.unique(blocks):
                mask = blocks == b
                out[mask] = self._block(int(b))[rows[mask]]
        return out[0] if scalar else out

    def __getitem__(self, index: object) -> np.ndarray:
        """Float32 inputs of ``index`` (the uint8 values divided by the scale), or int64 token ids."""
        if self._scale is None:
            return self.stored(index).astype(np.int64)
        return self.stored(index).astype(np.float32) / self._scale

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)


def read_meta(cache_dir: Path | str) -> dict:
    """The cache's ``meta.json``.

    Raises:
        FileNotFoundError: When the folder is not a complete cache.
    """
    path = Path(cache_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{cache_dir} is not a complete dataset cache (no {META_FILE})")
    return json.loads(path.read_text())


class DatasetCache:
    """An ingested dataset: its sample table, description and inputs.

    Args:
        path: The cache folder (``<cache_root>/<fingerprint>``).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.samples: pa.Table = _read_samples(self.path / SAMPLES_FILE)

    @property
    def fingerprint(self) -> str:
        """The source fingerprint the cache is keyed by."""
        return self.meta["fingerprint"]

    @property
    def num_samples(self) -> int:
        """N."""
        return int(self.meta["num_samples"])

    @property
    def kind(self) -> str:
        """``image`` or ``text``."""
        return self.meta["kind"]

    @property
    def class_names(self) -> list[str]:
        """The K class names (empty for a pool without any label)."""
        return list(self.meta["class_names"])

    @property
    def multilabel(self) -> bool:
        """Whether the cache holds a list of labels per sample (:meth:`label_sets`)."""
        return LABEL_SET_COLUMN in self.samples.column_names

    def labels(self) -> np.ndarray:
        """Int64 (N,) class indices; -1 for an unlabelled sample.

        Raises:
            ValueError: For a multi-label cache: its samples have several classes, and
                no class index stands for them (read :meth:`label_sets`).
        """
        if self.multilabel:
            raise ValueError(
                f"{self.path}: the cache holds a list of labels per sample (multi-label "
                f"{self.meta['source'].get('path') or self.meta['source']['source']}); "
                "there is no single class index to read: run it with task multilabel"
            )
        return self.samples.column("label").to_numpy().astype(np.int64)

    def label_sets(self) -> np.ndarray:
        """Uint8 (N, K) multi-hot rows of a multi-label cache (1: the sample holds the class).

        Raises:
            ValueError: For a cache of single labels (read :meth:`labels`).
        """
        if not self.multilabel:
            raise ValueError(f"{self.path}: the cache holds one label per sample, not label lists")
        col = self.samples.column(LABEL_SET_COLUMN).combine_chunks()
        return col.flatten().to_numpy().reshape(len(col), -1).astype(np.uint8)

    def splits(self) -> np.ndarray | None:
        """(N,) ``train``/``heldout`` as the source gave them, or None where none did."""
        col = self.samples.column("split")
        if col.null_count == len(col):
            return None
        values = col.to_pylist()
        if None in values:
            raise ValueError(f"{self.path}: the source gave a split for some samples only")
        return np.asarray(values, dtype=str)

    def keys(self) -> list[str]:
        """The N keys, in sample-id order."""
        return self.samples.column("key").to_pylist()

    def duplicate_groups(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Int64 (N,) exact and near duplicate groups (-1: none); None for a cache made before them.

        See :mod:`engine.data.duplicates`.
        """
        if "exact_group" not in self.samples.column_names:
            return None
        return (self.samples.column("exact_group").to_numpy(),
                self.samples.column("near_group").to_numpy())  # fmt: skip

    def texts(self) -> list[str] | None:
        """The N texts of a text source, else None."""
        if "text" not in self.samples.column_names:
            return None
        return self.samples.column("text").to_pylist()

    def inputs(self) -> CachedInputs:
        """Every sample's inputs, gathered lazily (see :class:`CachedInputs`)."""
        return CachedInputs(self.path)

    def describe(self) -> dict:
        """What ``dataset.json`` and the card record: folder, fingerprint, counts, skips."""
        return {
            "cache": str(self.path.resolve()),
            "fingerprint": self.fingerprint,
            "source": self.meta["source"],
            "num_samples": self.num_samples,
            "shape": self.meta["shape"],
            "class_names": self.class_names,
            "skipped": self.meta["skipped"],
        }


def _read_samples(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def take_rows(inputs: np.ndarray | CachedInputs, index: np.ndarray) -> np.ndarray | CachedInputs:
    """Rows ``index`` of ``inputs``: a lazy view of cached inputs, a copy of an array's rows."""
    if isinstance(inputs, CachedInputs):
        return inputs.subset(index)
    return inputs[index]
