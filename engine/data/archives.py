"""Archive sources: ``webdataset`` (tar shards) and ``idx`` (MNIST-format IDX files).

WebDataset: ``path`` is a glob of ``.tar`` files; members sharing a basename before
the first dot are one sample (``0001.png`` + ``0001.cls``); the image is the member
with an image suffix, the label the ``.cls`` member (a class index as text). Keys are
the basenames, so re-sharding the same samples keeps their ids.

IDX: ``path`` is a folder of ``*images-idx3-ubyte[.gz]`` files, each with its
``*labels-idx1-ubyte[.gz]`` partner (as MNIST and Fashion-MNIST ship); a file named
``train`` gives training samples, ``t10k``/``test`` held-out ones. Keys are
``<prefix>/<row>`` with the row zero-padded.
"""

from __future__ import annotations

import functools
import glob
import gzip
import tarfile
from pathlib import Path

import numpy as np

from engine.data.errors import BadInputError, skip_or_raise
from engine.data.paths import IMAGE_SUFFIXES, stat_file
from engine.data.registry import Item, Listing, SourceInfo, register_source
from engine.spec.sources import SourceConfig

LABEL_SUFFIXES = (".cls",)  # WebDataset members that hold a class index as text
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_ROW_WIDTH = 6  # digits of a row in an IDX key ("train/000042")


def _tar_paths(pattern: str | None) -> list[Path]:
    if not pattern:
        raise BadInputError("data.path", "the webdataset source needs data.path (a glob of .tar)")
    paths = sorted(Path(p) for p in glob.glob(pattern))
    if not paths:
        raise BadInputError(pattern, "matches no tar file")
    return paths


def list_webdataset(config: SourceConfig) -> Listing:
    """List the samples of every tar shard ``config.path`` matches.

    Raises:
        BadInputError: For an unreadable tar, or (``on_bad: error``; skipped and listed
            under ``skip``) a sample without an image or label, a label that is not an
            integer, or a key found twice.
    """
    items, files, first, skipped = [], [], {}, []
    for tar_path in _tar_paths(config.path):
        size, mtime = stat_file(tar_path)
        files.append((str(tar_path), size, mtime))
        members: dict[str, dict] = {}
        try:
            with tarfile.open(tar_path) as tf:
                for m in tf:
                    if not m.isfile():
                        continue
                    base, _, ext = Path(m.name).name.partition(".")
                    key = str(Path(m.name).parent / base) if Path(m.name).parent.name else base
                    entry = members.setdefault(key, {})
                    suffix = f".{ext.lower()}"
                    if suffix in IMAGE_SUFFIXES:
                        entry["image"] = m.name
                    elif suffix in LABEL_SUFFIXES:
                        entry["label"] = tf.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BadInputError(str(tar_path), f"unreadable tar: {exc}") from None
        for key, entry in sorted(members.items()):
            try:
                items.append(_tar_item(config, tar_path, key, entry, first))
            except BadInputError as exc:
                skip_or_raise(exc, config.on_bad, skipped)
    return Listing(items=items, kind="image", files=files, skipped=skipped)


def _tar_item(config: SourceConfig, tar_path: Path, key: str, entry: dict,
              first: dict[str, str]) -> Item:  # fmt: skip
    """The item of one tar sample, or the BadInputError naming it (a per-sample problem)."""
    where = f"{tar_path} member {key}"
    if "image" not in entry:
        raise BadInputError(where, "has no image member (.png, .jpg, ...)")
    if key in first:
        raise BadInputError(where, f"duplicate key {key!r} (also in {first[key]})")
    first[key] = str(tar_path)
    raw = entry.get("label")
    if config.label_column is not None and raw is None:
        raise BadInputError(where, "has no .cls label member")
    label = None
    if raw is not None:
        try:
            label = int(raw.decode().strip())
        except (UnicodeDecodeError, ValueError):
            raise BadInputError(where, f"label {raw[:20]!r} is not an integer") from None
    return Item(key=key, label=label, split=None, where=[str(tar_path), entry["image"]])


@functools.lru_cache(maxsize=8)
def _tar_index(path: str, mtime_ns: int) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tf:
        return {m.name: m for m in tf if m.isfile()}


def read_webdataset(config: SourceConfig, items: list[Item]) -> list[object]:
    """The image bytes of each item, read from its tar by offset."""
    out: list[object] = []
    handles: dict[str, tarfile.TarFile] = {}
    try:
        for item in items:
            tar_path, member = item.where
            try:
                index = _tar_index(tar_path, stat_file(Path(tar_path))[1])
                tf = handles.get(tar_path) or handles.setdefault(tar_path, tarfile.open(tar_path))
                out.append(tf.extractfile(index[member]).read())
            except (tarfile.TarError, OSError, KeyError) as exc:
                out.append(BadInputError(f"{tar_path} member {member}", f"unreadable: {exc}"))
    finally:
        for tf in handles.values():
            tf.close()
    return out


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as an array of the shape and type its header says.

    Raises:
        BadInputError: For a bad magic number, an unknown type or a truncated file.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BadInputError(str(path), f"unreadable: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise BadInputError(str(path), "not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    need = int(np.prod(dims)) * dtype.itemsize
    start = 4 + 4 * ndim
    if len(raw) - start != need:
        raise BadInputError(
            str(path), f"header says {dims} ({need} bytes) but {len(raw) - start} follow"
        )
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims)


@functools.lru_cache(maxsize=4)
def _idx_cached(path: str, mtime_ns: int) -> np.ndarray:
    return read_idx(Path(path))


def _idx_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    pairs = []
    for images in sorted(folder.glob("*images-idx3-ubyte*")):
        labels = images.with_name(images.name.replace("images-idx3", "labels-idx1"))
        if not labels.exists():
            raise BadInputError(str(images), f"has no labels file {labels.name}")
        prefix = images.name.split("images-idx3")[0].rstrip("-_.") or "data"
        pairs.append((prefix, images, labels))
    if not pairs:
        raise BadInputError(str(folder), "holds no *images-idx3-ubyte[.gz] file")
    return pairs


def _idx_split(prefix: str) -> str | None:
    name = prefix.lower()
    if "train" in name:
        return "train"
    if "t10k" in name or "test" in name:
        return "heldout"
    return None


def list_idx(config: SourceConfig) -> Listing:
    """List the images of every IDX pair in the folder ``config.path``.

    Raises:
        BadInputError: For a missing partner file, a count mismatch or a bad file.
    """
    if not config.path:
        raise BadInputError("data.path", "the idx source needs data.path (a folder)")
    folder = Path(config.path)
    if not folder.is_dir():
        raise BadInputError(str(folder), "is not a folder")
    items, files = [], []
    for prefix, images_path, labels_path in _idx_pairs(folder):
        for p in (images_path, labels_path):
            size, mtime = stat_file(p)
            files.append((str(p), size, mtime))
        images = _idx_cached(str(images_path), stat_file(images_path)[1])
        labels = _idx_cached(str(labels_path), stat_file(labels_path)[1])
        if images.ndim not in (3, 4) or images.dtype != np.uint8:
            raise BadInputError(
                str(images_path), f"holds {images.dtype} {images.shape}, not uint8 images"
            )
        if labels.shape != (len(images),):
            raise BadInputError(
                str(labels_path), f"holds {labels.shape} labels for {len(images)} images"
            )
        split = _idx_split(prefix)
        items.extend(
            Item(key=f"{prefix}/{i:0{IDX_ROW_WIDTH}d}", label=int(labels[i]), split=split,
                 where=[str(images_path), i])
            for i in range(len(images))
        )  # fmt: skip
    return Listing(items=items, kind="image", files=files)


def read_idx_items(config: SourceConfig, items: list[Item]) -> list[object]:
    """Each item's uint8 image (H, W) (or (H, W, C)), from its IDX file read once per process."""
    out = []
    for item in items:
        path, row = item.where
        out.append(np.asarray(_idx_cached(path, stat_file(Path(path))[1])[row]))
    return out


register_source(
    SourceInfo(
        name="webdataset",
        description="WebDataset tar shards (a glob): <key>.png/.jpg + <key>.cls",
        list_items=list_webdataset,
        read_items=read_webdataset,
    )
)
register_source(
    SourceInfo(
        name="idx",
        description="MNIST-format IDX files in a folder (train-*/t10k-* images and labels)",
        list_items=list_idx,
        read_items=read_idx_items,
    )
)
