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
from engine.shards.checksums import digest, entry_checksum
from engine.shards.schema import METADATA_KEY
from tests.shards.synthetic import write_full_run


def _probs(rng, n, k):
    x = rng.normal(size=(n, k))
    p = np.exp(x - x.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _write_run(run_dir, r, e, n, k, block_size, seed=0, dtype="float32", fmt="parquet"):
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
                fmt=fmt,
            )
            record_epoch(run_dir, replica=ri, epoch=ei, blocks=blocks, seed=ri)
    return probs, losses, labels


def _rerecord(run_dir, *, replica, epoch):
    """Record a pair's blocks with the checksums of the files now on disk."""
    row = read_manifest(run_dir)[(replica, epoch)]
    blocks = []
    for b in row["blocks"]:
        path = block_path(run_dir, replica, epoch, b["block"])
        algorithm, _ = entry_checksum(b, path)
        blocks.append({**b, algorithm: digest(path.read_bytes(), algorithm)})
    record_epoch(run_dir, replica=replica, epoch=epoch, blocks=blocks)


def test_layout_schema_and_manifest(tmp_path):
    _write_run(tmp_path, r=2, e=3, n=10, k=4, block_size=4)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert len(files) == 2 * 3 * num_blocks(10, 4) == 18
    assert "preds/replica=1/epoch=2/block=2.parquet" in files
    table = pq.read_table(block_path(tmp_path, 1, 2, 2))
    assert table.column_names == ["sample_id", "probs", "loss", "label", "margin"]
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
    _rerecord(tmp_path, replica=1, epoch=0)  # as if a buggy writer had produced it
    with pytest.raises(
        ShardManifestError, match=r"replica=1/epoch=0/block=0.parquet row 2 holds sample_id 99"
    ):
        list(BlockReader(tmp_path, 0, [0, 1], [0]))


def test_missing_shard_and_bad_probabilities_are_named(tmp_path):
    _, _, labels = _write_run(tmp_path, r=2, e=1, n=4, k=2, block_size=4)
    blocks = write_epoch_shards(
        tmp_path,
        replica=1,
        epoch=0,
        probs=np.full((4, 2), 0.7),
        loss=np.ones(4),
        labels=labels,
        block_size=4,
    )
    record_epoch(tmp_path, replica=1, epoch=0, blocks=blocks)
    with pytest.raises(
        ValueError,
        match=r"replica=1/epoch=0/block=0.parquet: sample_id 0 \(row 0\): probabilities sum to 1.4",
    ):
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
    record_epoch(tmp_path, replica=0, epoch=0, blocks=blocks)
    table = score_block(tmp_path, 0, replicas=[0], epochs=[0], scores=["confusion"])
    assert table.column("label").null_count == 3
    with pytest.raises(ShardManifestError, match="needs labels, loss"):
        score_block(tmp_path, 0, replicas=[0], epochs=[0], scores=["action"])


ALL_BUT_VOG = [
    "confusion", "action", "aum", "forgetting", "el2n", "confidence", "variability",
    "correctness", "self_confidence", "normalized_margin", "ensemble_max_prob", "ensemble_margin",
]  # fmt: skip


def _score_all(run_dir, names, r, e, blocks):
    parts = [
        score_block(run_dir, b, replicas=list(range(r)), epochs=list(range(e)), scores=names)
        for b in range(blocks)
    ]
    return pa.concat_tables(parts)


def _reference(arrays):
    from engine.scores import (
        aum,
        data_map,
        el2n,
        ensemble_margin,
        ensemble_max_prob,
        forgetting_events,
        normalized_margin,
        self_confidence,
        vog,
    )  # fmt: skip

    p, y = arrays["probs"].astype(np.float32).astype(np.float64), arrays["labels"]
    p /= p.sum(-1, keepdims=True)
    final = p[:, -1].mean(0)
    dm = data_map(y, p)
    return {
        "confusion": confusion(p), "action": action(arrays["losses"]), "aum": aum(y, arrays["logits"]),
        "forgetting": forgetting_events(y, p), "el2n": el2n(y, p), **dm,
        "self_confidence": self_confidence(y, final), "normalized_margin": normalized_margin(y, final),
        "ensemble_max_prob": ensemble_max_prob(p), "ensemble_margin": ensemble_margin(p),
        "vog": vog(arrays["grads"]),
    }  # fmt: skip


def test_pool_path_equals_in_memory_function_for_every_score(tmp_path):
    arrays = write_full_run(tmp_path)
    table = _score_all(tmp_path, [*ALL_BUT_VOG, "vog"], 3, 4, 3)
    ref = _reference(arrays)
    for name, expected in ref.items():
        np.testing.assert_allclose(
            table.column(name).to_numpy(), expected, atol=2e-6, rtol=1e-5, err_msg=name
        )


def test_packed_form_gives_the_same_scores(tmp_path):
    from engine.scores import replica_scalars
    from engine.shards import record_packed_epoch, write_packed_epoch_shards

    full_dir, packed_dir = tmp_path / "full", tmp_path / "packed"
    arrays = write_full_run(full_dir, grad_epochs=())
    p, y = arrays["probs"], arrays["labels"]
    from engine.scores import margins_from_logits

    for e in range(p.shape[1]):
        s = replica_scalars(y, p[:, [e]])
        scalars = {k: v[:, 0] for k, v in s.items()}
        scalars["loss"] = arrays["losses"][:, e]
        scalars["margin"] = margins_from_logits(y, arrays["logits"][:, e])
        blocks = write_packed_epoch_shards(
            packed_dir, epoch=e, mean_probs=p[:, e].mean(0), scalars=scalars, labels=y, block_size=5
        )
        record_packed_epoch(packed_dir, replicas=[0, 1, 2], epoch=e, blocks=blocks)
    manifest = consolidate_manifest(packed_dir, replicas=3, epochs=4, blocks=3)
    assert manifest["complete"] and len(manifest["rows"]) == 4
    a = _score_all(full_dir, ALL_BUT_VOG, 3, 4, 3)
    b = _score_all(packed_dir, ALL_BUT_VOG, 3, 4, 3)
    for name in ALL_BUT_VOG:
        np.testing.assert_allclose(
            b.column(name).to_numpy(), a.column(name).to_numpy(), atol=1e-5, err_msg=name
        )
    full_bytes = sum(f.stat().st_size for f in (full_dir / "preds").rglob("*.parquet"))
    packed_bytes = sum(f.stat().st_size for f in (packed_dir / "preds").rglob("*.parquet"))
    assert packed_bytes < full_bytes


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("probs", np.nan, r"sample_id 2 \(row 2\): probabilities hold NaN or inf"),
        ("probs", -0.5, r"sample_id 2 \(row 2\): probabilities hold a negative value"),
        ("label", 9, r"sample_id 2 \(row 2\): label out of range \[0, 4\)"),
        ("loss", np.inf, r"sample_id 2 \(row 2\): loss holds NaN or inf"),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_bad_values_name_shard_and_first_sample(tmp_path, column, value, match, dtype):
    from engine.shards import ShardValueError

    arrays = write_full_run(tmp_path, grad_epochs=())
    probs = arrays["probs"][1, 2].copy()
    labels = arrays["labels"].copy()
    loss = arrays["losses"][1, 2].copy()
    if column == "probs":
        probs[2, 0] = value
    elif column == "label":
        labels[2] = value
    else:
        loss[2] = value
    blocks = write_epoch_shards(
        tmp_path, replica=1, epoch=2, probs=probs, loss=loss, labels=labels, block_size=5,
        probs_dtype=dtype,
    )  # fmt: skip
    record_epoch(tmp_path, replica=1, epoch=2, blocks=blocks)  # a model that produced them
    with pytest.raises(ShardValueError, match="replica=1/epoch=2/block=0.parquet: " + match):
        score_block(tmp_path, 0, replicas=[0, 1, 2], epochs=[0, 1, 2, 3], scores=["confusion"])


def test_scores_without_their_inputs_are_refused(tmp_path):
    _write_run(tmp_path, r=2, e=2, n=4, k=2, block_size=4)  # no margin column
    with pytest.raises(ShardManifestError, match="score 'aum' needs margin"):
        score_block(tmp_path, 0, replicas=[0, 1], epochs=[0, 1], scores=["aum"])
    with pytest.raises(
        ShardManifestError, match="score 'vog' on block 0: VoG needs at least 2 checkpoints"
    ):
        score_block(tmp_path, 0, replicas=[0, 1], epochs=[0, 1], scores=["vog"])


def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_corrupt_truncated_and_foreign_shards_are_never_scored(tmp_path):
    from engine.shards.integrity import ShardIntegrityError, quarantine_shards, verify_shards

    _write_run(tmp_path, r=2, e=2, n=9, k=3, block_size=4)
    consolidate_manifest(tmp_path, replicas=2, epochs=2, blocks=3)
    assert verify_shards(tmp_path) == (12, [])
    flipped, truncated, foreign = (
        block_path(tmp_path, 0, 1, 1),
        block_path(tmp_path, 1, 0, 2),
        block_path(tmp_path, 1, 1, 0),
    )
    _flip_byte(flipped, len(flipped.read_bytes()) // 2)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    # A valid Parquet file with the right rows but other values (rewritten by something else).
    table = pq.read_table(foreign)
    pq.write_table(table.set_column(2, "loss", pa.array(np.zeros(4, np.float32))), foreign)

    kwargs = {"replicas": [0, 1], "epochs": [0, 1], "scores": ["confusion", "action"]}
    for block, path in ((1, flipped), (2, truncated), (0, foreign)):
        with pytest.raises(
            ShardIntegrityError, match=rf"shard .*{path.name}.* is corrupt: xxh3_128"
        ):
            score_block(tmp_path, block, **kwargs)

    checked, problems = verify_shards(tmp_path)
    assert checked == 12
    assert [(p.replicas, p.epoch, p.block) for p in problems] == [
        ((0,), 1, 1),
        ((1,), 0, 2),
        ((1,), 1, 0),
    ]
    assert "unreadable Parquet" in problems[1].reason
    assert "xxh3_128" in problems[2].reason
    dest = quarantine_shards(tmp_path, problems)
    assert not flipped.exists() and (dest / "replica=0/epoch=1/block=1.parquet").exists()
    assert json.loads((dest / "problems.json").read_text())[0]["block"] == 1
    # The affected (replica, epoch) rows are gone, so a resume redoes exactly those pairs.
    assert sorted(read_manifest(tmp_path)) == [(0, 0)]
    assert verify_shards(tmp_path) == (3, [])


def test_schema_and_row_count_are_checked_against_the_manifest(tmp_path):
    from engine.shards.integrity import ShardIntegrityError, check_schema, read_verified_table

    _write_run(tmp_path, r=1, e=1, n=5, k=3, block_size=5)
    path = block_path(tmp_path, 0, 0, 0)
    entry = read_manifest(tmp_path)[(0, 0)]["blocks"][0]
    assert read_verified_table(path, entry).num_rows == 5
    with pytest.raises(ShardIntegrityError, match="has 5 rows, the manifest lists 4"):
        read_verified_table(path, {**entry, "rows": 4})
    with pytest.raises(ShardManifestError, match="not listed in the run's manifest"):
        read_verified_table(path, None)
    renamed = pq.read_table(path).rename_columns(["sample_id", "probs", "nll", "label", "margin"])
    with pytest.raises(ShardIntegrityError, match=r"has schema \(.*nll: float.*\), not the shard"):
        check_schema(path, renamed.schema)


def _binary_entropy(t):
    t = np.clip(t, 1e-300, 1.0)
    return -(t * np.log(t)) - np.where(t < 1, (1 - t) * np.log1p(-np.minimum(t, 1 - 1e-16)), 0.0)


def test_top_k_shards_bound_the_confusion_error_and_keep_label_scores_exact(tmp_path):
    r, e, n, k, top = 3, 2, 400, 50, 5
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(r, e, n, k)) * rng.uniform(0.5, 4, size=(1, 1, n, 1))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    labels = rng.integers(0, k, size=n)
    loss = -np.log(probs[:, :, np.arange(n), labels])
    from engine.scores import margins_from_logits

    margin = margins_from_logits(labels, logits)
    for name, kwargs in (
        ("full", {"probs_dtype": "float32"}),
        ("topk", {"top_k": top, "probs_dtype": "float32"}),
    ):
        for ri in range(r):
            for ei in range(e):
                blocks = write_epoch_shards(
                    tmp_path / name, replica=ri, epoch=ei, probs=probs[ri, ei], loss=loss[ri, ei],
                    labels=labels, margin=margin[ri, ei], block_size=n, **kwargs,
                )  # fmt: skip
                record_epoch(tmp_path / name, replica=ri, epoch=ei, blocks=blocks)
    names = ["confusion", "action", "aum", "forgetting", "confidence", "correctness"]
    full = score_block(tmp_path / "full", 0, replicas=[0, 1, 2], epochs=[0, 1], scores=names)
    topk = score_block(tmp_path / "topk", 0, replicas=[0, 1, 2], epochs=[0, 1], scores=names)
    assert pq.read_schema(block_path(tmp_path / "topk", 0, 0, 0)).names[1:3] == [
        "topk_probs",
        "topk_idx",
    ]
    for name in names[1:]:  # label-aware scores come from the exact loss, margin and top-1
        np.testing.assert_allclose(
            topk.column(name).to_numpy(), full.column(name).to_numpy(), atol=1e-6
        )
    err = np.abs(topk.column("confusion").to_numpy() - full.column("confusion").to_numpy())
    # Audenaert's bound |H(p) - H(q)| <= T log(K - 1) + h(T), T = half the L1 distance between
    # the true and rebuilt replica means, at most the replicas' mean tail mass.
    tail = 1 - np.sort(probs, -1)[..., -top:].sum(-1)  # (R, E, N)
    t = tail.mean(0)
    bound = (t * np.log(k - 1) + _binary_entropy(t)).mean(0)
    assert np.all(err <= bound + 1e-6)
    assert err.max() > 0  # the tail is really approximated
    assert np.mean(err) < 0.05 * np.log(k)


def test_widen_probs_equals_numpy_cast_for_every_valid_half():
    from engine.shards.reader import widen_probs

    halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    valid = np.isfinite(halves) & ~np.signbit(halves)
    fast = widen_probs(halves[valid])
    np.testing.assert_array_equal(
        fast.view(np.uint32), halves[valid].astype(np.float32).view(np.uint32)
    )
    assert valid.sum() == 0x7C00  # +0, every subnormal and every normal half
    # Invalid halves (negative, -0.0, inf, NaN) never widen to a valid probability.
    bad = widen_probs(halves[~valid])
    assert not np.any(np.isfinite(bad) & (bad >= 0) & (bad <= 1))
    out = np.empty(3, np.float32)
    assert widen_probs(np.array([0.25, 0, 1], np.float16), out=out) is out
    np.testing.assert_array_equal(out, [0.25, 0, 1])


def test_entropy_float32_matches_float64():
    from engine.scores import entropy, entropy_float32

    rng = np.random.default_rng(0)
    p = np.concatenate([_probs(rng, 200, 1000) ** 4, np.eye(1000)[:3]])
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(entropy_float32(p), entropy(p), atol=1e-5 * np.log(1000))
    assert entropy_float32(p).dtype == np.float64 and (entropy_float32(p)[-3:] == 0).all()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_arrow_shards_score_like_parquet_and_are_verified(tmp_path, dtype):
    from engine.shards.integrity import ShardIntegrityError, quarantine_shards, verify_shards

    kwargs = {"r": 2, "e": 3, "n": 9, "k": 4, "block_size": 4, "dtype": dtype}
    _write_run(tmp_path / "pq", **kwargs)
    _write_run(tmp_path / "ipc", **kwargs, fmt="arrow")
    ipc = tmp_path / "ipc"
    files = sorted(p.relative_to(ipc / "preds").as_posix() for p in ipc.rglob("block=*"))
    assert len(files) == 18 and all(f.endswith(".arrow") for f in files)
    assert {b["format"] for row in read_manifest(ipc).values() for b in row["blocks"]} == {"arrow"}
    names = ["confusion", "action", "self_confidence"]
    a = _score_all(tmp_path / "pq", names, 2, 3, 3)
    b = _score_all(ipc, names, 2, 3, 3)
    assert a.equals(b)  # same stored values, same scores bit for bit

    consolidate_manifest(ipc, replicas=2, epochs=3, blocks=3)
    assert verify_shards(ipc) == (18, [])
    flipped = block_path(ipc, 0, 1, 1, "arrow")
    truncated = block_path(ipc, 1, 2, 0, "arrow")
    _flip_byte(flipped, len(flipped.read_bytes()) // 2)
    truncated.write_bytes(truncated.read_bytes()[:-200])
    with pytest.raises(ShardIntegrityError, match=r"block=1.arrow is corrupt: xxh3_128"):
        score_block(ipc, 1, replicas=[0, 1], epochs=[0, 1, 2], scores=["confusion"])
    _, problems = verify_shards(ipc)
    assert [(p.replicas, p.epoch, p.block) for p in problems] == [((0,), 1, 1), ((1,), 2, 0)]
    assert "unreadable Arrow IPC" in problems[1].reason
    dest = quarantine_shards(ipc, problems)
    assert (dest / "replica=0/epoch=1/block=1.arrow").exists() and not flipped.exists()
    block_path(ipc, 0, 0, 2, "arrow").unlink()
    with pytest.raises(ShardManifestError, match=r"missing shard .*replica=0/epoch=0/block=2"):
        score_block(ipc, 2, replicas=[0, 1], epochs=[0], scores=["confusion"])
