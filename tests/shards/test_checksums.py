"""Shard checksums: xxh3_128 by default, sha256 selectable, older sha256 manifests still verify."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from engine.distributed.scoring import score_block
from engine.shards import block_path, read_manifest, record_epoch, write_epoch_shards
from engine.shards.checksums import (
    CHECKSUMS,
    DEFAULT_CHECKSUM,
    ChecksumError,
    digest,
    entry_checksum,
)
from engine.shards.integrity import (
    ShardIntegrityError,
    file_matches,
    manifest_checksums,
    verify_shards,
)
from engine.shards.layout import replica_manifest_path
from engine.shards.writer import write_packed_epoch_shards, write_reduced_epoch_shards
from engine.spec import SpecError, load_spec
from engine.spec.common import FieldError
from engine.spec.training import SHARD_CHECKSUMS, ShardsSpec

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"
R, E, N, K, BLOCK = 2, 2, 9, 3, 4  # replicas, epochs, samples, classes, samples per block
SCORES = ["confusion", "action", "self_confidence"]
HEX_DIGITS = {"xxh3_128": 32, "sha256": 64}  # digest length of each algorithm


def _write(run_dir: Path, *, fmt: str = "parquet", only: set | None = None, **kwargs) -> None:
    """A random (R, E, N, K) run in per-replica shards; ``kwargs`` go to the writer.

    ``only`` writes just those (replica, epoch) pairs, with the values a full write gives.
    """
    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, size=N)
    for r in range(R):
        for e in range(E):
            x = rng.normal(size=(N, K))
            probs = np.exp(x) / np.exp(x).sum(1, keepdims=True)
            loss = -np.log(probs[np.arange(N), labels]).astype(np.float32)
            if only is not None and (r, e) not in only:
                continue
            blocks = write_epoch_shards(run_dir, replica=r, epoch=e, probs=probs, loss=loss,
                                        labels=labels, block_size=BLOCK, fmt=fmt,
                                        **kwargs)  # fmt: skip
            record_epoch(run_dir, replica=r, epoch=e, blocks=blocks)


def _scores(run_dir: Path) -> dict[str, np.ndarray]:
    parts = [
        score_block(run_dir, b, replicas=list(range(R)), epochs=list(range(E)), scores=SCORES)
        for b in range(-(-N // BLOCK))
    ]
    return {
        k: np.concatenate([p.column(k).to_numpy() for p in parts]) for k in parts[0].column_names
    }


def _entries(run_dir: Path) -> list[tuple[Path, dict]]:
    out = []
    for (r, e), row in sorted(read_manifest(run_dir).items()):
        for entry in row["blocks"]:
            out.append((block_path(run_dir, r, e, entry["block"], entry["format"]), entry))
    return out


def _rewrite_entries(run_dir: Path, change) -> None:
    """Apply ``change(path, entry) -> entry`` to every block entry of every replica manifest."""
    for r in range(R):
        manifest = replica_manifest_path(run_dir, r)
        rows = json.loads(manifest.read_text())["rows"]
        for row in rows:
            row["blocks"] = [
                change(block_path(run_dir, r, row["epoch"], b["block"], b["format"]), b)
                for b in row["blocks"]
            ]
        manifest.write_text(json.dumps({"rows": rows}, indent=1))


def _flip_byte(path: Path) -> None:
    """Flip one bit of a stored value, leaving the file readable (a silent corruption).

    Parquet: the middle byte, inside the zstd-compressed pages. Arrow IPC: the lowest
    mantissa byte of the first ``loss`` value (the middle byte may be metadata).
    """
    data = bytearray(path.read_bytes())
    if path.suffix == ".arrow":
        table = pa.ipc.open_file(pa.py_buffer(bytes(data))).read_all()
        offset = bytes(data).index(np.float32(table.column("loss")[0].as_py()).tobytes())
    else:
        offset = len(data) // 2
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_spec_and_the_writers_default_to_xxh3_128(tmp_path):
    assert ShardsSpec().checksum == DEFAULT_CHECKSUM == "xxh3_128"
    assert load_spec(TINY).shards.checksum == "xxh3_128"
    assert tuple(CHECKSUMS) == SHARD_CHECKSUMS  # the spec accepts exactly what can be verified
    _write(tmp_path)
    for path, entry in _entries(tmp_path):
        assert set(entry) == {"block", "rows", "xxh3_128", "format"}
        assert entry["xxh3_128"] == xxhash.xxh3_128_hexdigest(path.read_bytes())


def test_the_spec_refuses_an_unknown_checksum():
    assert load_spec(TINY, ["shards.checksum=sha256"]).shards.checksum == "sha256"
    with pytest.raises(FieldError, match=r"must be one of xxh3_128, sha256, got 'crc32'"):
        ShardsSpec(checksum="crc32")
    with pytest.raises(SpecError, match=r"shards\.checksum: must be one of xxh3_128, sha256"):
        load_spec(TINY, ["shards.checksum=md5"])


def test_digest_matches_the_reference_implementations():
    data = np.random.default_rng(1).bytes(100_003)
    assert digest(data, "sha256") == hashlib.sha256(data).hexdigest()
    assert digest(data, "xxh3_128") == xxhash.xxh3_128(data).hexdigest()
    assert digest(memoryview(data)) == digest(data)  # any buffer, default xxh3_128
    with pytest.raises(ChecksumError, match=r"unknown checksum 'md5': use one of xxh3_128, sha256"):
        digest(data, "md5")


def test_an_unknown_algorithm_writes_nothing(tmp_path):
    with pytest.raises(ChecksumError, match="unknown checksum 'crc32'"):
        _write(tmp_path, checksum="crc32")
    assert not list(tmp_path.rglob("block=*"))


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
@pytest.mark.parametrize("algorithm", ["xxh3_128", "sha256"])
def test_flipped_and_truncated_shards_are_caught(tmp_path, algorithm, fmt):
    _write(tmp_path, checksum=algorithm, fmt=fmt)
    entries = _entries(tmp_path)
    assert all(set(e) == {"block", "rows", algorithm, "format"} for _, e in entries)
    assert all(len(e[algorithm]) == HEX_DIGITS[algorithm] for _, e in entries)
    assert verify_shards(tmp_path) == (R * E * 3, [])
    flipped, truncated = block_path(tmp_path, 0, 1, 1, fmt), block_path(tmp_path, 1, 0, 2, fmt)
    _flip_byte(flipped)
    truncated.write_bytes(truncated.read_bytes()[:-3])
    for block, path in ((1, flipped), (2, truncated)):
        with pytest.raises(ShardIntegrityError, match=rf"{path.name} is corrupt: {algorithm} "):
            score_block(tmp_path, block, replicas=[0, 1], epochs=[0, 1], scores=SCORES)
    _, problems = verify_shards(tmp_path)
    assert [(p.path, p.block) for p in problems] == [(flipped, 1), (truncated, 2)]
    # The flipped file still reads, with the right rows: the checksum is what finds it.
    assert problems[0].reason.startswith(f"{algorithm} "), problems[0].reason


def test_sha256_manifests_from_before_verify_and_score_the_same(tmp_path):
    new, old, chosen = tmp_path / "new", tmp_path / "old", tmp_path / "chosen"
    _write(new)
    _write(old)
    _write(chosen, checksum="sha256")

    def old_form(path: Path, entry: dict) -> dict:  # what every writer recorded before
        return {"block": entry["block"], "rows": entry["rows"],
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "format": entry["format"]}  # fmt: skip

    _rewrite_entries(old, old_form)
    for run in (old, chosen):
        for path, entry in _entries(run):
            assert entry_checksum(entry, path) == ("sha256", digest(path.read_bytes(), "sha256"))
    # The checksum is recorded beside the shard, never in it: the files are the same bytes.
    for (a, _), (b, _) in zip(_entries(new), _entries(chosen), strict=True):
        assert a.read_bytes() == b.read_bytes()
    for run in (new, old, chosen):
        assert verify_shards(run) == (R * E * 3, [])
    ref = _scores(new)
    for run in (old, chosen):
        got = _scores(run)
        for name, values in ref.items():
            np.testing.assert_array_equal(got[name], values, err_msg=f"{run.name} {name}")


def test_a_run_mixing_both_algorithms_verifies(tmp_path):
    """A resumed old run: epochs written before carry sha256, later ones xxh3_128."""
    _write(tmp_path / "ref")
    mixed = tmp_path / "mixed"
    _write(mixed, checksum="sha256", only={(0, 0), (1, 0)})
    _write(mixed, only={(0, 1), (1, 1)})
    kinds = {next(k for k in CHECKSUMS if k in e) for _, e in _entries(mixed)}
    assert kinds == {"xxh3_128", "sha256"}
    assert verify_shards(mixed) == (R * E * 3, [])
    ref, got = _scores(tmp_path / "ref"), _scores(mixed)
    for name, values in ref.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda e: {k: v for k, v in e.items() if k != "xxh3_128"}, " records no checksum"),
        (lambda e: {**e, "sha256": "0" * 64}, r" records 2 checksums \(xxh3_128, sha256\)"),
        (lambda e: {**e, "xxh3_128": None}, "'s xxh3_128 is None, not a hex digest"),
    ],
)
def test_an_entry_without_one_usable_checksum_is_refused_naming_the_shard(tmp_path, change, what):
    _write(tmp_path)
    target = block_path(tmp_path, 1, 0, 1)
    _rewrite_entries(tmp_path, lambda path, e: change(e) if path == target else e)
    with pytest.raises(ShardIntegrityError, match=rf"shard {target}: its manifest entry{what}"):
        score_block(tmp_path, 1, replicas=[0, 1], epochs=[0, 1], scores=SCORES)
    _, problems = verify_shards(tmp_path)
    assert [p.path for p in problems] == [target]
    assert "its manifest entry" in problems[0].reason and str(target) not in problems[0].reason
    assert str(target) not in manifest_checksums(tmp_path)  # nothing to compare a repair with


def test_a_regenerated_shard_is_compared_with_its_original_algorithm(tmp_path):
    """`hardbench verify --repair` on a sha256 run whose spec now defaults to xxh3_128."""
    _write(tmp_path, checksum="sha256")
    original = manifest_checksums(tmp_path)
    path = block_path(tmp_path, 0, 0, 0)
    assert original[str(path)][0] == "sha256"
    good = path.read_bytes()
    _write(tmp_path)  # regenerated with the new default: same bytes, xxh3_128 entries
    assert manifest_checksums(tmp_path)[str(path)][0] == "xxh3_128"
    assert path.read_bytes() == good and file_matches(path, original[str(path)])
    _flip_byte(path)
    assert not file_matches(path, original[str(path)])
    path.unlink()
    assert not file_matches(path, original[str(path)])


@pytest.mark.parametrize("algorithm", ["xxh3_128", "sha256"])
def test_packed_and_reduced_writers_record_the_chosen_algorithm(tmp_path, algorithm):
    rng = np.random.default_rng(2)
    mean = rng.dirichlet(np.ones(K), size=N)
    scalars = {name: rng.random((R, N)).astype(np.float32) for name in
               ("loss", "margin", "p_true", "el2n")}  # fmt: skip
    scalars["correct"] = rng.random((R, N)) > 0.5
    labels = rng.integers(0, K, size=N)
    packed = write_packed_epoch_shards(tmp_path / "mean", epoch=0, mean_probs=mean,
                                       scalars=scalars, labels=labels, block_size=BLOCK,
                                       checksum=algorithm)  # fmt: skip
    reduced = write_reduced_epoch_shards(
        tmp_path / "reduced", epoch=0, mean_entropy=rng.random(N), ensemble_pred=mean.argmax(1),
        ensemble_conf=mean.max(1), scalars=scalars, labels=labels, num_replicas=R,
        block_size=BLOCK, checksum=algorithm,
    )  # fmt: skip
    for form, entries in (("mean", packed), ("reduced", reduced)):
        files = sorted((tmp_path / form).rglob("block=*"), key=lambda p: p.stem)
        assert [set(e) for e in entries] == [{"block", "rows", algorithm, "format"}] * 3
        assert [e[algorithm] for e in entries] == [digest(p.read_bytes(), algorithm) for p in files]


@pytest.mark.parametrize("mode", ["unpacked", "full", "mean", "reduced"])
def test_the_spec_choice_reaches_every_replica_writer(tmp_path, mode):
    from engine.distributed.replicas import train_pack, train_replica
    from engine.shards import manifest_rows

    overrides = ["replicas.count=2", "replicas.epochs=1", "shards.grad_epochs=[]",
                 "scores=[confusion,action]", "shards.block_size=900",
                 "shards.checksum=sha256"]  # fmt: skip
    if mode != "unpacked":
        overrides += ["replicas.pack_size=all", f"shards.mode={mode}"]
    spec = load_spec(TINY, overrides)
    if mode == "unpacked":
        for r in range(2):
            train_replica(tmp_path, spec, r, log=lambda line: None)
    else:
        train_pack(tmp_path, spec, 0, log=lambda line: None)
    rows = manifest_rows(tmp_path)
    assert rows and all(set(e) == {"block", "rows", "sha256", "format"}
                        for row in rows for e in row["blocks"])  # fmt: skip
    assert verify_shards(tmp_path)[1] == []


def test_the_text_tasks_writer_records_the_spec_choice(tmp_path):
    from engine.distributed.text_tasks import write_reduced

    spec = load_spec(ROOT / "tests" / "fixtures" / "tiny-qa.yaml", ["shards.checksum=sha256"])
    r = spec.replicas.count
    rng = np.random.default_rng(4)
    red = {"mean_entropy": rng.random(N), "ensemble_pred": rng.integers(0, 2, N),
           "ensemble_conf": rng.random(N), "loss": rng.random((r, N)),
           "margin": rng.random((r, N)), "correct": rng.random((r, N)) > 0.5}  # fmt: skip
    write_reduced(
        tmp_path, spec, 0, red, np.zeros(N, np.int64), np.array(["train", "test"] * N)[:N], {}, {}
    )
    entries = [e for row in read_manifest(tmp_path).values() for e in row["blocks"]]
    assert entries and all(set(e) == {"block", "rows", "sha256", "format"} for e in entries)
    assert verify_shards(tmp_path)[1] == []
