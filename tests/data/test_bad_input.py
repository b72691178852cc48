"""Bad input a user's own data holds, each a one-line error naming where, or skipped and listed.

Labels that are NaN, empty, blank, lists or bytes; whitespace around labels; one class;
an empty class; a class without held-out samples; a CSV that is not UTF-8; a ragged CSV
row; a JSON line that does not parse; symlink loops and symlinks out of the folder.
"""

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.data.cache import DatasetCache
from engine.data.errors import BadInputError
from engine.data.ingest import ingest
from engine.data.labels import LabelError, clean_label
from engine.data.loading import cached_classification_data
from engine.spec.sources import SourceConfig

_SEEDS = iter(range(10**6))  # every image drawn is a different one


def _png(value: int, size=(6, 5)) -> bytes:
    """A PNG of noise around ``value`` (no two alike: no duplicates unless a test makes one)."""
    noise = np.random.default_rng(next(_SEEDS)).integers(-5, 6, size)
    buf = io.BytesIO()
    Image.fromarray(np.clip(value + noise, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _ingest(tmp_path, **options) -> DatasetCache:
    return ingest(SourceConfig(**options), tmp_path / "cache", block_size=4, log=lambda s: None)


def _images(root, n=6):
    """``n`` distinct PNGs ``img0.png``.. in ``root``; returns their names."""
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        (root / f"img{i}.png").write_bytes(_png(10 + 20 * i))
        names.append(f"img{i}.png")
    return names


def _parquet(tmp_path, labels, n=None):
    names = _images(tmp_path / "t", len(labels) if n is None else n)
    path = tmp_path / "t" / "labels.parquet"
    pq.write_table(pa.table({"file": names, "label": labels}), path)
    return path


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty label"),
        (float("nan"), r"empty label \(NaN\)"),
        ("", "empty label"),
        ("   ", "blank label"),
        ([1.0], r"label \[1\.0\] is a list, not one class"),
        (b"cat", "label is bytes"),
        (2.5, "neither a class index nor a class name"),
        (-1, "negative"),
    ],
)
def test_clean_label_refuses_what_is_not_one_class(value, reason):
    with pytest.raises(LabelError, match=reason):
        clean_label(value)


def test_clean_label_strips_names_and_reads_integral_floats_as_indices():
    assert clean_label("  trouser ") == "trouser"
    assert clean_label(3.0) == 3 and clean_label(np.int64(2)) == 2
    assert clean_label(True) == "True"


def test_nan_label_in_a_parquet_table_names_the_row_or_is_skipped(tmp_path):
    path = _parquet(tmp_path, [0.0, 1.0, float("nan"), 1.0, 0.0, 1.0])
    with pytest.raises(
        BadInputError, match=r"labels\.parquet row 2: empty label \(NaN\) in column 'label'"
    ):
        _ingest(tmp_path, source="table", path=str(path), image_column="file")
    cache = _ingest(tmp_path, source="table", path=str(path), image_column="file", on_bad="skip")
    assert cache.num_samples == 5 and cache.class_names == ["0", "1"]  # 1.0 is class index 1
    assert cache.meta["skipped"] == [
        {"key": f"{path} row 2", "reason": "empty label (NaN) in column 'label'"}
    ]


def test_empty_and_list_labels_in_tables(tmp_path):
    csv = tmp_path / "t" / "labels.csv"
    _images(tmp_path / "t", 4)
    csv.write_text("file,label\nimg0.png,cat\nimg1.png,\nimg2.png,dog\nimg3.png,cat\n")
    with pytest.raises(BadInputError, match=r"labels\.csv row 1: empty label in column 'label'"):
        _ingest(tmp_path, source="table", path=str(csv), image_column="file")
    jsonl = tmp_path / "t" / "labels.jsonl"
    jsonl.write_text("\n".join(json.dumps({"file": f"img{i}.png", "label": [float(i % 2)]})
                               for i in range(4)) + "\n")  # fmt: skip
    with pytest.raises(
        BadInputError, match=r"row 0: label \[0\.0\] is a list, not one class.*multi-label"
    ):
        _ingest(tmp_path, source="table", path=str(jsonl), image_column="file")


def test_whitespace_around_labels_is_stripped_and_counted(tmp_path):
    path = _parquet(tmp_path, ["trouser", "trouser ", " dress", "dress", "trouser", "dress"])
    cache = _ingest(tmp_path, source="table", path=str(path), image_column="file")
    assert cache.class_names == ["dress", "trouser"]  # not four classes
    assert cache.labels().tolist() == [1, 1, 0, 0, 1, 0]
    assert cache.meta["labels"] == {"class_list_from": "the sorted label names", "stripped": 2}


def test_class_folders_with_surrounding_spaces_are_one_class(tmp_path):
    root = tmp_path / "imgs"
    _images(root / "cat", 2)
    (root / "cat ").mkdir()
    (root / "cat " / "x.png").write_bytes(_png(200))
    _images(root / "dog", 2)
    cache = _ingest(tmp_path, source="imagefolder", path=str(root))
    assert cache.class_names == ["cat", "dog"]
    assert np.bincount(cache.labels()).tolist() == [3, 2]
    assert cache.meta["labels"]["stripped"] == 1


def test_one_class_is_refused_before_anything_is_decoded(tmp_path):
    root = tmp_path / "imgs"
    _images(root / "cat", 4)
    with pytest.raises(
        BadInputError, match=r"imgs: has 1 class \(cat; from the class folders .*at least 2"
    ):
        _ingest(tmp_path, source="imagefolder", path=str(root))
    assert not list((tmp_path / "cache").glob("*/meta.json"))


def test_an_empty_class_folder_is_refused(tmp_path):
    root = tmp_path / "imgs"
    _images(root / "cat", 3)
    _images(root / "dog", 3)
    (root / "zebra").mkdir()
    with pytest.raises(
        BadInputError, match=r"class zebra \(from the class folders of .*\) has no sample"
    ):
        _ingest(tmp_path, source="imagefolder", path=str(root))


def test_a_class_given_in_class_names_without_samples_is_refused(tmp_path):
    path = _parquet(tmp_path, ["cat", "dog", "cat", "dog"])
    with pytest.raises(BadInputError, match=r"class bird \(from data\.class_names\) has no sample"):
        _ingest(tmp_path, source="table", path=str(path), image_column="file",
                class_names=("bird", "cat", "dog"))  # fmt: skip


def test_a_label_outside_the_class_list_says_where_the_list_came_from(tmp_path):
    path = _parquet(tmp_path, ["tshirt", "dress", "dress", "tshirt"])
    with pytest.raises(BadInputError, match=r"label 'tshirt' is not in the class list \(dress, t-shirt\), "
                       r"which comes from data\.class_names"):  # fmt: skip
        _ingest(tmp_path, source="table", path=str(path), image_column="file",
                class_names=("dress", "t-shirt"))  # fmt: skip


def test_a_class_whose_only_sample_trains_is_warned_and_reported(tmp_path):
    root = tmp_path / "imgs"
    _images(root / "cat", 10)
    _images(root / "dog", 10)
    (root / "rare").mkdir()
    (root / "rare" / "one.png").write_bytes(_png(250))
    cache = _ingest(tmp_path, source="imagefolder", path=str(root))
    lines: list[str] = []
    data = cached_classification_data(cache, heldout_fraction=0.3, split_seed=0, log=lines.append)
    rare = data.class_names.index("rare")
    assert (data.split[data.labels == rare] == "train").all()  # round(0.3 * 1) = 0 held out
    warning = "no held-out sample of rare: the benchmark's pool holds none of it"
    assert f"[data] warning: {warning}" in lines
    assert warning in data.dataset["report"]["warnings"]
    assert data.dataset["report"]["counts"]["heldout"]["per_class"][rare] == 0


def test_a_latin1_csv_names_line_and_byte_and_reads_with_data_encoding(tmp_path):
    _images(tmp_path / "t", 4)
    csv = tmp_path / "t" / "labels.csv"
    csv.write_bytes("file,label\nimg0.png,café\nimg1.png,thé\nimg2.png,café\nimg3.png,thé\n"
                    .encode("latin-1"))  # fmt: skip
    with pytest.raises(BadInputError, match=r"labels\.csv line 2, byte 13: byte 0xe9 is not UTF-8: "
                       r"set data\.encoding"):  # fmt: skip
        _ingest(tmp_path, source="table", path=str(csv), image_column="file")
    cache = _ingest(tmp_path, source="table", path=str(csv), image_column="file",
                    encoding="latin-1")  # fmt: skip
    assert cache.class_names == ["café", "thé"]


def test_a_ragged_csv_row_is_named_by_its_line_or_skipped(tmp_path):
    _images(tmp_path / "t", 4)
    csv = tmp_path / "t" / "labels.csv"
    csv.write_text("file,label\nimg0.png,cat\nimg1.png,dog\nimg2.png,cat,extra\nimg3.png,dog\n")
    with pytest.raises(BadInputError, match=r"labels\.csv line 4: 3 fields where the header has 2: "
                       r"'img2\.png,cat,extra'"):  # fmt: skip
        _ingest(tmp_path, source="table", path=str(csv), image_column="file")
    cache = _ingest(tmp_path, source="table", path=str(csv), image_column="file", on_bad="skip")
    assert cache.keys() == ["img0.png", "img1.png", "img3.png"]
    assert cache.meta["skipped"][0]["key"] == f"{csv} line 4"
    assert cache.labels().tolist() == [0, 1, 1]  # the rows after it keep their own labels


def test_a_jsonl_line_that_does_not_parse_is_named(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"text": "a", "label": 0}\n{"text": "b", "label": 1\n{"text": "c", "label": 0}\n'
    )
    with pytest.raises(BadInputError, match=r"t\.jsonl line 2: not valid JSON"):
        _ingest(tmp_path, source="table", path=str(path), text_column="text")


def test_a_symlink_loop_is_named_or_skipped(tmp_path):
    root = tmp_path / "imgs"
    _images(root / "cat", 3)
    _images(root / "dog", 3)
    (root / "cat" / "loop1").symlink_to("loop2")
    (root / "cat" / "loop2").symlink_to("loop1")
    with pytest.raises(BadInputError, match=r"cat/loop1: symlink loops"):
        _ingest(tmp_path, source="imagefolder", path=str(root))
    cache = _ingest(tmp_path, source="imagefolder", path=str(root), on_bad="skip")
    assert cache.num_samples == 6
    assert [s["key"] for s in cache.meta["skipped"]] == ["cat/loop1", "cat/loop2"]


def test_a_symlink_out_of_the_folder_is_skipped_under_on_bad_skip(tmp_path):
    root = tmp_path / "imgs"
    _images(root / "cat", 3)
    _images(root / "dog", 3)
    (tmp_path / "secret.png").write_bytes(_png(99))
    (root / "cat" / "link.png").symlink_to(tmp_path / "secret.png")
    (root / "horse").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _images(tmp_path / "elsewhere", 2)
    with pytest.raises(BadInputError, match=r"outside the data root"):
        _ingest(tmp_path, source="imagefolder", path=str(root))
    cache = _ingest(tmp_path, source="imagefolder", path=str(root), on_bad="skip")
    assert cache.class_names == ["cat", "dog"]  # the linked-in folder is no class
    assert sorted(s["key"] for s in cache.meta["skipped"]) == ["cat/link.png", "horse"]
    assert all("leads outside the data root" in s["reason"] for s in cache.meta["skipped"])


def test_webdataset_samples_without_a_label_or_with_a_bad_one_are_named_or_skipped(tmp_path):

    shard = tmp_path / "shard-0.tar"
    with tarfile.open(shard, "w") as tf:
        for key, label in (("a", b"0"), ("b", b"1"), ("c", None), ("d", b"\xe9"), ("e", b"1")):
            for suffix, payload in ((".png", _png(40)), (".cls", label)):
                if payload is None:
                    continue
                info = tarfile.TarInfo(key + suffix)
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
    with pytest.raises(BadInputError, match=r"shard-0\.tar member c: has no \.cls label member"):
        _ingest(tmp_path, source="webdataset", path=str(shard))
    cache = _ingest(tmp_path, source="webdataset", path=str(shard), on_bad="skip")
    assert cache.keys() == ["a", "b", "e"]
    assert [s["reason"] for s in cache.meta["skipped"]] == [
        "has no .cls label member", r"label b'\xe9' is not an integer"]  # fmt: skip


def test_colour_images_greyed_by_a_grey_first_image_are_warned(tmp_path):
    root = tmp_path / "imgs"
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        (root / name / "0.png").write_bytes(_png(50 + c))  # grey: the first image in key order
        for i in range(1, 4):
            rgb = np.random.default_rng(i + 10 * c).integers(0, 256, (6, 5, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(root / name / f"{i}.png")
    cache = _ingest(tmp_path, source="imagefolder", path=str(root))
    assert cache.meta["shape"][0] == 1
    data = cached_classification_data(cache, heldout_fraction=0.5, split_seed=0, log=lambda s: None)
    assert ("6 colour images were converted to grey because the first image is grey (data.channels "
            "unset takes the first image's): set data.channels: 3 to keep colour"
            in data.dataset["report"]["warnings"])  # fmt: skip
    kept = _ingest(tmp_path, source="imagefolder", path=str(root), channels=1)
    report = cached_classification_data(kept, heldout_fraction=0.5, split_seed=0,
                                        log=lambda s: None).dataset["report"]  # fmt: skip
    assert not any("converted to grey" in w for w in report["warnings"])  # asked for: no warning
