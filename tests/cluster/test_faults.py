"""Fault tolerance on real Ray: a replica worker killed, the driver killed and resumed, a
corrupt shard detected and regenerated. Every run goes through the ``hardbench`` CLI in a
subprocess with its own local Ray cluster (its own ``RAY_TMPDIR``, torn down by pid).

Each test prints one ``FAULT`` line with its times and shard counts (``pytest -s``).
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.cluster.cli_runs import SECRETS, assert_same_scores, run_cli, start_cli
from tests.cluster.procs import kill_driver_and_cluster

REPLICAS, EPOCHS, BLOCKS = 2, 8, 4  # tiny.yaml: 1,797 samples in 512-sample blocks
# No evaluated model: these tests are about the replicas; its training would add ~7 s a run.
SPEC = [
    "tests/fixtures/tiny.yaml",
    "--set",
    f"replicas.epochs={EPOCHS}",
    "--set",
    "evaluate.models=[]",
]
SCORE_COLUMNS = ("confusion", "action", "aum", "forgetting", "el2n", "vog", "ensemble_pred")
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _rows(run_dir: Path) -> dict[tuple[int, int], dict]:
    rows = {}
    for path in run_dir.glob("preds/replica=*/_manifest.json"):
        try:
            for row in json.loads(path.read_text())["rows"]:
                rows[(row["replica"], row["epoch"])] = row
        except (OSError, ValueError):  # being replaced right now; the next poll reads it
            pass
    return rows


def _shards(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("preds/replica=*/epoch=*/block=*.parquet"))


def _check_exactly_one_shard_each(run_dir: Path) -> None:
    expected = {
        run_dir / f"preds/replica={r}/epoch={e}/block={b}.parquet"
        for r in range(REPLICAS)
        for e in range(EPOCHS)
        for b in range(BLOCKS)
    }
    assert set(_shards(run_dir)) == expected
    assert not list(run_dir.rglob(".*.tmp-*")), "a killed writer's temp files were left behind"
    assert sorted(_rows(run_dir)) == [(r, e) for r in range(REPLICAS) for e in range(EPOCHS)]


def _scores(run_dir: Path, name: str = "scores.parquet") -> dict[str, np.ndarray]:
    table = pq.read_table(run_dir / name)
    return {c: table.column(c).to_numpy() for c in ("sample_id", *SCORE_COLUMNS)}


@pytest.fixture(scope="module")
def baseline(ray_tmp, tmp_path_factory):
    """An uninterrupted run of the spec: the reference every faulted run must equal."""
    runs = tmp_path_factory.mktemp("runs")
    rc, out, secs = run_cli(
        ["run", *SPEC, "--runs-dir", str(runs), "--run-id", "base"], ray_tmp, runs / "base.log"
    )
    assert rc == 0, out[-3000:]
    run_dir = runs / "base"
    _check_exactly_one_shard_each(run_dir)
    # No secret from the environment in the output, run.json, the card or MLflow's store.
    searched = [runs / "base.log", runs / "mlflow.db",
                *(p for p in run_dir.rglob("*") if p.is_file())]  # fmt: skip
    for path in searched:
        data = path.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in data, f"{name} leaked into {path}"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir.parent / 'mlflow.db'}")
    parent = json.loads((run_dir / "run.json").read_text())["mlflow"]["parent_run_id"]
    params = client.get_run(parent).data.params
    assert params and not any(v in str(params) for v in SECRETS.values())
    print(
        f"\nFAULT baseline: uninterrupted run {secs:.1f} s, {len(_shards(run_dir))} shards; "
        f"{len(searched)} output files and {len(params)} MLflow params hold no secret"
    )
    return run_dir


def _wait_for_rows(proc: subprocess.Popen, run_dir: Path, at_least: int, log: Path) -> dict:
    deadline = time.monotonic() + 300
    while True:
        rows = _rows(run_dir)
        if len(rows) >= at_least:
            return rows
        assert proc.poll() is None, f"the run ended before the fault:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)


def test_killed_replica_worker_is_restarted_and_resumes(ray_tmp, baseline, tmp_path):
    run_dir, log = tmp_path / "w", tmp_path / "w.log"
    start = time.monotonic()
    proc = start_cli(["run", *SPEC, "--runs-dir", str(tmp_path), "--run-id", "w"], ray_tmp, log)
    rows = _wait_for_rows(proc, run_dir, 3, log)
    victim = rows[min(rows)]  # the worker that wrote the first finished pair
    os.kill(victim["pid"], signal.SIGKILL)
    killed_at, done_at_kill = time.monotonic() - start, len(rows)
    shards_at_kill = len(_shards(run_dir))
    rc = proc.wait(timeout=400)
    out = log.read_text()
    assert rc == 0, out[-3000:]
    total = time.monotonic() - start
    _check_exactly_one_shard_each(run_dir)
    after = _rows(run_dir)
    replica = victim["replica"]
    pids = [after[(replica, e)]["pid"] for e in range(EPOCHS)]
    # The killed worker's replica finished in a new process, continuing where it stopped.
    assert victim["pid"] in pids and pids[-1] != victim["pid"]
    first_new = pids.index(pids[-1])
    assert all(p == victim["pid"] for p in pids[:first_new])
    assert_same_scores(_scores(baseline), _scores(run_dir))
    print(
        f"\nFAULT worker kill: SIGKILL to replica {replica}'s worker (pid {victim['pid']}) at "
        f"{killed_at:.1f} s with {done_at_kill}/{REPLICAS * EPOCHS} pairs and {shards_at_kill} "
        f"shards done; Ray Train restarted the group, replica {replica} continued at epoch "
        f"{first_new} in pid {pids[-1]}; run finished in {total:.1f} s with "
        f"{len(_shards(run_dir))} shards (expected {REPLICAS * EPOCHS * BLOCKS}); "
        "scores identical to the uninterrupted run"
    )


def test_killed_driver_then_resume_redoes_only_unfinished_pairs(ray_tmp, baseline, tmp_path):
    run_dir, log = tmp_path / "d", tmp_path / "d.log"
    start = time.monotonic()
    proc = start_cli(["run", *SPEC, "--runs-dir", str(tmp_path), "--run-id", "d"], ray_tmp, log)
    _wait_for_rows(proc, run_dir, 4, log)
    # The driver and the local Ray cluster it started die at once, as when its machine
    # goes down: SIGKILL, no chance to clean up or finish an epoch.
    killed = kill_driver_and_cluster(proc, ray_tmp["RAY_TMPDIR"])
    killed_at = time.monotonic() - start
    before = _rows(run_dir)
    shards_before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in _shards(run_dir)}
    assert 0 < len(before) < REPLICAS * EPOCHS
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    rc, out, resume_s = run_cli(["run", "--resume", str(run_dir)], ray_tmp, tmp_path / "r.log")
    assert rc == 0, out[-3000:]
    assert f"{len(before)}/{REPLICAS * EPOCHS} pairs done before, not retrained" in out
    _check_exactly_one_shard_each(run_dir)
    after = _rows(run_dir)
    for key, row in before.items():
        assert after[key] == row, f"finished pair {key} was redone"
    assert {after[k]["attempt"] for k in after.keys() - before.keys()} == {2}
    # Shards of finished pairs were not rewritten; a pair cut off mid-write was redone.
    kept = [p for p in shards_before if p.parent.parent.name + p.parent.name in {
        f"replica={r}epoch={e}" for r, e in before
    }]  # fmt: skip
    for path in kept:
        assert path.stat().st_mtime_ns == shards_before[path][0], path
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "complete"
    assert [a.get("ended_as") for a in status["attempts"]] == ["running", None]
    assert_same_scores(_scores(baseline), _scores(run_dir))
    rc, out, _ = run_cli(["run", "--resume", str(run_dir)], ray_tmp, tmp_path / "again.log")
    assert rc == 2 and "is complete; nothing to resume" in out
    print(
        f"\nFAULT driver kill: SIGKILL to the driver and its {killed} Ray processes at {killed_at:.1f} s with {len(before)}/"
        f"{REPLICAS * EPOCHS} pairs and {len(shards_before)} shards on disk; `hardbench run "
        f"--resume` took {resume_s:.1f} s, trained {REPLICAS * EPOCHS - len(before)} pairs, "
        f"left {len(kept)} finished shards untouched, ended with {len(_shards(run_dir))} shards; "
        "scores identical to the uninterrupted run"
    )


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_corrupt_and_truncated_shards_are_refused_then_regenerated(ray_tmp, baseline, tmp_path):
    run_dir = tmp_path / "c"
    shutil.copytree(baseline, run_dir, ignore=shutil.ignore_patterns("ray_train"))
    flipped = run_dir / "preds/replica=0/epoch=3/block=1.parquet"
    truncated = run_dir / "preds/replica=1/epoch=6/block=3.parquet"
    originals = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (flipped, truncated)}
    _flip_byte(flipped)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])

    rc, out, _ = run_cli(["score", str(run_dir)], ray_tmp, tmp_path / "score.log")
    assert rc != 0 and "is corrupt: xxh3_128" in out, out[-3000:]
    assert not (run_dir / "scores.rescored.parquet").exists()  # never silently scored

    rc, out, _ = run_cli(["verify", str(run_dir)], ray_tmp, tmp_path / "verify.log")
    assert rc == 1, out
    assert "64 shards checked, 2 failed" in out
    assert "replica=0/epoch=3/block=1.parquet: xxh3_128" in out
    assert "replica=1/epoch=6/block=3.parquet: unreadable Parquet" in out

    rc, out, repair_s = run_cli(["verify", str(run_dir), "--repair"], ray_tmp, tmp_path / "fix.log")
    assert rc == 0, out[-3000:]
    assert "regenerated 2 of 2 shards, 2 byte-identical to the originals; 0 still failing" in out
    _check_exactly_one_shard_each(run_dir)
    for path, digest in originals.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    quarantined = sorted(run_dir.glob("quarantine/*/replica=*/epoch=*/block=*.parquet"))
    assert [p.relative_to(p.parents[2]).as_posix() for p in quarantined] == [
        "replica=0/epoch=3/block=1.parquet",
        "replica=1/epoch=6/block=3.parquet",
    ]
    rc, out, _ = run_cli(["score", str(run_dir)], ray_tmp, tmp_path / "rescore.log")
    assert rc == 0, out[-3000:]
    assert_same_scores(_scores(baseline), _scores(run_dir, "scores.rescored.parquet"))
    print(
        f"\nFAULT corrupt shards: 1 bit-flipped + 1 truncated of {len(_shards(run_dir))} shards; "
        f"`hardbench score` refused, `hardbench verify` named both, `--repair` regenerated them "
        f"byte-identical in {repair_s:.1f} s; re-scoring equals the original scores"
    )
