"""Multi-label tables through the real ingest: multi-hot cache, fingerprint, and bad label lists.

An empty list where labels are required, an unknown label, a non-list cell and a
repeated label are each a clear error naming the file and the row; a multi-label
cache refuses to hand out int class labels.
"""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from engine.data.cache import DatasetCache
from engine.data.errors import BadInputError
from engine.data.ingest import ingest
from engine.data.loading import cached_classification_data
from engine.spec.sources import SourceConfig

CLASSES = ["bag", "coat", "shirt"]
LISTS = [["bag"], ["coat", "shirt"], ["shirt"], ["bag", "coat"], ["coat"], ["bag", "shirt"]]


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (6, 6)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _parquet(tmp_path, labels, name="t.parquet"):
    path = tmp_path / name
    table = pa.table({"image": pa.array([_png(i) for i in range(len(labels))], pa.binary()),
                      "labels": pa.array(labels, pa.list_(pa.string()))})  # fmt: skip
    pq.write_table(table, path)
    return path


def _ingest(tmp_path, path, **options) -> DatasetCache:
    config = SourceConfig(source="table", path=str(path), image_column="image",
                          label_column="labels", label_lists=True, **options)  # fmt: skip
    return ingest(config, tmp_path / "cache", block_size=4, log=lambda s: None)


def test_parquet_label_lists_become_multi_hot_rows(tmp_path):
    cache = _ingest(tmp_path, _parquet(tmp_path, LISTS))
    assert cache.multilabel and cache.class_names == CLASSES
    expected = np.array([[c in row for c in CLASSES] for row in LISTS], np.uint8)
    keys = cache.keys()  # row keys sort as the rows
    assert keys == sorted(keys)
    np.testing.assert_array_equal(cache.label_sets(), expected)
    assert "label" not in cache.samples.column_names
    assert cache.meta["source"]["label_lists"] is True


def test_multilabel_cache_refuses_int_labels(tmp_path):
    cache = _ingest(tmp_path, _parquet(tmp_path, LISTS))
    with pytest.raises(ValueError, match=r"list of labels per sample.*task multilabel"):
        cache.labels()
    with pytest.raises(ValueError, match="list of labels per sample"):
        cached_classification_data(cache, heldout_fraction=0.5, split_seed=0)


def test_label_lists_change_the_fingerprint_not_single_label_ones(tmp_path):
    multi = _ingest(tmp_path, _parquet(tmp_path, LISTS))
    single = SourceConfig(source="table", path="x", image_column="image")
    assert "label_lists" not in single.to_dict()  # old caches keep their fingerprint
    assert multi.meta["labels"]["class_list_from"] == "the sorted label names"


def test_csv_lists_and_given_class_names(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(len(LISTS)):
        (folder / f"{i}.png").write_bytes(_png(i))
    path = tmp_path / "t.csv"
    rows = [f'imgs/{i}.png,"{json.dumps(row).replace(chr(34), chr(34) * 2)}"'
            for i, row in enumerate(LISTS)]  # fmt: skip
    path.write_text("image,labels\n" + "\n".join(rows) + "\n")
    cache = _ingest(tmp_path, path, class_names=("shirt", "coat", "bag"))
    assert cache.class_names == ["shirt", "coat", "bag"]
    np.testing.assert_array_equal(
        cache.label_sets(), [[c in row for c in ("shirt", "coat", "bag")] for row in LISTS]
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "row 2.*'labels'.*empty list of labels"),
        (["bag", "hat"], "row 2.*'labels'.*'hat'"),
        (["bag", "bag"], "row 2.*'labels'.*bag"),
    ],
)
def test_bad_label_list_names_the_row(tmp_path, bad, message):
    labels = [*LISTS[:2], bad, *LISTS[2:]]
    path = _parquet(tmp_path, labels)
    with pytest.raises(BadInputError, match=message) as err:
        _ingest(tmp_path, path, class_names=tuple(CLASSES))
    assert str(path) in str(err.value)


def test_empty_cell_and_non_list_cell_name_the_row(tmp_path):
    path = tmp_path / "t.jsonl"
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.png").write_bytes(_png(i))
    cells = [["bag"], ["coat", "shirt"], None, ["shirt"]]
    path.write_text("\n".join(json.dumps({"image": f"imgs/{i}.png", "labels": c})
                              for i, c in enumerate(cells)) + "\n")  # fmt: skip
    with pytest.raises(BadInputError, match=r"t\.jsonl row 2.*empty cell where a list"):
        _ingest(tmp_path, path)
    csv = tmp_path / "t.csv"  # a plain class name where a list is needed (no separator set)
    csv.write_text('image,labels\nimgs/0.png,"[""bag""]"\nimgs/1.png,"[""coat""]"\n'
                   "imgs/2.png,shirt\nimgs/3.png,\"[\"\"shirt\"\"]\"\n")  # fmt: skip
    with pytest.raises(BadInputError, match=r"t\.csv row 2.*'labels'.*shirt"):
        _ingest(tmp_path, csv)


def test_on_bad_skip_lists_the_row_and_keeps_the_rest(tmp_path):
    path = _parquet(tmp_path, [*LISTS, []])
    cache = _ingest(tmp_path, path, on_bad="skip")
    assert cache.num_samples == len(LISTS)
    assert any("row 6" in s["key"] for s in cache.meta["skipped"])
