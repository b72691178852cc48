"""A QA run goes through the same lifecycle: its driver killed mid-run, ``--resume`` finishes it.

The run goes through the ``hardbench`` CLI in a subprocess with its own local Ray
cluster; the driver and every process of that cluster are SIGKILLed once the
side-by-side ensemble has written some epochs, then ``hardbench run --resume``
continues from the ensemble's checkpoint. The scores must equal an uninterrupted
run's bit for bit (``pytest -s`` prints one ``FAULT`` line).
"""

import json
import time
from pathlib import Path

import pytest

from tests.cluster.cli_runs import assert_same_scores, run_cli, start_cli
from tests.cluster.procs import kill_driver_and_cluster

EPOCHS = 8
SPEC = ["tests/fixtures/tiny-qa.yaml", "--set", f"replicas.epochs={EPOCHS}",
        "--set", "data.limit=600"]  # fmt: skip
SCORES = ("confusion", "action", "aum", "forgetting", "ensemble_pred")
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _epochs(run_dir: Path) -> dict[int, dict]:
    path = run_dir / "preds" / "packed" / "_manifest.json"
    try:
        return {row["epoch"]: row for row in json.loads(path.read_text())["rows"]}
    except (OSError, ValueError):  # not there yet, or being replaced right now
        return {}


def _scores(run_dir: Path) -> dict:
    import pyarrow.parquet as pq

    table = pq.read_table(run_dir / "scores.parquet")
    return {c: table.column(c).to_numpy() for c in ("sample_id", *SCORES)}


def test_a_killed_qa_driver_resumes_from_the_ensembles_checkpoint(ray_tmp, tmp_path):
    rc, out, base_s = run_cli(["run", *SPEC, "--runs-dir", str(tmp_path), "--run-id", "base"],
                           ray_tmp, tmp_path / "base.log")  # fmt: skip
    assert rc == 0, out[-3000:]
    run_dir, log = tmp_path / "qa", tmp_path / "qa.log"
    start = time.monotonic()
    proc = start_cli(["run", *SPEC, "--runs-dir", str(tmp_path), "--run-id", "qa"], ray_tmp, log)
    deadline = time.monotonic() + 300
    while len(_epochs(run_dir)) < 2:
        assert proc.poll() is None, f"the run ended before the fault:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    killed = kill_driver_and_cluster(proc, ray_tmp["RAY_TMPDIR"])
    killed_at = time.monotonic() - start
    before = _epochs(run_dir)
    assert 0 < len(before) < EPOCHS
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert list((run_dir / "checkpoints" / "pack=0").glob("epoch=*.pt"))

    rc, out, resume_s = run_cli(["run", "--resume", str(run_dir)], ray_tmp, tmp_path / "r.log")
    assert rc == 0, out[-3000:]
    assert "done before, resumed from epoch" in out
    after = _epochs(run_dir)
    assert sorted(after) == list(range(EPOCHS))
    for epoch, row in before.items():
        assert after[epoch] == row, f"finished epoch {epoch} was redone"
    assert {after[e]["attempt"] for e in after.keys() - before.keys()} == {2}
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "complete" and len(status["attempts"]) == 2
    assert_same_scores(_scores(tmp_path / "base"), _scores(run_dir))
    assert (run_dir / "report.html").exists()
    print(
        f"\nFAULT QA driver kill: uninterrupted run {base_s:.1f} s; SIGKILL to the driver and its "
        f"{killed} Ray processes at {killed_at:.1f} s with {len(before)}/{EPOCHS} "
        f"ensemble epochs written; `hardbench run --resume` took {resume_s:.1f} s, continued "
        "from the ensemble's checkpoint; scores identical to the uninterrupted run"
    )
