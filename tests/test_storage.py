"""Mirroring runs to pyarrow filesystems: an in-memory (non-local) one and file:// URIs."""

import json

import fsspec
import pyarrow.fs as pafs
import pytest

from engine.storage import (
    SYNC_STATE,
    Location,
    StorageError,
    check_new_destination,
    download_run,
    mirror_run,
    resolve,
)


class RecordingHandler(pafs.FSSpecHandler):
    """An fsspec memory filesystem that records the order files are written in."""

    def __init__(self, fs):
        super().__init__(fs)
        self.written = []

    def open_output_stream(self, path, metadata):
        self.written.append(path)
        return super().open_output_stream(path, metadata)


def _memory():
    mem = fsspec.filesystem("memory")
    mem.store.clear()
    handler = RecordingHandler(mem)
    return Location(pafs.PyFileSystem(handler), "/bucket/runs", "memory://bucket/runs"), handler


def _fake_run(tmp_path):
    run = tmp_path / "r1"
    (run / "preds" / "replica=0" / "epoch=0").mkdir(parents=True)
    (run / "preds" / "replica=0" / "epoch=0" / "block=0.parquet").write_bytes(b"shard" * 100)
    (run / "preds" / "replica=0" / "_manifest.json").write_text('{"rows": []}')
    (run / "preds" / "replica=0" / ".block=1.parquet.tmp-abc").write_bytes(b"partial")
    (run / "ray_train" / "x").mkdir(parents=True)
    (run / "ray_train" / "x" / "state.pkl").write_bytes(b"ray's")
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    (run / "spec.yaml").write_text("metadata: {name: r1}\n")
    return run


def test_mirror_uploads_changed_files_with_run_json_last(tmp_path):
    run = _fake_run(tmp_path)
    root, handler = _memory()
    dest = check_new_destination("r1", root)
    first = mirror_run(run, dest)
    assert first["uploaded"] == 4 and first["unchanged"] == 0
    assert handler.written[-1] == "/bucket/runs/r1/run.json"
    assert not any("tmp-" in p or "ray_train" in p or SYNC_STATE in p for p in handler.written)
    with dest.fs.open_input_stream(dest.child("preds/replica=0/epoch=0/block=0.parquet").path) as f:
        assert f.read() == b"shard" * 100
    assert mirror_run(run, dest)["uploaded"] == 0  # nothing changed
    (run / "run.json").write_text(json.dumps({"status": "complete"}))
    handler.written.clear()
    assert mirror_run(run, dest) == {"uploaded": 1, "bytes": 22, "unchanged": 3}
    assert handler.written == ["/bucket/runs/r1/run.json"]
    with pytest.raises(StorageError, match="already holds a run; outputs are never overwritten"):
        check_new_destination("r1", root)


def test_download_round_trip_and_refusals(tmp_path):
    run = _fake_run(tmp_path)
    uri = f"file://{tmp_path}/out"
    dest = check_new_destination("r1", uri)
    mirror_run(run, dest)
    local = download_run(f"{uri}/r1", tmp_path / "again")
    assert local == tmp_path / "again" / "r1"
    assert (local / "preds/replica=0/epoch=0/block=0.parquet").read_bytes() == b"shard" * 100
    assert not (local / "ray_train").exists()
    with pytest.raises(StorageError, match="exists; resume it directly"):
        download_run(f"{uri}/r1", tmp_path / "again")
    with pytest.raises(StorageError, match="holds no run"):
        download_run(f"{uri}/nothing", tmp_path / "x")


def test_resolve_local_paths_and_bad_uris(tmp_path):
    loc = resolve(tmp_path / "a")
    assert isinstance(loc.fs, pafs.LocalFileSystem) and loc.path == str(tmp_path / "a")
    with pytest.raises(StorageError, match="cannot open output 'nosuch://x/y'"):
        resolve("nosuch://x/y")


def test_credentials_in_uris_are_redacted_and_refused(tmp_path):
    from engine._util import has_credentials, redact_uri
    from engine.lifecycle import RunSetupError, run_benchmark
    from engine.spec import SpecError, load_spec

    assert redact_uri("https://bob:pw@mlflow.example/x?token=abc&page=2") == (
        "https://***@mlflow.example/x?token=***&page=2"
    )
    assert redact_uri("s3://AKIA:SECRET@bucket/runs") == "s3://***@bucket/runs"
    assert redact_uri("sqlite:////tmp/a/mlflow.db") == "sqlite:////tmp/a/mlflow.db"
    assert not has_credentials("s3://bucket/runs?region=eu-west-1")
    with pytest.raises(SpecError, match=r"output\.uri: holds credentials; give them in the env"):
        load_spec("tests/fixtures/tiny.yaml", ["output.uri=s3://AKIA:SECRET@bucket/runs"])
    spec = load_spec("tests/fixtures/tiny.yaml")
    with pytest.raises(RunSetupError, match=r"output s3://\*\*\*@bucket/runs holds credentials"):
        run_benchmark(spec, runs_dir=tmp_path, output="s3://AKIA:SECRET@bucket/runs")
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_stored_tracking_uri_reconnects_with_the_environments_credentials(monkeypatch):
    from engine.tracking.mlflow_log import reconnect_uri

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://bob:pw@mlflow.example")
    assert reconnect_uri("https://***@mlflow.example") == "https://bob:pw@mlflow.example"
    assert reconnect_uri("https://***@other.example") == "https://***@other.example"
