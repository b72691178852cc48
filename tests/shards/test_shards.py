import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.distributed.scoring import score_block
from engine.scores import action, confusion
from engine.shards import (
    BlockReader,
    ShardManifestError,
    block_path,
    consolidate_manifest,
    num_blocks,
    read_manifest,
    record_epoch,
    write_epoch_shards,
)
from engine.shards.schema import METADATA_KEY


def _probs(rng, n, k):
    x = rng.normal(size=(n, k))
    p = np.exp(x - x.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _write_run(run_dir, r, e, n, k, block_size, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    probs = np.stack([np.stack([_probs(rng, n, k) for _ in range(e)]) for _ in range(r)])
    losses = rng.exponential(size=(r, e, n)).astype(np.float32)
    labels = rng.integers(0, k, size=n)
    for ri in range(r):
        for ei in range(e):
            blocks = write_epoch_shards(
                run_dir,
                replica=ri,
                epoch=ei,
                probs=probs[ri, ei],
                loss=losses[ri, ei],
                labels=labels,
                block_size=block_size,
                probs_dtype=dtype,
                metadata={"seed": ri},
            )
            record_epoch(run_dir, replica=ri, epoch=ei, blocks=blocks, seed=ri)
    return probs, losses, labels


def test_layout_schema_and_manifest(tmp_path):
    _write_run(tmp_path, r=2, e=3, n=10, k=4, block_size=4)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert len(files) == 2 * 3 * num_blocks(10, 4) == 18
    assert "preds/replica=1/epoch=2/block=2.parquet" in files
    table = pq.read_table(block_path(tmp_path, 1, 2, 2))
    assert table.column_names == ["sample_id", "probs", "loss", "label"]
    assert table.column("sample_id").to_pylist() == [8, 9]
    probs_type = table.schema.field("probs").type
    assert pa.types.is_fixed_size_list(probs_type) and probs_type.list_size == 4
    assert probs_type.value_type == pa.float32()
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    assert meta["replica"] == 1 and meta["epoch"] == 2
    assert not list(tmp_path.rglob("*.tmp-*"))  # atomic writes leave no temp files
    manifest = consolidate_manifest(tmp_path, replicas=2, epochs=3, blocks=3)
    assert manifest["complete"] and len(manifest["rows"]) == 6
    assert (tmp_path / "preds" / "_manifest.json").exists()


def test_missing_pair_needs_allow_partial(tmp_path):
    _write_run(tmp_path, r=2, e=2, n=6, k=3, block_size=6)
    (tmp_path / "preds" / "replica=1" / "_manifest.json").unlink()
    with pytest.raises(ShardManifestError, match="first missing: replica=1 epoch=0"):
        consolidate_manifest(tmp_path, replicas=2, epochs=2, blocks=1)
    manifest = consolidate_manifest(tmp_path, replicas=2, epochs=2, blocks=1, allow_partial=True)
    assert manifest["replicas"] == [0] and manifest["epochs"] == [0, 1] and not manifest["complete"]


def test_record_epoch_is_idempotent(tmp_path):
    record_epoch(tmp_path, replica=0, epoch=0, blocks=[{"block": 0}])
    record_epoch(tmp_path, replica=0, epoch=0, blocks=[{"block": 0}])
    assert list(read_manifest(tmp_path)) == [(0, 0)]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_score_block_equals_in_memory_scores(tmp_path, dtype):
    probs, losses, labels = _write_run(tmp_path, r=3, e=4, n=11, k=5, block_size=4, dtype=dtype)
    parts = [
        score_block(
            tmp_path, b, replicas=[0, 1, 2], epochs=[0, 1, 2, 3], scores=["confusion", "action"]
        )
        for b in range(3)
    ]
    conf = np.concatenate([p.column("confusion").to_numpy() for p in parts])
    act = np.concatenate([p.column("action").to_numpy() for p in parts])
    stored = probs.astype(dtype).astype(np.float64)
    stored /= stored.sum(-1, keepdims=True)
    np.testing.assert_allclose(conf, confusion(stored), atol=2e-3 if dtype == "float16" else 1e-6)
    np.testing.assert_allclose(act, action(losses), rtol=1e-6)
    ens = np.concatenate([p.column("ensemble_pred").to_numpy() for p in parts])
    np.testing.assert_array_equal(ens, probs[:, -1].mean(0).argmax(1))
    np.testing.assert_array_equal(
        np.concatenate([p.column("label").to_numpy() for p in parts]), labels
    )


def test_sample_id_mismatch_names_shard_and_sample(tmp_path):
    _write_run(tmp_path, r=2, e=1, n=4, k=2, block_size=4)
    path = block_path(tmp_path, 1, 0, 0)
    table = pq.read_table(path)
    ids = table.column("sample_id").to_numpy().copy()
    ids[2] = 99
    pq.write_table(table.set_column(0, table.schema.field("sample_id"), pa.array(ids)), path)
    with pytest.raises(
        ShardManifestError, match=r"replica=1/epoch=0/block=0.parquet row 2 holds sample_id 99"
    ):
        list(BlockReader(tmp_path, 0, [0, 1], [0]))


def test_missing_shard_and_bad_probabilities_are_named(tmp_path):
    _, _, labels = _write_run(tmp_path, r=2, e=1, n=4, k=2, block_size=4)
    write_epoch_shards(
        tmp_path,
        replica=1,
        epoch=0,
        probs=np.full((4, 2), 0.7),
        loss=np.ones(4),
        labels=labels,
        block_size=4,
    )
    with pytest.raises(ValueError, match=r"block=0 epoch=0 .*sum to 1"):
        score_block(tmp_path, 0, replicas=[0, 1], epochs=[0], scores=["confusion"])
    block_path(tmp_path, 1, 0, 0).unlink()
    with pytest.raises(
        ShardManifestError, match=r"missing shard .*replica=1/epoch=0/block=0.parquet"
    ):
        score_block(tmp_path, 0, replicas=[0, 1], epochs=[0], scores=["confusion"])


def test_unlabeled_shards_cannot_give_action(tmp_path):
    rng = np.random.default_rng(0)
    blocks = write_epoch_shards(
        tmp_path, replica=0, epoch=0, probs=_probs(rng, 3, 2), loss=None, labels=None, block_size=3
    )
    assert blocks[0]["rows"] == 3
    table = score_block(tmp_path, 0, replicas=[0], epochs=[0], scores=["confusion"])
    assert table.column("label").null_count == 3
    with pytest.raises(ShardManifestError, match="needs labels"):
        score_block(tmp_path, 0, replicas=[0], epochs=[0], scores=["action"])
