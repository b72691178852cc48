"""Exact and near duplicates, within and across the training and held-out splits, and the leak they make.

A table of textured 64x64 pictures with planted copies: a byte-identical file and the
same pixels saved as another lossless format (exact), the picture resized to 48x48 and
re-encoded as JPEG (near). Every planted pair is found, no two different pictures are
called duplicates, and a held-out copy of a training picture is reported as a leak and
left out of the hard split (unless ``splits.keep_leaked``).
"""

import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from engine.data.duplicates import (
    NEAR_HAMMING,
    NO_GROUP,
    hash_candidates,
    perceptual_hashes,
    thumbnails,
)
from engine.data.ingest import ingest
from engine.data.loading import cached_classification_data
from engine.spec import HardSpec, SplitsSpec
from engine.spec.sources import SourceConfig
from engine.splits.builder import build_splits
from engine.splits.samples import classification_samples

N_PICTURES = 40  # distinct pictures, half per class


def _picture(seed: int) -> np.ndarray:
    """A photo-like 64x64 RGB picture: a smooth random field plus fine texture."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((64, 64), Image.Resampling.BICUBIC), dtype=np.float32)
    texture = rng.normal(0, 18, (64, 64, 1))
    return np.clip(smooth + texture, 0, 255).astype(np.uint8)


def _save(arr: np.ndarray, path, fmt: str, **options) -> None:
    Image.fromarray(arr).save(path, format=fmt, **options)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The table, its cache and the split; ``copies`` maps each planted copy to its original."""
    root = tmp_path_factory.mktemp("dups")
    rows, copies = [], {}
    for i in range(N_PICTURES):
        _save(_picture(i), root / f"p{i:02d}.png", "PNG")
        rows.append((f"p{i:02d}.png", ["cat", "dog"][i % 2], "train" if i < 30 else "heldout"))

    def plant(name: str, of: int, split: str, kind: str, label: str | None = None) -> None:
        src = _picture(of)
        if kind == "same bytes":
            (root / name).write_bytes((root / f"p{of:02d}.png").read_bytes())
        elif kind == "lossless":
            _save(src, root / name, "BMP")
        else:  # resized and re-encoded
            buf = io.BytesIO()
            Image.fromarray(src).resize((48, 48), Image.Resampling.BICUBIC).save(
                buf, format="JPEG", quality=90
            )
            (root / name).write_bytes(buf.getvalue())
        rows.append((name, label or ["cat", "dog"][of % 2], split))
        copies[name] = f"p{of:02d}.png"

    plant("c_exact_leak.png", 3, "heldout", "same bytes")  # held-out copy of a training picture
    plant("c_exact_train.bmp", 5, "train", "lossless")  # a training copy of a training picture
    plant("c_near_leak.jpg", 7, "heldout", "near")  # resized + JPEG, held out: a leak
    plant("c_near_heldout.jpg", 33, "heldout", "near")  # of a held-out picture: no leak
    plant("c_conflict.jpg", 11, "heldout", "near", label="cat")  # picture 11 is a dog
    table = root / "pictures.csv"
    table.write_text("file,label,split\n" + "".join(f"{f},{y},{s}\n" for f, y, s in rows))
    cache = ingest(
        SourceConfig(source="table", path=str(table), image_column="file",
                     split_column="split", image_size=(32, 32), channels=3),
        root / "cache", block_size=16, log=lambda s: None,
    )  # fmt: skip
    data = cached_classification_data(cache, heldout_fraction=0.5, split_seed=0, log=lambda s: None)
    return cache, data, copies


def _groups_by_key(cache, column):
    keys = cache.keys()
    groups = cache.samples.column(column).to_numpy()
    out: dict[int, set[str]] = {}
    for key, g in zip(keys, groups, strict=True):
        if g != NO_GROUP:
            out.setdefault(int(g), set()).add(key)
    return sorted(sorted(s) for s in out.values())


def test_every_planted_copy_is_found_and_nothing_else(planted):
    cache, _, copies = planted
    exact = _groups_by_key(cache, "exact_group")
    assert exact == [["c_exact_leak.png", "p03.png"], ["c_exact_train.bmp", "p05.png"]]
    near = _groups_by_key(cache, "near_group")
    assert near == sorted(sorted([copy, original]) for copy, original in copies.items())
    meta = cache.meta["duplicates"]
    assert meta["exact_samples"] == 4 and meta["near_pairs"] == 3  # near pairs: not exact


def test_the_report_counts_within_and_across_the_split_and_the_leaks(planted):
    cache, data, _ = planted
    dup = data.dataset["report"]["duplicates"]
    assert dup["exact"] == {"within_train": 2, "within_heldout": 0, "heldout_with_train_copy": 1,
                            "label_conflicts": 0}  # fmt: skip
    assert dup["near"]["within_heldout"] == 2  # picture 33 and its JPEG copy
    assert dup["near"]["heldout_with_train_copy"] == 3  # the exact leak, and two JPEG copies
    assert dup["near"]["label_conflicts"] == 1  # c_conflict.jpg says cat, picture 11 is a dog
    assert dup["leaked"] == 3
    keys = cache.keys()
    leaks = {keys[i]: keys[p] for i, p in enumerate(data.leak_partner) if p >= 0}
    assert leaks == {"c_exact_leak.png": "p03.png", "c_near_leak.jpg": "p07.png",
                     "c_conflict.jpg": "p11.png"}  # fmt: skip
    assert any("3 held-out samples duplicate a training sample (1 exact" in w
               for w in data.dataset["report"]["warnings"])  # fmt: skip


def test_leaked_samples_are_left_out_of_the_hard_split_unless_kept(planted, tmp_path):
    _, data, _ = planted
    ids = np.arange(len(data.labels))
    leaked = data.leak_partner >= 0
    score = np.where(leaked, 5.0, np.linspace(0, 1, len(ids)))  # the leaks look hardest
    scores = pa.table({"sample_id": ids, "split": data.split, "label": data.labels,
                       "confusion": score})  # fmt: skip
    spec = SplitsSpec(hard=HardSpec(hardest_fraction=0.3))
    built = build_splits(tmp_path / "a", spec, classification_samples(data), scores)
    assert built.leaked.sum() == 3 and not (built.is_hard & built.leaked).any()
    assert built.is_hard.sum() == round(0.3 * (~built.leaked).sum())
    kept = build_splits(tmp_path / "b", SplitsSpec(hard=HardSpec(hardest_fraction=0.3),
                                                   keep_leaked=True),
                        classification_samples(data), scores)  # fmt: skip
    assert (kept.is_hard & kept.leaked).sum() == 3
    import pyarrow.parquet as pq

    pool = pq.read_table(built.files["pool"])
    assert pool.column("leaked").to_pylist() == built.leaked.tolist()
    assert (pool.column("duplicate_of").to_numpy() >= 0).sum() == 3


def test_multi_index_hashing_finds_every_pair_within_the_distance():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 3000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    flips = list(range(NEAR_HAMMING + 2))
    for k, bits in enumerate(flips):  # plant pairs 0..NEAR_HAMMING bits apart, and one more
        mask = np.uint64(sum(1 << int(b) for b in rng.choice(64, bits, replace=False)))
        hashes[100 + k] = hashes[k] ^ mask
    pairs = {tuple(p) for p in hash_candidates(hashes).tolist()}
    for k, bits in enumerate(flips):
        assert ((k, 100 + k) in pairs) == (bits <= NEAR_HAMMING)
    brute = {(i, j) for i in range(200) for j in range(i + 1, 200)
             if bin(int(hashes[i] ^ hashes[j])).count("1") <= NEAR_HAMMING}  # fmt: skip
    assert brute <= pairs


def test_the_hash_is_stable_under_a_jpeg_round_trip():
    img = _picture(1)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=85)
    again = np.asarray(Image.open(buf))
    a, b = perceptual_hashes(thumbnails(np.stack([img, again]).transpose(0, 3, 1, 2)))
    assert bin(int(a ^ b)).count("1") <= NEAR_HAMMING
