"""The tokenized-table cache: a QA or seq2seq table's samples, tokenized once, memory-mapped after.

A user's QA or seq2seq table is read, windowed and tokenized into a
:class:`engine.data.qa.QAData` or :class:`engine.data.seq2seq.Seq2SeqData` (the
vocabulary learned from the training rows only). Every process of a run (the driver,
each replica worker, each evaluated model's task) needs the same samples, so the
first one saves them in a content-addressed folder and the others open it::

    <cache_root>/<kind>-<key>/
        meta.json        written last: kind, key, the dataclass's other fields (the
                         table's description with its skipped rows, special ids)
        arrays/<field>.npy   every array field (token ids, masks, offsets, splits)
        lists.json       every list field (questions, contexts, references, vocabulary)

The key hashes the table's path, size and modification time, every option that
changes the samples (columns, split, limit, ``on_bad``) and the tokenizer's
constants, so an edited table or another split is tokenized again. Arrays are read
through read-only memory maps: a worker holds no copy of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from engine.data.cache import META_FILE
from engine.data.ingest import cache_root, publish_folder
from engine.data.tmpdirs import make_tmp_folder, remove_stale_tmp

TEXT_CACHE_VERSION = 1  # bumped when the layout changes; part of every key
KEY_CHARS = 24  # hex characters of the key in the folder name
ARRAYS_DIR = "arrays"
LISTS_FILE = "lists.json"
T = TypeVar("T")


def text_cache_key(kind: str, fingerprint: str, options: dict) -> str:
    """The folder key: the table's fingerprint, the sample-changing options, the version."""
    blob = json.dumps([TEXT_CACHE_VERSION, kind, fingerprint, options], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_text_data(
    cls: type[T],
    kind: str,
    key: str,
    root: Path | str,
    build: Callable[[], T],
    log: Callable[[str], None] = print,
) -> tuple[T, Path]:
    """The samples saved under ``key``, else ``build()`` saved there and returned.

    Args:
        cls: The dataclass (``QAData`` or ``Seq2SeqData``).
        kind: ``qa`` or ``seq2seq`` (the folder's prefix).
        key: :func:`text_cache_key` of the table.
        root: The cache root (:func:`engine.data.ingest.cache_root`).
        build: Reads and tokenizes the table.
        log: Where the progress lines go.

    Returns:
        ``(samples, folder)``; the array fields are read-only memory maps.
    """
    folder = Path(root) / f"{kind}-{key[:KEY_CHARS]}"
    if (folder / META_FILE).is_file():
        return _load(cls, folder), folder
    start = time.perf_counter()
    data = build()
    remove_stale_tmp(folder.parent, folder.name, log, stage="tokens")  # a killed build's tmp
    tmp = make_tmp_folder(folder.parent, folder.name)
    (tmp / ARRAYS_DIR).mkdir()
    try:
        scalars, lists = {}, {}
        for f in dataclasses.fields(cls):
            value = getattr(data, f.name)
            if isinstance(value, np.ndarray):
                np.save(tmp / ARRAYS_DIR / f"{f.name}.npy", value)
            elif isinstance(value, list):
                lists[f.name] = value
            else:
                scalars[f.name] = value
        (tmp / LISTS_FILE).write_text(json.dumps(lists))
        meta = {"version": TEXT_CACHE_VERSION, "kind": kind, "key": key, "scalars": scalars,
                "num_samples": len(data),
                "tokenize_seconds": round(time.perf_counter() - start, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        publish_folder(tmp, folder, meta)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"[tokens] {len(data):,} {kind} samples tokenized in {meta['tokenize_seconds']:.1f} s "
        f"-> {folder}")  # fmt: skip
    return _load(cls, folder), folder


def _load(cls: type[T], folder: Path) -> T:
    meta = json.loads((folder / META_FILE).read_text())
    kwargs = dict(meta["scalars"])
    kwargs.update(json.loads((folder / LISTS_FILE).read_text()))
    for path in (folder / ARRAYS_DIR).glob("*.npy"):
        kwargs[path.stem] = np.load(path, mmap_mode="r")
    return cls(**kwargs)


def table_samples(
    cls: type[T],
    kind: str,
    options: object,
    run_dir: Path | str | None,
    build: Callable[[], T],
    *,
    constants: dict,
    log: Callable[[str], None] = print,
) -> T:
    """A QA or seq2seq table's samples for a run: from its tokenized-table cache, built once.

    Args:
        cls: ``QAData`` or ``Seq2SeqData``.
        kind: ``qa`` or ``seq2seq``.
        options: The spec's ``data`` (path, columns, split options, ``cache_dir``).
        run_dir: The run (its parent holds ``_datasets``); None without a run: the
            samples are then built in memory unless ``data.cache_dir`` is set.
        build: Reads and tokenizes the table (sets ``dataset``).
        constants: The tokenizer's lengths and vocabulary size (part of the key).
        log: Where the progress lines go.

    Returns:
        The samples, ``dataset["cache"]`` naming the folder.
    """
    from engine.data.text_tables import table_fingerprint

    if run_dir is None and not options.cache_dir:
        return build()  # no run whose processes would share it
    root = cache_root(options.cache_dir, Path(run_dir).parent if run_dir is not None else "runs")
    sample_options = {name: getattr(options, name, None) for name in
                      ("heldout_fraction", "split_seed", "limit", "on_bad")}  # fmt: skip
    key = text_cache_key(kind, table_fingerprint(Path(options.path), options),
                         {**sample_options, "constants": constants})  # fmt: skip
    data, folder = cached_text_data(cls, kind, key, root, build, log)
    data.dataset = {**data.dataset, "cache": str(folder.resolve())}
    return data
