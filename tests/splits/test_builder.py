"""The split builder on a crafted scores table: membership, bins, exports, label-free mode."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data import ClassificationData
from engine.spec import BinsSpec, HardSpec, SplitsSpec
from engine.splits.builder import build_splits
from engine.splits.samples import classification_samples


@pytest.fixture
def crafted():
    n = 20
    rng = np.random.default_rng(0)
    data = ClassificationData(
        name="crafted",
        inputs=rng.random((n, 1, 4, 4)).astype(np.float32),
        labels=np.arange(n) % 2,
        split=np.array(["heldout"] * 16 + ["train"] * 4),
        class_names=["even", "odd"],
    )
    confusion = np.linspace(0.0, 1.9, n)[::-1].copy()  # sample 0 is the most confusing
    scores = pa.table(
        {
            "sample_id": pa.array(np.arange(n)),
            "split": pa.array(data.split),
            "label": pa.array(data.labels),
            "confusion": pa.array(confusion),
        }
    )
    return data, scores


def test_top_fraction_bins_and_files(tmp_path, crafted):
    data, scores = crafted
    built = build_splits(
        tmp_path,
        SplitsSpec(hard=HardSpec(top_fraction=0.25), bins=BinsSpec(count=4)),
        classification_samples(data),
        scores,
    )
    assert list(built.sample_ids[built.is_hard]) == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.bincount(built.bins), [4, 4, 4, 4])
    hard = pq.read_table(built.files["hard"])
    assert hard.column("sample_id").to_pylist() == [0, 1, 2, 3]
    assert hard.schema.metadata[b"input_shape"] == b"1,4,4"
    np.testing.assert_allclose(
        np.asarray(hard.column("input").to_pylist()[0], dtype=np.float32),
        data.inputs[0].reshape(-1),
    )
    assert pq.read_table(built.files["bin_3"]).column("sample_id").to_pylist() == [0, 1, 2, 3]


def test_threshold_edges_and_empty_selection(tmp_path, crafted):
    data, scores = crafted
    spec = SplitsSpec(hard=HardSpec(min_score=1.5), bins=BinsSpec(edges=[0.5, 1.5]))
    built = build_splits(tmp_path, spec, classification_samples(data), scores)
    score = built.score
    np.testing.assert_array_equal(built.is_hard, score >= 1.5)
    np.testing.assert_array_equal(built.bins, (score >= 0.5).astype(int) + (score >= 1.5))
    with pytest.raises(ValueError, match=r"min_score=5.0 selects no sample; confusion ranges over"):
        build_splits(
            tmp_path, SplitsSpec(hard=HardSpec(min_score=5.0)), classification_samples(data), scores
        )


def test_exports_imagefolder_and_hf(tmp_path, crafted):
    from datasets import load_from_disk

    data, scores = crafted
    spec = SplitsSpec(
        hard=HardSpec(top_fraction=0.25),
        bins=BinsSpec(count=2),
        exports=["parquet", "imagefolder", "hf"],
    )
    built = build_splits(tmp_path, spec, classification_samples(data), scores)
    pngs = sorted(
        p.relative_to(built.files["imagefolder"]).as_posix()
        for p in built.files["imagefolder"].rglob("*.png")
    )
    assert [p for p in pngs if p.startswith("hard/")] == [
        "hard/even/0.png",
        "hard/even/2.png",
        "hard/odd/1.png",
        "hard/odd/3.png",
    ]
    from PIL import Image

    img = np.asarray(Image.open(built.files["imagefolder"] / "hard" / "even" / "0.png"))
    np.testing.assert_array_equal(img, np.round(data.inputs[0, 0] * 255).astype(np.uint8))
    ds = load_from_disk(str(built.files["hf"]))
    assert set(ds) == {"pool", "hard", "rest", "bin_0", "bin_1"}
    assert ds["hard"]["sample_id"] == [0, 1, 2, 3] and ds["hard"].num_rows == 4


def test_label_free_mode_writes_no_labels(tmp_path, crafted):
    data, scores = crafted
    built = build_splits(
        tmp_path, SplitsSpec(label_free=True), classification_samples(data), scores
    )
    assert "label" not in pq.read_schema(built.files["hard"]).names


def test_per_class_hard_split(tmp_path, crafted):
    data, scores = crafted
    spec = SplitsSpec(hard=HardSpec(top_fraction=0.1, per_class=True, min_per_class=3))
    built = build_splits(tmp_path, spec, classification_samples(data), scores)
    hard_labels = built.labels[built.is_hard]
    assert np.bincount(hard_labels).tolist() == [3, 3]
    assert json.dumps(sorted(built.sample_ids[built.is_hard].tolist())) == "[0, 1, 2, 3, 4, 5]"


def test_cached_data_splits_refer_to_the_cache_and_exports_materialise(tmp_path):
    """Split files of cached data hold ids and scores, not pixels; exports read the cache."""
    import shutil

    from datasets import load_from_disk
    from PIL import Image

    from engine.data.ingest import ingest
    from engine.data.loading import cached_classification_data
    from engine.spec.sources import SourceConfig
    from engine.splits.inputs import row_inputs

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(12, 6, 5), dtype=np.uint8)
    for i, img in enumerate(pixels):
        path = tmp_path / "src" / ("even" if i % 2 == 0 else "odd") / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
    cache = ingest(SourceConfig(source="imagefolder", path=str(tmp_path / "src")),
                   tmp_path / "cache", block_size=4, log=lambda line: None)  # fmt: skip
    data = cached_classification_data(cache, heldout_fraction=0.5, split_seed=0)
    n = len(data.labels)
    scores = pa.table({"sample_id": pa.array(np.arange(n)), "split": pa.array(data.split),
                       "label": pa.array(data.labels),
                       "confusion": pa.array(np.linspace(1, 0, n))})  # fmt: skip
    spec = SplitsSpec(hard=HardSpec(top_fraction=0.34), bins=BinsSpec(count=2),
                      exports=["parquet", "imagefolder", "hf"])  # fmt: skip
    built = build_splits(tmp_path / "run", spec, classification_samples(data), scores)
    pool = pq.read_table(built.files["pool"])
    assert "input" not in pool.column_names
    assert pool.column("key").to_pylist() == [data.keys[i] for i in built.sample_ids]
    by_key = {f"{'even' if i % 2 == 0 else 'odd'}/{i:02d}.png": i for i in range(len(pixels))}
    got = row_inputs(pool, (1, 6, 5))
    for row, key in enumerate(pool.column("key").to_pylist()):
        np.testing.assert_array_equal(got[row][0], pixels[by_key[key]] / np.float32(255))
    hard_pngs = sorted((built.files["imagefolder"] / "hard").rglob("*.png"))
    assert len(hard_pngs) == int(built.is_hard.sum())
    for png in hard_pngs:
        sid = int(png.stem)
        np.testing.assert_array_equal(np.asarray(Image.open(png)), pixels[by_key[data.keys[sid]]])
    hf = load_from_disk(str(built.files["hf"]))
    first = hf["pool"][0]
    np.testing.assert_array_equal(np.asarray(first["image"]), pixels[by_key[first["key"]]])
    shutil.rmtree(cache.path)
    with pytest.raises(
        FileNotFoundError, match=r"dataset cache .* is gone: run `hardbench ingest`"
    ):
        row_inputs(pq.read_table(built.files["hard"]), (1, 6, 5))
