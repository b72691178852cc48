"""shards.predict: ray_data writes the inline path's shards, exactly once, through a real pool."""

import json

import pytest
import torch

from engine.distributed.epoch_predictions import FAULT_MARKER_ENV
from engine.distributed.replicas import train_replica
from engine.shards.layout import replica_manifest_path
from engine.spec import SpecError, load_spec

OVERRIDES = ["replicas.count=1", "shards.grad_epochs=[]", "scores=[confusion, action]",
             "evaluate.models=[]"]  # fmt: skip  # tiny: 3 epochs, blocks of 512 (4 per epoch)


def _rows(run_dir) -> dict[int, dict]:
    rows = json.loads(replica_manifest_path(run_dir, 0).read_text())["rows"]
    return {r["epoch"]: r for r in rows}


def _shard_files(run_dir) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in (run_dir / "preds").rglob("*")
                  if p.is_file() and p.name != "_manifest.json")  # fmt: skip


def test_ray_data_prediction_writes_the_inline_shards_bit_for_bit(ray_local, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    quiet = lambda line: None  # noqa: E731
    inline = load_spec("tests/fixtures/tiny.yaml", OVERRIDES)
    pooled = load_spec("tests/fixtures/tiny.yaml", [*OVERRIDES, "shards.predict=ray_data"])
    train_replica(tmp_path / "inline", inline, 0, log=quiet)
    # the pool's actor predicting block 1 of the first epoch dies (os._exit) before
    # writing; Ray restarts it and retries the block
    marker = tmp_path / "killed"
    monkeypatch.setenv(FAULT_MARKER_ENV, str(marker))
    out = train_replica(tmp_path / "pooled", pooled, 0, log=quiet)
    assert marker.exists(), "the fault was not injected"
    assert out["written"] == 3
    a, b = _rows(tmp_path / "inline"), _rows(tmp_path / "pooled")
    assert sorted(a) == sorted(b) == [0, 1, 2]
    for epoch in range(3):
        # same bytes: every block's checksum, row count and format equal inline's
        assert b[epoch]["blocks"] == a[epoch]["blocks"]
        for key in ("train_loss", "train_accuracy", "heldout_accuracy"):
            assert b[epoch][key] == pytest.approx(a[epoch][key], rel=1e-6)
    # exactly one shard per (replica, epoch, block), no temp file of the killed writer
    assert _shard_files(tmp_path / "pooled") == _shard_files(tmp_path / "inline")
    assert len(_shard_files(tmp_path / "pooled")) == 3 * 4


def test_ray_data_prediction_is_refused_where_it_cannot_run():
    with pytest.raises(SpecError, match=r"shards\.predict: ray_data predicts without input"):
        load_spec("tests/fixtures/tiny.yaml", ["shards.predict=ray_data"])  # tiny has grad_epochs
    with pytest.raises(SpecError, match=r"shards\.predict: ray_data predicts one replica"):
        load_spec("tests/fixtures/tiny.yaml", [*OVERRIDES, "replicas.count=2",
                                               "replicas.pack_size=all", "shards.predict=ray_data"])  # fmt: skip
    with pytest.raises(SpecError, match=r"shards\.predict: must be one of inline, ray_data"):
        load_spec("tests/fixtures/tiny.yaml", [*OVERRIDES, "shards.predict=actors"])


def test_ray_data_prediction_under_ray_train_workers_holding_every_cpu(ray_local, tmp_path):
    """The real placement: 2 Ray Train workers reserve both CPUs; the pools still run."""
    from engine.distributed.replicas import train_replicas

    quiet = lambda line: None  # noqa: E731
    over = [*OVERRIDES, "replicas.count=2", "replicas.num_workers=2", "replicas.cpus_per_worker=1"]
    inline = load_spec("tests/fixtures/tiny.yaml", over)
    pooled = load_spec("tests/fixtures/tiny.yaml", [*over, "shards.predict=ray_data"])
    train_replicas(tmp_path / "inline", inline, log=quiet)
    train_replicas(tmp_path / "pooled", pooled, log=quiet)
    for replica in (0, 1):
        a = json.loads(replica_manifest_path(tmp_path / "inline", replica).read_text())["rows"]
        b = json.loads(replica_manifest_path(tmp_path / "pooled", replica).read_text())["rows"]
        assert {r["epoch"]: r["blocks"] for r in a} == {r["epoch"]: r["blocks"] for r in b}
