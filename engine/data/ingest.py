"""Ingest: list a source, fingerprint it, decode its samples in parallel into the dataset cache.

:func:`plan_ingest` lists the source on the driver, sorts the items by key (sample
ids are ranks in key order, so the same files give the same ids in any run, on any
machine), resolves labels to class indices and computes the fingerprint: a SHA-256
of the options, the block size and the listing (keys, labels, splits, sizes and
modification times of every file). :func:`ingest` reuses ``<cache_root>/<fingerprint>``
when it is complete; otherwise it decodes the items chunk by chunk (one chunk per
block; :func:`ingest_chunk` is the plain function the Ray Data workers run, see
:mod:`engine.distributed.ingest`), then moves the finished folder into place in one
rename, so a cache is either complete or absent. Sources are only read.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import itertools
import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.cache import (
    BLOCKS_DIR,
    CACHE_VERSION,
    LABEL_SET_COLUMN,
    META_FILE,
    NEAR_PAIRS_FILE,
    SAMPLES_FILE,
    THUMBS_FILE,
    DatasetCache,
    block_file,
)
from engine.data.decode import channels_of, decode_image
from engine.data.duplicates import (
    DIGEST_BYTES,
    describe_groups,
    duplicate_groups,
    image_digests,
    perceptual_hashes,
    text_digests,
    thumbnails,
)
from engine.data.errors import BadInputError
from engine.data.label_sets import (
    check_label_sets,
    label_set_names,
    multi_hot,
)
from engine.data.labels import (
    LabelError,
    LabelNotes,
    check_classes,
    clean_label,
    is_stripped,
    resolve_labels,
)
from engine.data.registry import Item, get_source
from engine.data.report import seen_summary
from engine.data.sources import UNLABELLED
from engine.data.tmpdirs import make_tmp_folder, remove_stale_tmp
from engine.spec.sources import Part, SourceConfig

CACHE_ENV = "HARDBENCH_CACHE_DIR"  # overrides where dataset caches live
CACHE_SUBDIR = "_datasets"  # default cache root inside the runs directory
FINGERPRINT_CHARS = 24  # hex characters of the fingerprint in the folder name
CHUNKS_DIR = "chunks"  # decoded chunks before they become blocks (only when samples are skipped)

ChunkMap = Callable[[list[dict], dict], Iterable[dict]]  # (chunk tasks, shared kwargs) -> results
CHUNK_FN = "chunk_fn"  # a shared kwarg naming another chunk function, "module:name"


def cache_root(cache_dir: str | None, runs_dir: Path | str) -> Path:
    """Where dataset caches live: ``data.cache_dir``, else ``$HARDBENCH_CACHE_DIR``, else ``<runs>/_datasets``."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(runs_dir) / CACHE_SUBDIR


@dataclass
class Plan:
    """A listed source (or several), ready to decode.

    Attributes:
        parts: The sources, the first one's class list and options leading.
        items: The samples in key order (sample id = position).
        labels: Int64 (N,) class indices, ``UNLABELLED`` for a sample without a label.
        class_names: The K class names.
        kind: ``image`` or ``text``.
        scale: What a uint8 value is divided by to give the model's input.
        shape: (C, H, W) of every image (None for text).
        block_size: Samples per block.
        fingerprint: SHA-256 hex of options + listing.
        skipped: ``(key, reason)`` left out while listing.
        label_notes: Where the class list came from, and how many labels were stripped.
        label_sets: Uint8 (N, K) multi-hot rows of a multi-label source (``labels``
            then hold no class and are not stored), else None.
    """

    parts: list[Part]
    items: list[Item]
    labels: np.ndarray
    class_names: list[str]
    kind: str
    scale: float
    shape: tuple[int, int, int] | None
    block_size: int
    fingerprint: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    label_notes: LabelNotes = field(default_factory=LabelNotes)
    label_sets: np.ndarray | None = None

    @property
    def config(self) -> SourceConfig:
        """The leading source's options."""
        return self.parts[0].config

    @property
    def folder_name(self) -> str:
        """The cache folder's name under the cache root."""
        return self.fingerprint[:FINGERPRINT_CHARS]


def _clean_labels(parts: list[Part], items: list[Item], skipped: list) -> tuple[list[Item], int]:
    """The items with their labels cleaned (:func:`clean_label`), and how many were stripped.

    Bad labels are skipped (listed in ``skipped``) or refused, as their part's ``on_bad`` says.
    """
    out, stripped = [], 0
    for item in items:
        if item.label is None:
            out.append(item)
            continue
        try:
            label = clean_label(item.label)
        except LabelError as exc:
            if parts[int(item.where[0])].config.on_bad == "skip":
                skipped.append((item.key, str(exc)))
                continue
            raise BadInputError(_where(parts, item), str(exc)) from None
        stripped += is_stripped(item.label)
        out.append(item._replace(label=label))
    return out, stripped


def _where(parts: list[Part], item: Item) -> str:
    """``<source path>: <key>``, how errors name a sample."""
    part = parts[int(item.where[0])].config
    return f"{part.path or part.source}: {item.key}"


def _clean_names(names: list[str] | None) -> list[str] | None:
    """A source's own class list with whitespace stripped and repeats merged, order kept."""
    if names is None:
        return None
    return list(dict.fromkeys(n.strip() for n in names))


def _evenly(items: list[Item], limit: int) -> list[Item]:
    """``limit`` items, evenly spaced in key order within each split (proportionally)."""
    if limit >= len(items):
        return items
    groups: dict[str | None, list[Item]] = {}
    for item in items:
        groups.setdefault(item.split, []).append(item)
    kept = []
    for group in groups.values():
        k = max(1, round(limit * len(group) / len(items)))
        kept.extend(group[int(p)] for p in np.linspace(0, len(group) - 1, k).round())
    return sorted(kept, key=lambda i: i.key)


def _fingerprint(parts: list[Part], listing_files: list, items: list[Item], kind: str,
                 block_size: int) -> str:  # fmt: skip
    h = hashlib.sha256()
    options = parts[0].config.to_dict() if len(parts) == 1 and not parts[0].prefix else [
        p.to_dict() for p in parts]  # fmt: skip
    head = {"version": CACHE_VERSION, "options": options, "kind": kind,
            "block_size": block_size, "files": sorted(listing_files)}  # fmt: skip
    h.update(json.dumps(head, sort_keys=True).encode())
    for item in items:
        h.update(json.dumps([item.key, item.label, item.split, item.size, item.mtime_ns]).encode())
    return h.hexdigest()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a listing builds millions of small objects.

    The collector re-scans the whole heap as the item lists grow (a Ray driver's heap
    is large): pausing it cut listing 50,000 files by ~28% (measured side by side).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def plan_ingest(source: SourceConfig | list[Part], *, block_size: int) -> Plan:
    """List the source(s) and resolve what the cache will hold (no pixels decoded but one).

    Several parts (``data.train`` + ``data.pool``) become one cache: keys carry the
    part's prefix, every sample its part's split, and labels the leading part's class
    list (a pool may be unlabelled). The image shape comes from ``image_size`` /
    ``channels`` where set, else from the first image in key order that decodes.

    Raises:
        BadInputError: For a bad source or sample (naming it), duplicate keys, a part
            with no samples, or parts of different kinds.
    """
    with _gc_paused():
        return _plan(source, block_size=block_size)


def _plan(source: SourceConfig | list[Part], *, block_size: int) -> Plan:
    parts = [Part("", source)] if isinstance(source, SourceConfig) else list(source)
    items, skipped, files, kinds, scales = [], [], [], set(), set()
    names, names_from = None, ""
    for p, part in enumerate(parts):
        listing = get_source(part.config.source).list_items(part.config)
        if p == 0:
            names, names_from = listing.class_names, listing.class_names_from
        kinds.add(listing.kind)
        scales.add(listing.scale)
        files.extend(listing.files)
        skipped.extend((part.prefix + k, r) for k, r in listing.skipped)
        own = sorted(listing.items, key=lambda i: i.key)
        if part.config.limit is not None:
            own = _evenly(own, part.config.limit)
        if not own:
            where = part.config.path or part.config.source
            raise BadInputError(
                where, "has no samples" + (f" ({len(skipped)} skipped)" if skipped else "")
            )
        items.extend(
            Item(key=part.prefix + i.key, label=i.label, split=part.split or i.split,
                 where=[p, i.where], size=i.size, mtime_ns=i.mtime_ns)
            for i in own
        )  # fmt: skip
    if len(kinds) > 1 or len(scales) > 1:
        raise BadInputError("data", f"the sources mix kinds {sorted(kinds)}: use one kind")
    items.sort(key=lambda i: i.key)
    for a, b in itertools.pairwise(items):
        if a.key == b.key:
            raise BadInputError(a.key, "duplicate sample key")
    lead = parts[0].config.path or parts[0].config.source
    if parts[0].config.label_lists:
        return _plan_label_sets(parts, items, files, kinds.pop(), scales.pop(), block_size,
                                skipped)  # fmt: skip
    items, stripped = _clean_labels(parts, items, skipped)
    items, labels, class_names, notes = resolve_labels(
        parts[0].config, items, _clean_names(names), skipped, lead=parts[0].prefix,
        names_from=names_from, where=lead,
    )  # fmt: skip
    notes.stripped = stripped
    if not items:
        raise BadInputError(lead, f"has no usable sample ({len(skipped)} skipped)")
    if (labels >= 0).any():
        check_classes(labels, class_names, where=lead, origin=notes.class_list_from)
    kind = kinds.pop()
    shape = _probe_shape(parts, items) if kind == "image" else None
    fp = _fingerprint(parts, files, items, kind, block_size)
    return Plan(parts=parts, items=items, labels=labels, class_names=class_names, kind=kind,
                scale=scales.pop(), shape=shape, block_size=block_size, fingerprint=fp,
                skipped=skipped, label_notes=notes)  # fmt: skip


def _plan_label_sets(parts: list[Part], items: list[Item], files: list, kind: str, scale: float,
                     block_size: int, skipped: list) -> Plan:  # fmt: skip
    """The plan of a multi-label source: items labelled by tuples of class names, multi-hot rows."""
    lead = parts[0].config.path or parts[0].config.source
    own = [i for i in items if i.key.startswith(parts[0].prefix)]
    class_names, origin = label_set_names(own, parts[0].config.class_names)
    label_sets = multi_hot(items, class_names, where=lead)
    check_label_sets(label_sets, class_names, where=lead)
    shape = _probe_shape(parts, items) if kind == "image" else None
    fp = _fingerprint(parts, files, items, kind, block_size)
    return Plan(parts=parts, items=items, labels=np.full(len(items), UNLABELLED, np.int64),
                class_names=class_names, kind=kind, scale=scale, shape=shape,
                block_size=block_size, fingerprint=fp, skipped=skipped,
                label_notes=LabelNotes(class_list_from=origin), label_sets=label_sets)  # fmt: skip


def _read(parts: list[Part], items: list[Item]) -> list[object]:
    """The payloads of items of any parts (``where`` is ``[part, the source's where]``)."""
    out: list[object] = [None] * len(items)
    by_part: dict[int, list[int]] = {}
    for pos, item in enumerate(items):
        by_part.setdefault(int(item.where[0]), []).append(pos)
    for p, positions in by_part.items():
        cfg = parts[p].config
        own = [items[i]._replace(where=items[i].where[1]) for i in positions]
        for i, payload in zip(positions, get_source(cfg.source).read_items(cfg, own), strict=True):
            out[i] = payload
    return out


def _probe_shape(parts: list[Part], items: list[Item]) -> tuple[int, int, int]:
    """(C, H, W) of the first image in key order that decodes (a bad one: an error, or skipped)."""
    config = parts[0].config
    for item in items:
        payload = _read(parts, [item])[0]
        try:
            if isinstance(payload, BadInputError):
                raise payload
            channels = config.channels or channels_of(payload, item.key)
            arr = decode_image(payload, item.key, channels=channels, size=config.image_size,
                               max_pixels=config.max_pixels)  # fmt: skip
        except BadInputError:
            if config.on_bad != "skip":
                raise
            continue  # the chunk pass lists it as skipped
        return tuple(int(d) for d in arr.shape)  # type: ignore[return-value]
    raise BadInputError(config.path or config.source,
                        f"has no usable sample ({len(items)} skipped)")  # fmt: skip


def _config_from_dict(d: dict) -> SourceConfig:
    return SourceConfig(**{**d, "class_names": tuple(d["class_names"]) if d["class_names"] else None,
                           "image_size": tuple(d["image_size"]) if d["image_size"] else None})  # fmt: skip


def _item_json(item: Item) -> list:
    return [item.key, item.label, item.split, item.where, item.size, item.mtime_ns]


def ingest_chunk(
    *,
    parts: list[dict],
    chunk: int,
    items: list[list],
    out_dir: str,
    shape: list[int] | None,
    scale: float = 255.0,
) -> dict:
    """Decode one chunk of items and write its uint8 tensor (plain function; Ray runs it).

    Args:
        parts: :meth:`Part.to_dict` of every source.
        chunk: The chunk's index (chunk c holds listing positions [c*B, (c+1)*B)).
        items: The chunk's items as ``[key, label, split, where, size, mtime_ns]``.
        out_dir: The cache folder being written.
        shape: (C, H, W) every image must have (None for text).
        scale: The stored values' full range (the thumbnails are on 0..255).

    Returns:
        ``{"chunk", "kept": positions within the chunk, "skipped": [[key, reason]],
        "error": "key: reason" or "", "texts": [...] (text sources), "digests": hex
        exact-content signature per kept sample, "phashes": perceptual hash per kept
        image, "seen": {mode/size/conversion: count}}`` (see :mod:`engine.data.duplicates`
        and :func:`engine.data.decode.decode_image`); with ``on_bad: error`` the first
        bad sample ends the chunk with ``error`` set.
    """
    plan_parts = [Part(d["prefix"], _config_from_dict(d["source"]), d["split"]) for d in parts]
    cfg = plan_parts[0].config
    objs = [Item(key=i[0], label=i[1], split=i[2], where=i[3], size=i[4], mtime_ns=i[5])
            for i in items]  # fmt: skip
    payloads = _read(plan_parts, objs)
    result = {"chunk": chunk, "kept": [], "skipped": [], "error": "", "texts": [],
              "digests": [], "phashes": [], "seen": {}}  # fmt: skip
    seen: Counter[str] = Counter()
    block = np.empty((len(objs), *shape), np.uint8) if shape is not None else None
    for pos, (item, payload) in enumerate(zip(objs, payloads, strict=True)):
        try:
            if isinstance(payload, BadInputError):
                raise payload
            if shape is None:
                result["texts"].append(str(payload))
            else:
                arr = decode_image(payload, item.key, channels=shape[0], size=cfg.image_size,
                                   max_pixels=cfg.max_pixels, seen=seen)  # fmt: skip
                if list(arr.shape) != list(shape):
                    raise BadInputError(
                        item.key,
                        f"image is {arr.shape[2]}x{arr.shape[1]}, not {shape[2]}x{shape[1]} like "
                        "the first image: set data.image_size to resize every image",
                    )
                block[len(result["kept"])] = arr  # the one copy: into the block
        except BadInputError as exc:
            if cfg.on_bad != "skip":
                result["error"] = str(exc)
                return result
            result["skipped"].append([exc.key, exc.reason])
            continue
        result["kept"].append(pos)
    if block is not None:
        kept = block[: len(result["kept"])]
        save_npy(Path(out_dir) / CHUNKS_DIR / f"chunk={chunk:05d}.npy", kept)
        thumbs = thumbnails(kept, scale=scale)
        save_npy(Path(out_dir) / CHUNKS_DIR / f"thumbs={chunk:05d}.npy", thumbs)
        result["digests"] = [d.hex() for d in image_digests(kept)]
        result["phashes"] = [int(h) for h in perceptual_hashes(thumbs)]
    else:
        result["digests"] = [d.hex() for d in text_digests(result["texts"])]
    result["seen"] = dict(seen)
    return result


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temporary name (no fsync: :func:`sync_folder` does it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def sync_folder(folder: Path) -> None:
    """Fsync every file below ``folder`` before the cache is renamed into place.

    One pass at the end instead of an fsync per block in the decoders: the kernel
    writes the blocks back while the decoders work, so this pass mostly finds them
    on disk already, and no decoder waits on the disk (fsync per block cost the
    decoders ~15% of their time here).
    """
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def publish_folder(tmp: Path, final: Path, meta: dict) -> None:
    """Write ``meta.json`` last into ``tmp``, fsync it all, and rename ``tmp`` to ``final``.

    A cache folder is thus whole or absent. When another process published the same
    folder first (same content address), its folder stays and ``tmp`` is left to the
    caller to remove.
    """
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    sync_folder(tmp)
    try:
        os.rename(tmp, final)
    except OSError:  # another process built the same folder first: use it
        if not (final / META_FILE).is_file():
            raise


PROGRESS_EVERY_S = 2.0  # seconds between progress lines
BAR_WIDTH = 24  # characters of the progress bar


def progress_line(
    done: int, total: int, seconds: float, *, stage: str = "ingest", unit: str = "samples"
) -> str:
    """``[ingest] [#######.....] 52% 31,200/60,000 samples, 4,100/s, ETA 7 s``."""
    frac = done / max(total, 1)
    filled = round(BAR_WIDTH * frac)
    rate = done / max(seconds, 1e-9)
    eta = (total - done) / rate if rate > 0 else float("inf")
    return (f"[{stage}] [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * frac:3.0f}% "
            f"{done:,}/{total:,} {unit}, {rate:,.0f}/s, ETA {eta:,.0f} s")  # fmt: skip


def run_chunk(shared: dict, task: dict) -> dict:
    """Run one chunk task: ``fn(**shared, **task)``.

    ``fn`` is :func:`ingest_chunk`, or the function ``shared["chunk_fn"]`` names as
    ``"module:name"`` (the token cache's counting and encoding run on the same pool).
    """
    kwargs = dict(shared)
    name = kwargs.pop(CHUNK_FN, None)
    if name is None:
        return ingest_chunk(**kwargs, **task)
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)(**kwargs, **task)


def local_map(tasks: list[dict], shared: dict) -> Iterator[dict]:
    """Run each chunk task in this process, in order (no Ray; see :func:`run_chunk`)."""
    for task in tasks:
        yield run_chunk(shared, task)


def ingest(
    source: SourceConfig | list[Part],
    root: Path | str,
    *,
    block_size: int,
    map_chunks: ChunkMap | None = None,
    log: Callable[[str], None] = print,
) -> DatasetCache:
    """The dataset cache of a source (or parts): reused when its fingerprint is cached, else built.

    Args:
        source: The source's options, or several :class:`Part` (train + pool).
        root: The cache root (see :func:`cache_root`).
        block_size: Samples per block (the shards' block size).
        map_chunks: Runs the chunk tasks (default :func:`local_map`; the Ray Data
            pool is :func:`engine.distributed.ingest.ray_map_chunks`).
        log: Where progress lines go.

    Returns:
        The complete cache.

    Raises:
        BadInputError: For a bad source or sample with ``on_bad: error`` (naming the
            file or row), or when every sample was skipped.
    """
    plan = plan_ingest(source, block_size=block_size)
    root = Path(root)
    final = root / plan.folder_name
    if (final / META_FILE).is_file():
        cache = DatasetCache(final)
        if cache.fingerprint == plan.fingerprint:
            log(f"[ingest] reused cache {final} ({cache.num_samples} samples)")
            return cache
    remove_stale_tmp(root, plan.folder_name, log)  # a killed build's partial folder
    tmp = make_tmp_folder(root, plan.folder_name)
    try:
        cache = _build(plan, tmp, final, map_chunks or local_map, log)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return cache


def _build(plan: Plan, tmp: Path, final: Path, map_chunks: ChunkMap, log: Callable) -> DatasetCache:
    n, bs = len(plan.items), plan.block_size
    with _gc_paused():  # 50,000 small lists: 0.29 s with the collector on, 0.03 s paused
        tasks = [{"chunk": c, "items": [_item_json(i) for i in plan.items[c * bs : (c + 1) * bs]]}
                 for c in range(-(-n // bs))]  # fmt: skip
    shared = {"parts": [p.to_dict() for p in plan.parts], "out_dir": str(tmp),
              "shape": list(plan.shape) if plan.shape else None, "scale": plan.scale}  # fmt: skip
    where = plan.config.source + (f" {plan.config.path}" if plan.config.path else "")
    log(f"[ingest] {where}: {n} samples in {len(tasks)} chunks -> {final}")
    start = time.perf_counter()
    results: dict[int, dict] = {}
    done_rows, shown = 0, start
    for res in map_chunks(tasks, shared):
        if res["error"]:
            key, _, reason = res["error"].partition(": ")
            raise BadInputError(key, reason)
        results[int(res["chunk"])] = res
        done_rows += len(tasks[int(res["chunk"])]["items"])
        now = time.perf_counter()
        if done_rows == n or now - shown >= PROGRESS_EVERY_S:
            shown = now
            log(progress_line(done_rows, n, now - start))
    kept_pos: list[int] = []
    skipped = [list(s) for s in plan.skipped]
    texts: list[str] = []
    digests: list[str] = []
    phashes: list[int] = []
    seen: Counter[str] = Counter()
    for c in range(len(tasks)):
        res = results[c]
        kept_pos.extend(c * bs + p for p in res["kept"])
        skipped.extend(res["skipped"])
        texts.extend(res["texts"])
        digests.extend(res["digests"])
        phashes.extend(res["phashes"])
        seen.update(res["seen"])
    if not kept_pos:
        raise BadInputError(plan.config.path or plan.config.source,
                            f"has no usable sample ({len(skipped)} skipped)")  # fmt: skip
    thumbs = None
    if plan.shape is not None:
        thumbs = _thumbs_from_chunks(tmp, len(tasks), len(kept_pos))
        _blocks_from_chunks(tmp, len(tasks), bs, all_kept=len(kept_pos) == n)
    items = [plan.items[p] for p in kept_pos]
    labels = plan.labels[kept_pos]
    label_sets = plan.label_sets[kept_pos] if plan.label_sets is not None else None
    if label_sets is not None:  # decoding may have skipped a class's last samples
        check_label_sets(label_sets, plan.class_names,
                         where=plan.config.path or plan.config.source)  # fmt: skip
    elif (labels >= 0).any():
        check_classes(labels, plan.class_names, where=plan.config.path or plan.config.source,
                      origin=plan.label_notes.class_list_from)  # fmt: skip
    dup_start = time.perf_counter()
    raw = [bytes.fromhex(d) for d in digests]
    hashes = np.asarray(phashes, np.uint64) if plan.shape is not None else None
    exact, near, pairs, corr, mad = duplicate_groups(raw, hashes, thumbs)
    if thumbs is not None:
        # Needed only to confirm near pairs: not kept (for 28x28 images, 1.3x the pixels).
        del thumbs
        (tmp / THUMBS_FILE).unlink()
    columns = {
        "sample_id": pa.array(np.arange(len(items), dtype=np.int64)),
        "key": pa.array([i.key for i in items], pa.string()),
        "split": pa.array([i.split for i in items], pa.string()),
        "digest": pa.array(raw, pa.binary(DIGEST_BYTES)),
        "exact_group": pa.array(exact, pa.int64()),
        "near_group": pa.array(near, pa.int64()),
    }
    if label_sets is None:
        columns["label"] = pa.array(labels, pa.int64())
    else:  # no int label column: a multi-label cache has no class index to misread
        columns[LABEL_SET_COLUMN] = pa.FixedSizeListArray.from_arrays(
            pa.array(label_sets.ravel(), pa.uint8()), label_sets.shape[1]
        )
    if hashes is not None:
        columns["phash"] = pa.array(hashes, pa.uint64())
    if plan.shape is None:
        columns["text"] = pa.array(texts, pa.string())
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), tmp / SAMPLES_FILE)
    pq.write_table(pa.table({"a": pa.array(pairs[:, 0], pa.int64()),
                             "b": pa.array(pairs[:, 1], pa.int64()),
                             "detail_corr": pa.array(corr, pa.float32()),
                             "mean_abs_diff": pa.array(mad, pa.float32())}),
                   tmp / NEAR_PAIRS_FILE)  # fmt: skip
    duplicates = describe_groups(exact, near, len(pairs))
    log(f"[ingest] duplicates: {duplicates['exact_samples']} samples in "
        f"{duplicates['exact_groups']} groups of exact copies, {len(pairs)} near-duplicate pairs "
        f"({time.perf_counter() - dup_start:.1f} s)")  # fmt: skip
    meta = {
        "version": CACHE_VERSION,
        "fingerprint": plan.fingerprint,
        "source": plan.config.to_dict(),
        "parts": [p.to_dict() for p in plan.parts],
        "kind": plan.kind,
        "num_samples": len(items),
        "shape": list(plan.shape) if plan.shape else None,
        "scale": plan.scale,
        "class_names": plan.class_names,
        "labels": {
            "class_list_from": plan.label_notes.class_list_from,
            "stripped": plan.label_notes.stripped,
        },
        "block_size": bs,
        "num_blocks": -(-len(items) // bs),
        "skipped": [{"key": k, "reason": r} for k, r in skipped],
        "seen": seen_summary(seen),
        "duplicates": duplicates,
        "ingest_seconds": round(time.perf_counter() - start, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    publish_folder(tmp, final, meta)
    log(f"[ingest] {len(items)} samples cached in {meta['ingest_seconds']:.1f} s"
        + (f", {len(skipped)} skipped (listed in {final / META_FILE})" if skipped else ""))  # fmt: skip
    return DatasetCache(final)


def _thumbs_from_chunks(folder: Path, num_chunks: int, n: int) -> np.ndarray:
    """The chunks' thumbnails as one memory-mapped ``THUMBS_FILE`` (n, S, S), in sample-id order."""
    out = None
    at = 0
    for c in range(num_chunks):
        path = folder / CHUNKS_DIR / f"thumbs={c:05d}.npy"
        part = np.load(path)
        if out is None:
            out = np.lib.format.open_memmap(folder / THUMBS_FILE, mode="w+", dtype=np.uint8,
                                            shape=(n, *part.shape[1:]))  # fmt: skip
        out[at : at + len(part)] = part
        at += len(part)
        path.unlink()
    return out  # read back at once and removed: never flushed on purpose


def _blocks_from_chunks(folder: Path, num_chunks: int, block_size: int, *, all_kept: bool) -> None:
    """Turn the decoded chunks into blocks of ``block_size`` consecutive sample ids."""
    chunks = [folder / CHUNKS_DIR / f"chunk={c:05d}.npy" for c in range(num_chunks)]
    (folder / BLOCKS_DIR).mkdir()
    if all_kept:  # chunk c is block c
        for c, path in enumerate(chunks):
            os.replace(path, block_file(folder, c))
    else:  # skipped samples shifted the ids: repack, holding at most two blocks
        pending: list[np.ndarray] = []
        held, b = 0, 0
        for path in chunks:
            arr = np.load(path)
            pending.append(arr)
            held += len(arr)
            while held >= block_size:
                joined = np.concatenate(pending)
                save_npy(block_file(folder, b), joined[:block_size])
                pending, held, b = [joined[block_size:]], held - block_size, b + 1
            path.unlink()
        if held:
            save_npy(block_file(folder, b), np.concatenate(pending))
    shutil.rmtree(folder / CHUNKS_DIR, ignore_errors=True)
