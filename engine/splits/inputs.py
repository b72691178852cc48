"""The inputs of a split file's samples: from its ``input`` column, or from the dataset cache it references.

Split files of data read from a dataset cache hold no pixels or token ids: their
schema metadata names the cache folder (for text, its token cache) and its
fingerprint, and :func:`row_inputs` gathers the rows it needs from the memory-mapped
blocks. Split files written before the bundled sentiment corpus was a registered
source hold its token ids in an ``input`` column, read as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.cache import CachedInputs, read_meta

CACHE_KEY = b"hardbench.cache"  # schema metadata: the dataset cache folder the split refers to
FINGERPRINT_KEY = b"hardbench.fingerprint"  # schema metadata: that cache's fingerprint


def cache_metadata(dataset: dict) -> dict[bytes, bytes]:
    """The schema metadata that makes a split file refer to ``dataset``'s inputs.

    The dataset cache, or for text its token cache (``dataset["tokens"]``).
    """
    ref = dataset.get("tokens") or dataset
    return {CACHE_KEY: ref["cache"].encode(), FINGERPRINT_KEY: ref["fingerprint"].encode()}


def split_cache(schema: pa.Schema) -> CachedInputs | None:
    """The cached inputs a split file refers to, or None when it holds an ``input`` column.

    Raises:
        FileNotFoundError: When the cache is gone or holds another fingerprint (the
            message says how to rebuild it).
    """
    meta = schema.metadata or {}
    if CACHE_KEY not in meta:
        return None
    folder = Path(meta[CACHE_KEY].decode())
    want = meta[FINGERPRINT_KEY].decode()
    try:
        got = read_meta(folder)["fingerprint"]
    except FileNotFoundError:
        got = None
    if got != want:
        raise FileNotFoundError(
            f"the dataset cache {folder} this split refers to is "
            f"{'gone' if got is None else 'another dataset'}: run `hardbench ingest` on the "
            "run's spec.yaml to rebuild it (same source, same fingerprint)"
        )
    return CachedInputs(folder)


def row_inputs(table: pa.Table, input_shape: tuple[int, ...]) -> np.ndarray | CachedInputs:
    """The inputs of the table's rows, indexable by row position: ``row_inputs(t, s)[i]``.

    A split that refers to the dataset cache gives a lazy view (float32 rows gathered
    when indexed); one with an ``input`` column gives that column as an array
    (n, *input_shape), float32 for images, int64 for token ids.
    """
    cached = split_cache(table.schema)
    if cached is not None:
        return cached.subset(table.column("sample_id").to_numpy())
    flat = table.column("input").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(table.num_rows, *input_shape)
