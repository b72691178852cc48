"""Multi-label data from Fashion-MNIST: 2x2 mosaics of four images, labelled by the classes present.

Each mosaic tiles four images of one split into a (2 tile) x (2 tile) grey PNG: train
mosaics from the training images only, test mosaics from the test images only, so no
test image reaches a training mosaic. Its labels are the sorted set of the class names
of its four tiles (1 to 4 labels). Per split, a seeded stream of permutations of the
split's images is cut four at a time (each permutation drops its last ``n mod 4``
images), so no image repeats within a mosaic and every image is used once before any
is used twice; the train and test streams are seeded apart, so changing one count
leaves the other split's mosaics as they were.

:func:`build_fashion_mosaics` writes one Parquet table, ``mosaics.parquet``: ``id``
(``train/000000``), ``split`` (``train``/``test``), ``image`` (PNG bytes), ``labels``
(``list<string>``), ``tiles`` (the four source rows of the split's IDX file,
row-major). Its schema metadata (key ``hardbench_mosaic``) holds a JSON description:
class names, seed, counts, tile size, and the IDX files with sizes and SHA-256. A build
is deterministic: the same files, counts, seed and tile give the same bytes. Read it
with the ``table`` source (``image_column: image``, ``label_column: labels``,
``id_column: id``, ``split_column: split``).

Command line: ``python -m engine.data.mosaic --out DIR --train N --test M --seed S``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from engine.data.archives import read_idx
from engine.data.errors import BadInputError

# Fashion-MNIST's classes by label index, spelled as benchmarks/fashion-mnist.yaml does.
FASHION_MNIST_CLASSES = (
    "t-shirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
)  # fmt: skip
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
# The IDX files of each split: (images, labels), each also accepted without ``.gz``.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SPLIT_STREAMS = {"train": 0, "test": 1}  # second seed word of each split's random stream
GRID = 2  # a mosaic is GRID x GRID tiles
TILES = GRID * GRID  # images per mosaic
DEFAULT_TILE = 28  # Fashion-MNIST's image side, in pixels
ID_WIDTH = 6  # digits of a mosaic's row in its id ("train/000042")
TABLE_FILE = "mosaics.parquet"  # the table build_fashion_mosaics writes in out_dir
METADATA_KEY = b"hardbench_mosaic"  # schema-metadata key of the build's JSON description
PNG_COMPRESS_LEVEL = 6  # zlib level of the PNGs (fixed: the bytes must not depend on defaults)
HASH_CHUNK = 1 << 20  # bytes read at a time when hashing a source file


def _find(idx_dir: Path, name: str) -> Path:
    for candidate in (idx_dir / name, idx_dir / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    raise BadInputError(str(idx_dir), f"has no {name} (nor {name.removesuffix('.gz')})")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_split(idx_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Images (n, H, W) uint8, labels (n,) and the files' provenance of one split."""
    images_path, labels_path = (_find(idx_dir, name) for name in IDX_FILES[split])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise BadInputError(
            str(images_path), f"holds {images.dtype} {images.shape}, not uint8 grey images"
        )
    if labels.shape != (len(images),):
        raise BadInputError(
            str(labels_path), f"holds {labels.shape} labels for {len(images)} images"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= len(FASHION_MNIST_CLASSES)))
    if bad.size:
        raise BadInputError(
            f"{labels_path} row {int(bad[0])}",
            f"label {int(labels[bad[0]])} is not a Fashion-MNIST class "
            f"(0..{len(FASHION_MNIST_CLASSES) - 1})",
        )
    files = [
        {"file": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in (images_path, labels_path)
    ]
    return images, labels.astype(np.int64), files


def draw_tiles(num_images: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of the images each mosaic tiles: Int64 (count, 4), no row twice in a mosaic.

    Consecutive permutations of ``range(num_images)``, each cut after its last full
    group of four, are read four at a time.

    Raises:
        ValueError: If there are fewer than 4 images for a positive count.
    """
    if count == 0:
        return np.zeros((0, TILES), np.int64)
    if num_images < TILES:
        raise ValueError(f"a mosaic needs {TILES} distinct images, the split has {num_images}")
    usable = num_images - num_images % TILES
    cycles = -(-count * TILES // usable)  # ceiling division
    stream = np.concatenate([rng.permutation(num_images)[:usable] for _ in range(cycles)])
    return stream[: count * TILES].reshape(count, TILES).astype(np.int64)


def _tile_image(image: np.ndarray, tile: int) -> np.ndarray:
    if image.shape == (tile, tile):
        return image
    return np.asarray(Image.fromarray(image).resize((tile, tile), Image.Resampling.BILINEAR))


def mosaic_png(images: Sequence[np.ndarray], tile: int = DEFAULT_TILE) -> bytes:
    """Four grey images as one 2x2 PNG, row-major (top-left, top-right, bottom-left, ...).

    Args:
        images: Four uint8 (H, W) images; resized to ``tile`` x ``tile`` when they differ.
        tile: Side of each tile in pixels.

    Returns:
        PNG bytes of a (2 tile, 2 tile) grey image.
    """
    tiles = [_tile_image(np.asarray(image), tile) for image in images]
    rows = [np.concatenate(tiles[r * GRID : (r + 1) * GRID], axis=1) for r in range(GRID)]
    buf = io.BytesIO()
    Image.fromarray(np.concatenate(rows, axis=0)).save(
        buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL
    )
    return buf.getvalue()


def _split_rows(
    split: str, images: np.ndarray, labels: np.ndarray, count: int, seed: int, tile: int
) -> dict[str, list]:
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split]])
    try:
        rows = draw_tiles(len(images), count, rng)
    except ValueError as exc:
        raise BadInputError(f"the {split} images", str(exc)) from None
    out: dict[str, list] = {"id": [], "split": [], "image": [], "labels": [], "tiles": []}
    for i, picked in enumerate(rows):
        out["id"].append(f"{split}/{i:0{ID_WIDTH}d}")
        out["split"].append(split)
        out["image"].append(mosaic_png([images[r] for r in picked], tile))
        out["labels"].append(sorted({FASHION_MNIST_CLASSES[labels[r]] for r in picked}))
        out["tiles"].append([int(r) for r in picked])
    return out


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_fashion_mosaics(
    idx_dir: Path | str,
    out_dir: Path | str,
    *,
    count_train: int,
    count_test: int,
    seed: int,
    tile: int = DEFAULT_TILE,
) -> Path:
    """Build the Fashion-MNIST mosaic table (see the module docstring) in ``out_dir``.

    Args:
        idx_dir: Folder with the Fashion-MNIST IDX files (``train-*`` and ``t10k-*``,
            gzipped or not), e.g. :data:`FASHION_MNIST_DIR`.
        out_dir: Folder the table is written to (created if missing).
        count_train: Mosaics drawn from the training images (>= 0).
        count_test: Mosaics drawn from the test images (>= 0).
        seed: Seed of the draw; the same inputs and seed give the same bytes.
        tile: Side of each tile in pixels (the images are resized if it differs).

    Returns:
        The path of the written table, ``out_dir / "mosaics.parquet"``.

    Raises:
        ValueError: For a negative count, no mosaic at all, a tile under 1 or a
            negative seed.
        BadInputError: For a missing or bad IDX file (naming it), a label that is not
            a Fashion-MNIST class, or a split with fewer than 4 images.
    """
    if count_train < 0 or count_test < 0 or count_train + count_test == 0:
        raise ValueError(
            f"counts must be >= 0 and not both 0, got train={count_train}, test={count_test}"
        )
    if tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    idx_dir, out_dir = Path(idx_dir), Path(out_dir)
    columns: dict[str, list] = {"id": [], "split": [], "image": [], "labels": [], "tiles": []}
    files: dict[str, list[dict]] = {}
    for split, count in (("train", count_train), ("test", count_test)):
        if count == 0:
            continue
        images, labels, files[split] = _read_split(idx_dir, split)
        for key, values in _split_rows(split, images, labels, count, seed, tile).items():
            columns[key].extend(values)
    description = {
        "description": (
            f"{GRID}x{GRID} mosaics of Fashion-MNIST images; labels = the sorted class names "
            "present; train mosaics from training images, test mosaics from test images only"
        ),
        "class_names": list(FASHION_MNIST_CLASSES),
        "seed": seed,
        "counts": {"train": count_train, "test": count_test},
        "tile": tile,
        "image_size": [GRID * tile, GRID * tile],
        "source_files": files,
    }
    schema = pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("image", pa.binary(), nullable=False),
            pa.field("labels", pa.list_(pa.string()), nullable=False),
            pa.field("tiles", pa.list_(pa.int32(), TILES), nullable=False),
        ],
        metadata={METADATA_KEY: json.dumps(description, sort_keys=True).encode()},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TABLE_FILE
    _write_atomic(pa.table(columns, schema=schema), path)
    return path


def read_mosaic_metadata(path: Path | str) -> dict:
    """The JSON description a mosaic table carries in its schema metadata.

    Raises:
        BadInputError: If the file is not a mosaic table built here.
    """
    metadata = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in metadata:
        raise BadInputError(str(path), "is not a mosaic table (no hardbench_mosaic metadata)")
    return json.loads(metadata[METADATA_KEY])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m engine.data.mosaic``: build the table and print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m engine.data.mosaic", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--train", required=True, type=int, help="training mosaics")
    parser.add_argument("--test", required=True, type=int, help="test mosaics")
    parser.add_argument("--seed", required=True, type=int, help="seed of the draw")
    parser.add_argument("--idx", type=Path, default=FASHION_MNIST_DIR, help="IDX folder")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile side in pixels")
    args = parser.parse_args(argv)
    try:
        path = build_fashion_mosaics(
            args.idx, args.out, count_train=args.train, count_test=args.test, seed=args.seed,
            tile=args.tile,
        )  # fmt: skip
    except ValueError as exc:  # BadInputError included
        parser.exit(2, f"error: {exc}\n")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
