"""Every registered source, on small data the test writes: the cache holds the same pixels, labels and ids.

Pixels are compared with the arrays the test wrote (PNG, IDX, tar and HF/Parquet
bytes of PNGs are lossless) or, for JPEG, with PIL's own decoding of the same file.
"""

import gzip
import io
import json
import os
import struct
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.data.cache import BLOCKS_DIR, META_FILE, DatasetCache, take_rows
from engine.data.errors import BadInputError
from engine.data.ingest import ingest
from engine.data.registry import list_registered_sources
from engine.spec.sources import SourceConfig

CLASSES = ["bird", "cat", "dog"]
N_PER_CLASS = 7
N = N_PER_CLASS * 3  # samples of the default test set
BLOCK = 4  # small blocks, so every cache spans several


def _images(seed=0, n=N, shape=(12, 10), channels=1):
    rng = np.random.default_rng(seed)
    size = (n, *shape) if channels == 1 else (n, *shape, channels)
    return rng.integers(0, 256, size=size, dtype=np.uint8)


def _labels(n=N):
    return np.arange(n) % len(CLASSES)


def _png(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _write_folder(root, images, labels, fmt="png", order=None):
    order = range(len(images)) if order is None else order
    for i in order:
        path = root / CLASSES[labels[i]] / f"img{i:03d}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(path, quality=90) if fmt == "jpg" else path.write_bytes(
            _png(images[i])
        )
    return root


def _ingest(tmp_path, log=None, **options):
    return ingest(SourceConfig(**options), tmp_path / "cache", block_size=BLOCK,
                  log=log or (lambda line: None))  # fmt: skip


def _snapshot(root):
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    )


def test_every_source_is_registered():
    assert {"imagefolder", "table", "hf_disk", "webdataset", "idx", "sklearn_digits"} <= set(
        list_registered_sources()
    )


def test_png_folder_gives_the_written_pixels_labels_and_sorted_ids(tmp_path):
    images, labels = _images(), _labels()
    root = _write_folder(tmp_path / "imgs", images, labels)
    before = _snapshot(root)
    cache = _ingest(tmp_path, source="imagefolder", path=str(root))
    keys = cache.keys()
    assert keys == sorted(keys) and len(keys) == len(images)
    assert cache.class_names == CLASSES and cache.meta["shape"] == [1, 12, 10]
    for sid, key in enumerate(keys):
        i = int(key.split("img")[1][:3])
        np.testing.assert_array_equal(cache.inputs().stored(sid)[0], images[i])
        assert cache.labels()[sid] == labels[i] and key.startswith(CLASSES[labels[i]] + "/")
    np.testing.assert_array_equal(cache.inputs()[:], cache.inputs().stored()[:] / np.float32(255))
    assert len(list((cache.path / BLOCKS_DIR).glob("*.npy"))) == -(-len(images) // BLOCK)
    assert _snapshot(root) == before  # the source is never written


def test_jpeg_colour_folder_equals_pil_decoding(tmp_path):
    images, labels = _images(channels=3), _labels()
    root = _write_folder(tmp_path / "jpgs", images, labels, fmt="jpg")
    cache = _ingest(tmp_path, source="imagefolder", path=str(root))
    assert cache.meta["shape"] == [3, 12, 10]
    for sid, key in enumerate(cache.keys()):
        expect = np.asarray(Image.open(root / key).convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(cache.inputs().stored(sid), expect)


def test_ids_are_stable_across_listing_orders_and_the_cache_is_reused(tmp_path):
    images, labels = _images(), _labels()
    a = _write_folder(tmp_path / "a", images, labels)
    b = _write_folder(tmp_path / "b", images, labels, order=range(len(images) - 1, -1, -1))
    ca = _ingest(tmp_path, source="imagefolder", path=str(a))
    cb = _ingest(tmp_path, source="imagefolder", path=str(b))
    assert ca.keys() == cb.keys()
    np.testing.assert_array_equal(ca.inputs().stored(), cb.inputs().stored())
    lines = []
    again = _ingest(tmp_path, log=lines.append, source="imagefolder", path=str(a))
    assert again.path == ca.path and any("reused" in line for line in lines)
    os.utime(a / "cat" / "img001.png", ns=(1, 1))  # a changed listing: a new fingerprint
    changed = _ingest(tmp_path, source="imagefolder", path=str(a))
    assert changed.fingerprint != ca.fingerprint


def test_flat_folder_is_an_unlabelled_pool(tmp_path):
    images = _images(n=5)
    root = tmp_path / "flat"
    root.mkdir()
    for i, img in enumerate(images):
        (root / f"{i}.png").write_bytes(_png(img))
    cache = _ingest(tmp_path, source="imagefolder", path=str(root))
    assert (cache.labels() == -1).all() and cache.class_names == []


def test_csv_with_paths_keyed_by_path_whatever_the_row_order(tmp_path):
    images, labels = _images(), _labels()
    root = tmp_path / "t"
    (root / "px").mkdir(parents=True)
    rows = []
    for i, img in enumerate(images):
        (root / "px" / f"{i:03d}.png").write_bytes(_png(img))
        rows.append(f"px/{i:03d}.png,{CLASSES[labels[i]]}")
    (root / "a.csv").write_text("file,y\n" + "\n".join(rows) + "\n")
    (root / "b.csv").write_text("file,y\n" + "\n".join(rows[::-1]) + "\n")
    opts = {"source": "table", "image_column": "file", "label_column": "y"}
    ca = _ingest(tmp_path, path=str(root / "a.csv"), **opts)
    cb = _ingest(tmp_path, path=str(root / "b.csv"), **opts)
    assert ca.keys() == cb.keys() == [f"px/{i:03d}.png" for i in range(len(images))]
    np.testing.assert_array_equal(ca.inputs().stored()[:, 0], images)
    np.testing.assert_array_equal(ca.labels(), labels)
    assert ca.class_names == CLASSES


def test_parquet_with_bytes_ids_and_split(tmp_path):
    images, labels = _images(), _labels()
    split = np.where(np.arange(len(images)) % 3 == 0, "test", "train")
    table = pa.table({
        "img": pa.array([_png(x) for x in images], pa.binary()),
        "label": pa.array(labels, pa.int64()),
        "uid": [f"s{i:02d}" for i in range(len(images))],
        "part": split,
    })  # fmt: skip
    pq.write_table(table, tmp_path / "d.parquet")
    cache = _ingest(tmp_path, source="table", path=str(tmp_path / "d.parquet"), image_column="img",
                    id_column="uid", split_column="part", class_names=tuple(CLASSES))  # fmt: skip
    np.testing.assert_array_equal(cache.inputs().stored()[:, 0], images)
    np.testing.assert_array_equal(cache.labels(), labels)
    assert list(cache.splits()) == ["heldout" if s == "test" else "train" for s in split]


def test_jsonl_texts(tmp_path):
    rows = [{"text": f"sample {i} is {'good' if i % 2 else 'bad'}", "label": i % 2}
            for i in range(10)]  # fmt: skip
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cache = _ingest(tmp_path, source="table", path=str(tmp_path / "t.jsonl"), text_column="text")
    assert cache.texts() == [r["text"] for r in rows] and cache.kind == "text"
    np.testing.assert_array_equal(cache.labels(), [r["label"] for r in rows])


def test_hf_save_to_disk_dataset_dict(tmp_path):
    import datasets

    images, labels = _images(), _labels()
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)}
    )
    half = len(images) // 2
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(
            {"image": [Image.fromarray(x) for x in images[:half]], "label": labels[:half]},
            features=features),
        "test": datasets.Dataset.from_dict(
            {"image": [Image.fromarray(x) for x in images[half:]], "label": labels[half:]},
            features=features),
    })  # fmt: skip
    dd.save_to_disk(str(tmp_path / "hf"))
    cache = _ingest(tmp_path, source="hf_disk", path=str(tmp_path / "hf"))
    assert cache.class_names == CLASSES
    by_key = dict(zip(cache.keys(), range(cache.num_samples), strict=True))
    for i in range(len(images)):
        key = f"train/row{i:09d}" if i < half else f"test/row{i - half:09d}"
        sid = by_key[key]
        np.testing.assert_array_equal(cache.inputs().stored(sid)[0], images[i])
        assert cache.labels()[sid] == labels[i]
        assert cache.splits()[sid] == ("train" if i < half else "heldout")


def test_webdataset_tar_shards(tmp_path):
    images, labels = _images(), _labels()
    for shard in range(2):
        with tarfile.open(tmp_path / f"shard-{shard}.tar", "w") as tf:
            for i in range(shard, len(images), 2):
                for name, payload in ((f"{i:04d}.png", _png(images[i])),
                                      (f"{i:04d}.cls", str(labels[i]).encode())):  # fmt: skip
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tf.addfile(info, io.BytesIO(payload))
    cache = _ingest(tmp_path, source="webdataset", path=str(tmp_path / "shard-*.tar"))
    assert cache.keys() == [f"{i:04d}" for i in range(len(images))]
    np.testing.assert_array_equal(cache.inputs().stored()[:, 0], images)
    np.testing.assert_array_equal(cache.labels(), labels)


def _idx(path, array, gz=True):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}i", *array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_idx_files_train_and_t10k(tmp_path):
    train, test = _images(seed=1, n=9), _images(seed=2, n=5)
    _idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(9) % 3)
    _idx(tmp_path / "t10k-images-idx3-ubyte", test, gz=False)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(5) % 3, gz=False)
    cache = _ingest(tmp_path, source="idx", path=str(tmp_path))
    x = cache.inputs().stored()[:, 0]
    np.testing.assert_array_equal(x[:5], test)  # "t10k/..." sorts before "train/..."
    np.testing.assert_array_equal(x[5:], train)
    assert list(cache.splits()) == ["heldout"] * 5 + ["train"] * 9


def test_resize_and_channels(tmp_path):
    root = tmp_path / "mixed"
    for i, shape in enumerate([(12, 10), (30, 40), (12, 10), (8, 8, 3)]):
        folder = root / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(_png(_images(seed=i, n=1, shape=shape[:2],
                                                       channels=len(shape) - 1 or 1)[0]))  # fmt: skip
    with pytest.raises(BadInputError, match=r"b/1\.png: image is 40x30, not 10x12.*image_size"):
        _ingest(tmp_path, source="imagefolder", path=str(root))
    cache = _ingest(tmp_path, source="imagefolder", path=str(root), image_size=(16, 16), channels=3)
    assert cache.meta["shape"] == [3, 16, 16] and cache.num_samples == 4


# -- bad input ---------------------------------------------------------------------------


def _folder_with(tmp_path, name, payload):
    root = _write_folder(tmp_path / "src", _images(n=6), _labels(n=6))
    (root / "cat" / name).write_bytes(payload)
    return root


def test_non_image_and_truncated_files_are_named_or_skipped(tmp_path):
    root = _folder_with(tmp_path, "zz_bad.png", b"this is not a png")
    with pytest.raises(BadInputError, match=r"cat/zz_bad\.png: not a readable image"):
        _ingest(tmp_path, source="imagefolder", path=str(root))
    cache = _ingest(tmp_path, source="imagefolder", path=str(root), on_bad="skip")
    assert cache.num_samples == 6
    assert [s["key"] for s in cache.meta["skipped"]] == ["cat/zz_bad.png"]
    truncated = _png(_images(n=1, shape=(64, 64))[0])[:300]
    root2 = _folder_with(tmp_path / "t", "trunc.png", truncated)
    with pytest.raises(BadInputError, match=r"trunc\.png"):
        _ingest(tmp_path, source="imagefolder", path=str(root2))


def test_skipped_samples_shift_ids_and_blocks_stay_aligned(tmp_path):
    images, labels = _images(), _labels()
    root = _write_folder(tmp_path / "src", images, labels)
    (root / "bird" / "img000.png").write_bytes(b"broken")  # the very first key
    cache = _ingest(tmp_path, source="imagefolder", path=str(root), on_bad="skip")
    assert cache.num_samples == len(images) - 1
    keys = cache.keys()
    assert "bird/img000.png" not in keys
    for sid in range(cache.num_samples):
        i = int(keys[sid].split("img")[1][:3])
        np.testing.assert_array_equal(cache.inputs().stored(sid)[0], images[i])
    sizes = [len(np.load(p)) for p in sorted((cache.path / BLOCKS_DIR).glob("*.npy"))]
    assert sizes[:-1] == [BLOCK] * (len(sizes) - 1)


def test_text_file_in_an_image_folder(tmp_path):
    root = _folder_with(tmp_path, "notes.txt", b"hello")
    with pytest.raises(BadInputError, match=r"notes\.txt: not an image file"):
        _ingest(tmp_path, source="imagefolder", path=str(root))


def test_decompression_bomb_is_refused(tmp_path):
    big = np.zeros((1200, 1000), np.uint8)
    root = _folder_with(tmp_path, "bomb.png", _png(big))
    with pytest.raises(BadInputError, match=r"bomb\.png: 1000x1200 = 1,200,000 pixels is over"):
        _ingest(tmp_path, source="imagefolder", path=str(root), max_pixels=1_000_000,
                image_size=(12, 10))  # fmt: skip


def _csv(tmp_path, header, rows, pngs=3):
    root = tmp_path / "tab"
    root.mkdir(exist_ok=True)
    for i in range(pngs):
        (root / f"{i}.png").write_bytes(_png(_images(n=1)[0]))
    (root / "d.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return root / "d.csv"


def test_label_outside_the_class_list(tmp_path):
    path = _csv(tmp_path, "file,label", ["0.png,cat", "1.png,horse", "2.png,bird"])
    with pytest.raises(BadInputError, match=r"1\.png: label 'horse' is not in the class list"):
        _ingest(tmp_path, source="table", path=str(path), image_column="file",
                class_names=("bird", "cat"))  # fmt: skip


def test_duplicate_id_names_both_rows(tmp_path):
    path = _csv(tmp_path, "file,label,id", ["0.png,0,a", "1.png,1,b", "2.png,0,a"])
    with pytest.raises(BadInputError, match=r"row 2: duplicate id 'a' \(also row 0\)"):
        _ingest(tmp_path, source="table", path=str(path), image_column="file", id_column="id")


def test_missing_column_lists_the_columns(tmp_path):
    path = _csv(tmp_path, "file,label", ["0.png,0"])
    with pytest.raises(
        BadInputError, match=r"no column 'y' \(data.label_column\); columns: file, label"
    ):
        _ingest(tmp_path, source="table", path=str(path), image_column="file", label_column="y")


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/hostname", "link.png"])
def test_table_paths_never_leave_the_data_root(tmp_path, bad):
    (tmp_path / "outside.png").write_bytes(_png(_images(n=1)[0]))
    path = _csv(tmp_path, "file,label", ["0.png,0", f"{bad},1"])
    (path.parent / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(BadInputError, match=r"row 1: path .*(absolute|outside the data root)"):
        _ingest(tmp_path, source="table", path=str(path), image_column="file")


def test_symlink_out_of_an_image_folder(tmp_path):
    root = _write_folder(tmp_path / "src", _images(n=3), _labels(n=3))
    (tmp_path / "secret.png").write_bytes(_png(_images(n=1)[0]))
    (root / "cat" / "link.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(BadInputError, match=r"outside the data root"):
        _ingest(tmp_path, source="imagefolder", path=str(root))


def test_a_source_with_no_samples(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(BadInputError, match=r"has no samples"):
        _ingest(tmp_path, source="imagefolder", path=str(tmp_path / "empty"))
    root = tmp_path / "allbad"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        (root / name / "a.png").write_bytes(b"x")
    with pytest.raises(BadInputError, match=r"has no usable sample \(2 skipped\)"):
        _ingest(tmp_path, source="imagefolder", path=str(root), on_bad="skip")


def test_a_failed_ingest_leaves_no_cache(tmp_path):
    root = _folder_with(tmp_path, "zz_bad.png", b"nope")
    with pytest.raises(BadInputError):
        _ingest(tmp_path, source="imagefolder", path=str(root))
    assert not [p for p in (tmp_path / "cache").iterdir() if (p / META_FILE).exists()]
    assert not list((tmp_path / "cache").glob(".*.tmp"))


def test_cached_inputs_pickle_without_pixels_and_views_gather_lazily(tmp_path):
    import pickle

    cache = _ingest(tmp_path, source="sklearn_digits")
    x = cache.inputs()
    view = take_rows(x, np.array([5, 1700, 3]))
    assert len(pickle.dumps(view)) < 2000
    again = pickle.loads(pickle.dumps(view))
    np.testing.assert_array_equal(again[:], x[np.array([5, 1700, 3])])
    assert view.shape == (3, 1, 8, 8) and view[1:2].dtype == np.float32


@pytest.mark.ray
def test_the_ray_data_ingest_writes_the_same_cache(tmp_path, ray_local):
    from engine.distributed.ingest import ray_map_chunks

    images, labels = _images(), _labels()
    root = _write_folder(tmp_path / "imgs", images, labels)
    local = _ingest(tmp_path, source="imagefolder", path=str(root))
    remote = ingest(SourceConfig(source="imagefolder", path=str(root)), tmp_path / "cache2",
                    block_size=BLOCK, map_chunks=ray_map_chunks, log=lambda line: None)  # fmt: skip
    assert remote.fingerprint == local.fingerprint and remote.keys() == local.keys()
    np.testing.assert_array_equal(remote.inputs().stored(), local.inputs().stored())
    assert DatasetCache(remote.path).num_samples == len(images)
