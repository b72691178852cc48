"""Fashion-MNIST mosaics: layout, labels, no train/test leak, determinism, bad input."""

import gzip
import io
import struct

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.data.errors import BadInputError
from engine.data.label_lists import parse_label_lists
from engine.data.mosaic import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    build_fashion_mosaics,
    draw_tiles,
    main,
    read_mosaic_metadata,
)

SIDE = 4  # side of the synthetic images
N_TRAIN, N_TEST = 14, 9  # synthetic images per split (14 % 4 = 2 dropped per permutation)
TEST_OFFSET = 100  # pixel value of test image i is 100 + i, of train image i is i


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def _train_label(i):
    return i % 10


def _test_label(i):
    return (3 * i) % 10


@pytest.fixture
def idx_dir(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    for prefix, n, offset, label in (
        ("train", N_TRAIN, 0, _train_label),
        ("t10k", N_TEST, TEST_OFFSET, _test_label),
    ):
        images = np.stack([np.full((SIDE, SIDE), offset + i) for i in range(n)])
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(
            folder / f"{prefix}-labels-idx1-ubyte.gz", np.array([label(i) for i in range(n)])
        )
    return folder


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_mosaics_tile_their_split_and_are_labelled_by_the_classes_present(idx_dir, tmp_path):
    path = build_fashion_mosaics(
        idx_dir, tmp_path / "out", count_train=5, count_test=3, seed=7, tile=SIDE
    )
    rows = pq.read_table(path).to_pylist()
    assert [r["id"] for r in rows] == [f"train/{i:06d}" for i in range(5)] + [
        f"test/{i:06d}" for i in range(3)
    ]
    for row in rows:
        test = row["split"] == "test"
        offset, n, label = (
            (TEST_OFFSET, N_TEST, _test_label) if test else (0, N_TRAIN, _train_label)
        )
        tiles = row["tiles"]
        assert len(set(tiles)) == 4 and all(0 <= t < n for t in tiles)
        image = _decode(row["image"])
        assert image.shape == (2 * SIDE, 2 * SIDE) and image.dtype == np.uint8
        quadrants = [
            image[:SIDE, :SIDE],
            image[:SIDE, SIDE:],
            image[SIDE:, :SIDE],
            image[SIDE:, SIDE:],
        ]
        # every quadrant is the recorded image of the row's own split: no leak across splits
        for quadrant, t in zip(quadrants, tiles, strict=True):
            np.testing.assert_array_equal(quadrant, offset + t)
        assert row["labels"] == sorted({FASHION_MNIST_CLASSES[label(t)] for t in tiles})
        assert 1 <= len(row["labels"]) <= 4


def test_every_image_is_used_once_before_any_twice():
    rng = np.random.default_rng(0)
    rows = draw_tiles(14, 6, rng)  # 12 usable images per permutation: 3 mosaics each
    for cycle in (rows[:3], rows[3:]):
        assert len(set(cycle.ravel())) == 12
    assert all(len(set(r)) == 4 for r in rows)
    with pytest.raises(ValueError, match="needs 4 distinct images, the split has 3"):
        draw_tiles(3, 1, rng)


def test_builds_are_byte_identical_for_a_seed(idx_dir, tmp_path):
    options = {"count_train": 6, "count_test": 4, "seed": 11, "tile": SIDE}
    a = build_fashion_mosaics(idx_dir, tmp_path / "a", **options)
    b = build_fashion_mosaics(idx_dir, tmp_path / "b", **options)
    assert a.read_bytes() == b.read_bytes()
    other = build_fashion_mosaics(idx_dir, tmp_path / "c", **{**options, "seed": 12})
    assert other.read_bytes() != a.read_bytes()
    # the splits draw from separate streams: more test mosaics leave the train ones alone
    more = build_fashion_mosaics(idx_dir, tmp_path / "d", **{**options, "count_test": 8})
    train = [r for r in pq.read_table(more).to_pylist() if r["split"] == "train"]
    assert train == [r for r in pq.read_table(a).to_pylist() if r["split"] == "train"]


def test_metadata_and_labels_parse_to_multi_hot(idx_dir, tmp_path):
    path = build_fashion_mosaics(idx_dir, tmp_path, count_train=4, count_test=2, seed=1, tile=SIDE)
    meta = read_mosaic_metadata(path)
    assert meta["class_names"] == list(FASHION_MNIST_CLASSES)
    assert meta["seed"] == 1 and meta["counts"] == {"train": 4, "test": 2}
    assert meta["image_size"] == [2 * SIDE, 2 * SIDE]
    assert [f["file"] for f in meta["source_files"]["train"]] == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    table = pq.read_table(path)
    lists = parse_label_lists(
        table.column("labels").to_pylist(),
        where=str(path),
        column="labels",
        keys=table.column("id").to_pylist(),
        class_names=meta["class_names"],
    )
    for row, hot in zip(table.to_pylist(), lists.multi_hot, strict=True):
        assert [FASHION_MNIST_CLASSES[k] for k in np.flatnonzero(hot)] == sorted(
            row["labels"], key=FASHION_MNIST_CLASSES.index
        )
    with pytest.raises(BadInputError, match="is not a mosaic table"):
        pq.write_table(table.replace_schema_metadata(None), tmp_path / "plain.parquet")
        read_mosaic_metadata(tmp_path / "plain.parquet")


def test_tiles_are_resized_to_the_tile_side(idx_dir, tmp_path):
    path = build_fashion_mosaics(idx_dir, tmp_path, count_train=1, count_test=0, seed=0, tile=2)
    row = pq.read_table(path).to_pylist()[0]
    image = _decode(row["image"])
    assert image.shape == (4, 4)
    np.testing.assert_array_equal(image[:2, :2], row["tiles"][0])  # a flat image stays flat


def test_bad_input_refused(idx_dir, tmp_path):
    with pytest.raises(ValueError, match="not both 0"):
        build_fashion_mosaics(idx_dir, tmp_path, count_train=0, count_test=0, seed=0)
    with pytest.raises(ValueError, match=">= 0"):
        build_fashion_mosaics(idx_dir, tmp_path, count_train=-1, count_test=2, seed=0)
    labels = idx_dir / "t10k-labels-idx1-ubyte.gz"
    _write_idx(labels, np.array([0, 1, 12] + [0] * (N_TEST - 3)))
    with pytest.raises(BadInputError, match=r"t10k-labels-idx1-ubyte.gz row 2: label 12 is not"):
        build_fashion_mosaics(idx_dir, tmp_path, count_train=1, count_test=1, seed=0, tile=SIDE)
    # a train-only build never reads the test files
    build_fashion_mosaics(idx_dir, tmp_path, count_train=1, count_test=0, seed=0, tile=SIDE)
    labels.unlink()
    with pytest.raises(BadInputError, match=r"idx: has no t10k-labels-idx1-ubyte.gz"):
        build_fashion_mosaics(idx_dir, tmp_path, count_train=1, count_test=1, seed=0)
    _write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", np.zeros(3))
    _write_idx(idx_dir / "t10k-images-idx3-ubyte.gz", np.zeros((3, SIDE, SIDE)))
    with pytest.raises(BadInputError, match="the test images: a mosaic needs 4 distinct images"):
        build_fashion_mosaics(idx_dir, tmp_path, count_train=1, count_test=1, seed=0)


def test_command_line_matches_the_function(idx_dir, tmp_path, capsys):
    args = ["--train", "3", "--test", "2", "--seed", "5", "--idx", str(idx_dir), "--tile", "4"]
    assert main(["--out", str(tmp_path / "cli"), *args]) == 0
    printed = capsys.readouterr().out.strip()
    direct = build_fashion_mosaics(
        idx_dir, tmp_path / "fn", count_train=3, count_test=2, seed=5, tile=SIDE
    )
    assert (tmp_path / "cli" / "mosaics.parquet").read_bytes() == direct.read_bytes()
    assert printed == str(tmp_path / "cli" / "mosaics.parquet")
    with pytest.raises(SystemExit) as info:
        main(["--out", str(tmp_path / "x"), *args[:-2], "--tile", "0"])
    assert info.value.code == 2
    assert "tile must be a positive number of pixels" in capsys.readouterr().err


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist(tmp_path):
    path = build_fashion_mosaics(FASHION_MNIST_DIR, tmp_path, count_train=8, count_test=4, seed=0)
    rows = pq.read_table(path).to_pylist()
    assert [r["split"] for r in rows] == ["train"] * 8 + ["test"] * 4
    for row in rows:
        assert _decode(row["image"]).shape == (56, 56)
        assert 1 <= len(row["labels"]) <= 4 and set(row["labels"]) <= set(FASHION_MNIST_CLASSES)
        assert max(row["tiles"]) < (60_000 if row["split"] == "train" else 10_000)
