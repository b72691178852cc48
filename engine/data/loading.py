"""A classification run's data: its dataset cache (ingested once) as :class:`ClassificationData`.

The first load of a run ingests the source (or reuses its cache) and records the
cache in ``<run>/dataset.json``; every later load of the run (Ray workers, resume,
verify, ``hardbench eval``) opens that cache without listing the source again.
Inputs stay in the cache: ``inputs`` is a :class:`engine.data.cache.CachedInputs` of
its pixels, or of its token ids (a text cache's token cache).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data.cache import META_FILE, DatasetCache
from engine.data.errors import BadInputError
from engine.data.ingest import ChunkMap, cache_root, ingest
from engine.data.multilabel_data import MultiLabelData, seeded_split
from engine.data.report import data_report
from engine.data.sources import (
    SPLIT_HELDOUT,
    SPLIT_TRAIN,
    UNLABELLED,
    ClassificationData,
    flip_labels,
    stratified_split,
)
from engine.layout import DATASET_FILE
from engine.spec.sources import POOL_PREFIX, Part, SourceConfig
from engine.spec.training import DataSpec


def ensure_run_cache(run_dir: Path | str, load: Callable[[], object]) -> None:
    """Make sure the run has its dataset cache before a driver starts tasks that read it.

    A no-op when ``dataset.json`` is there (the lifecycle's ingest stage wrote it);
    otherwise the run's data is loaded once here by ``load`` (e.g.
    ``lambda: load_classification_data(spec.data, ...)``), on the driver, which
    ingests on the connected cluster. (A task that found no cache would ingest inside
    itself.)
    """
    if not (Path(run_dir) / DATASET_FILE).is_file():
        load()


def run_cache(
    source: SourceConfig | list[Part],
    *,
    block_size: int,
    run_dir: Path | str | None = None,
    runs_dir: Path | str = "runs",
    cache_dir: str | None = None,
    map_chunks: ChunkMap | None = None,
    log: Callable[[str], None] = print,
) -> DatasetCache:
    """The dataset cache of a run: the one ``dataset.json`` names, else ingested now.

    Args:
        source: The source's options, or its parts (``data.train`` + ``data.pool``).
        block_size: Samples per block (the shards' block size).
        run_dir: The run directory (its parent is the runs directory), or None.
        runs_dir: The runs directory when there is no run (``hardbench ingest``).
        cache_dir: ``data.cache_dir``.
        map_chunks: How chunks are decoded (default in this process).
        log: Where progress lines go.
    """
    record = Path(run_dir) / DATASET_FILE if run_dir is not None else None
    if record is not None and record.is_file():
        info = json.loads(record.read_text())
        folder = Path(info["cache"])
        if (folder / META_FILE).is_file():
            return DatasetCache(folder)
        log(f"[ingest] the cache {folder} recorded in {record} is gone: ingesting again")
    runs_dir = Path(run_dir).parent if run_dir is not None else Path(runs_dir)
    cache = ingest(source, cache_root(cache_dir, runs_dir), block_size=block_size,
                   map_chunks=map_chunks, log=log)  # fmt: skip
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(cache.describe(), indent=2))
        tmp.replace(record)
    return cache


def attach_labels(cache: DatasetCache, labels: np.ndarray, path: str | Path) -> np.ndarray:
    """``labels`` with the pool's labels from a table of ``key`` and ``label`` filled in.

    Keys are the pool source's own (``pool/`` is added); labels are class names or
    indices of the training data's class list.

    Raises:
        BadInputError: For a missing column, a key that is not a pool sample, a label
            outside the class list, or a key given twice.
    """
    from engine.data.table_files import read_table

    table = read_table(Path(path))
    for column in ("key", "label"):
        if column not in table.column_names:
            raise BadInputError(str(path), f"no column {column!r}; columns: "
                                f"{', '.join(table.column_names)}")  # fmt: skip
    index = {k: i for i, k in enumerate(cache.keys())}
    names = {n: k for k, n in enumerate(cache.class_names)}
    out = labels.copy()
    seen: set[str] = set()
    for row, (key, label) in enumerate(zip(table.column("key").to_pylist(),
                                           table.column("label").to_pylist(), strict=True)):  # fmt: skip
        sid = index.get(POOL_PREFIX + str(key))
        if sid is None:
            raise BadInputError(f"{path} row {row}", f"key {key!r} is not a pool sample")
        if key in seen:
            raise BadInputError(f"{path} row {row}", f"key {key!r} is given twice")
        seen.add(key)
        k = label if isinstance(label, int) and 0 <= label < len(names) else names.get(str(label))
        if k is None:
            raise BadInputError(f"{path} row {row}", f"label {label!r} is not in the class list")
        out[sid] = k
    return out


def cached_classification_data(
    cache: DatasetCache,
    *,
    heldout_fraction: float,
    split_seed: int,
    pool_labels: str | Path | None = None,
    map_chunks: ChunkMap | None = None,
    log: Callable[[str], None] = print,
    warn: bool = True,
) -> ClassificationData:
    """The cache as classification data, split as the source says or stratified and seeded.

    Inputs stay memory-mapped: image blocks, or for a text cache the token ids of its
    token cache (:mod:`engine.data.tokens`, built here on first use with ``map_chunks``:
    the vocabulary learned from the training split's texts only). Held-out samples
    may be unlabelled (label -1: an unlabelled pool); ``pool_labels`` attaches labels
    to them. The data report (:mod:`engine.data.report`) goes to ``dataset["report"]``,
    its warnings to ``log`` when ``warn`` (a run's first load, not every reload).

    Raises:
        ValueError: When a training sample is unlabelled, or unlabelled samples have
            no split from the source (a pool needs ``data.pool``).
    """
    labels = cache.labels()
    if pool_labels is not None:
        labels = attach_labels(cache, labels, pool_labels)
    split = cache.splits()
    missing = labels == UNLABELLED
    if missing.any() and (split is None or (split[missing] == SPLIT_TRAIN).any()):
        first = cache.keys()[int(np.flatnonzero(missing & (split != SPLIT_HELDOUT)
                                                if split is not None else missing)[0])]  # fmt: skip
        raise ValueError(
            f"{cache.meta['source']['path']}: {int(missing.sum())} samples have no label "
            f"(first: {first}); the replicas train on labelled samples only: put the "
            "unlabelled ones in data.pool"
        )
    if split is None:
        split = stratified_split(labels, heldout_fraction, split_seed)
    texts = cache.texts()
    dataset = cache.describe()
    groups = cache.duplicate_groups()
    partner = None
    if groups is not None:
        report, partner = data_report(cache.meta, labels, split, *groups, cache.keys())
        dataset["report"] = report
        for warning in report["warnings"] if warn else []:
            log(f"[data] warning: {warning}")
    if texts is not None:
        from engine.data.tokens import describe_tokens, token_inputs

        inputs = token_inputs(cache, split, map_chunks=map_chunks, log=log)
        dataset["tokens"] = describe_tokens(inputs)
    else:
        inputs = cache.inputs()
    return ClassificationData(
        name=cache.meta["source"]["source"],
        inputs=inputs,
        labels=labels,
        split=split,
        class_names=cache.class_names,
        texts=texts,
        dataset=dataset,
        keys=cache.keys(),
        leak_partner=partner,
    )


def cached_multilabel_data(
    cache: DatasetCache, *, heldout_fraction: float, split_seed: int
) -> MultiLabelData:
    """A multi-label cache as :class:`MultiLabelData`, split as the source says or seeded.

    Raises:
        ValueError: For a cache of single labels (see :meth:`DatasetCache.label_sets`).
    """
    label_sets = cache.label_sets()
    split = cache.splits()
    if split is None:
        split = seeded_split(cache.num_samples, heldout_fraction, split_seed)
    return MultiLabelData(
        name=cache.meta["source"]["source"], inputs=cache.inputs(), label_sets=label_sets,
        split=split, class_names=cache.class_names, dataset=cache.describe(), keys=cache.keys(),
    )  # fmt: skip


def load_classification_data(
    data: DataSpec,
    *,
    block_size: int,
    run_dir: Path | str | None = None,
    map_chunks: ChunkMap | None = None,
    log: Callable[[str], None] = print,
) -> ClassificationData | MultiLabelData:
    """A classification spec's data, split, with the label noise the spec injects.

    Every source is read from the run's dataset cache (ingested with ``map_chunks``,
    or in this process, when the run has none yet; a text source's token ids from its
    token cache, built the same way), the bundled ones (digits, the sentiment
    snippets) as a user's. The classification plugin and the Ray workers that train
    its replicas and models all load through here.

    Args:
        data: The spec's ``data`` section.
        block_size: Samples per cache block (the spec's ``shards.block_size``).
        run_dir: The run directory (its ``dataset.json`` names the cache), or None.
        map_chunks: Runs ingest and tokenizing chunks in parallel (None: in process).
        log: Where ingest progress and the data report's warnings go.

    Returns:
        The samples; with ``label_noise``, ``labels`` are the flipped ones and
        ``clean_labels`` the given ones. With ``data.label_lists`` (multi-label), a
        :class:`MultiLabelData` of the cache's label sets instead.
    """
    if data.label_lists:
        if data.label_noise is not None or data.pool_labels is not None:
            raise ValueError("data.label_noise and data.pool_labels take one label per sample, "
                             "not the label lists of data.label_lists")  # fmt: skip
        cache = run_cache(data.parts(), block_size=block_size, run_dir=run_dir,
                          cache_dir=data.cache_dir, map_chunks=map_chunks, log=log)  # fmt: skip
        return cached_multilabel_data(cache, heldout_fraction=data.heldout_fraction,
                                      split_seed=data.split_seed)  # fmt: skip
    first = run_dir is None or not (Path(run_dir) / DATASET_FILE).is_file()
    cache = run_cache(data.parts(), block_size=block_size, run_dir=run_dir,
                      cache_dir=data.cache_dir, map_chunks=map_chunks, log=log)  # fmt: skip
    out = cached_classification_data(cache, heldout_fraction=data.heldout_fraction,
                                     split_seed=data.split_seed, pool_labels=data.pool_labels,
                                     map_chunks=map_chunks, log=log, warn=first)  # fmt: skip
    noise = data.label_noise
    if noise is not None:
        noisy, _ = flip_labels(
            out.labels, fraction=noise.fraction, kind=noise.kind, seed=noise.seed,
            num_classes=out.num_classes, confusable=noise.confusable,
        )  # fmt: skip
        out = dataclasses.replace(out, labels=noisy, clean_labels=out.labels)
    return out
