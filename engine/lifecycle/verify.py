"""``hardbench verify``: check a run's shards against their manifests and regenerate bad ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from engine.distributed.cluster import ray_session
from engine.layout import RUN_FILE, SCORES_FILE
from engine.lifecycle.driver import check_driver
from engine.lifecycle.rundir import RunSetupError, read_run_spec
from engine.processes import ALIVE
from engine.shards.integrity import (
    file_matches,
    manifest_checksums,
    quarantine_shards,
    verify_shards,
)
from engine.tasks import get_task
from engine.tasks.base import RunContext


def verify_run(
    run_dir: Path | str,
    *,
    repair: bool = False,
    num_cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Check every shard of a run against its manifest; optionally regenerate bad ones.

    With ``repair`` the failed shards are moved to ``quarantine/`` and their (replica,
    epoch) pairs retrained from the replicas' checkpoints (or replayed from the start)
    on Ray; each regenerated shard is checked against the checksum recorded when it
    was first written (by that entry's algorithm, whatever ``shards.checksum`` is now),
    which tells whether the scores already computed from it still hold.

    Returns:
        ``{"checked", "problems": [..], "quarantine": dir or None, "regenerated": n,
        "identical": n regenerated with the original checksum, "remaining": n}``.

    Raises:
        RunSetupError: If the directory is not a run.
    """
    run_dir = Path(run_dir).resolve()
    spec = read_run_spec(run_dir)  # not a run: RunSetupError
    original = manifest_checksums(run_dir)
    checked, problems = verify_shards(run_dir)
    for p in problems:
        log(f"[verify] {p.path.relative_to(run_dir)}: {p.reason}")
    log(f"[verify] {checked} shards checked, {len(problems)} failed")
    out = {
        "checked": checked,
        "problems": [f"{p.path.relative_to(run_dir)}: {p.reason}" for p in problems],
        "quarantine": None,
        "regenerated": 0,
        "identical": 0,
        "remaining": len(problems),
    }
    if not problems or not repair:
        return out
    status = json.loads((run_dir / RUN_FILE).read_text()) if (run_dir / RUN_FILE).exists() else {}
    attempts = status.get("attempts", [])
    check = check_driver(run_dir, attempts[-1]) if attempts else None
    if status.get("status") == "running" and check is not None and check.state == ALIVE:
        raise RunSetupError(
            f"run {run_dir.name} is still running ({check.reason}); repair it once it has stopped"
        )
    redo = {(r, p.epoch) for p in problems for r in p.replicas}
    dest = quarantine_shards(run_dir, problems)
    out["quarantine"] = str(dest)
    log(
        f"[verify] moved to {dest.relative_to(run_dir)}; regenerating {len(redo)} (replica, epoch) pairs"
    )
    task = get_task(spec.task.name).runtime()
    ctx = RunContext(
        run_dir, run_dir.name, spec, task.load_data(spec, run_dir, log), len(attempts) + 1, log
    )
    with ray_session(num_cpus):
        task.train_replicas(ctx)
    now = manifest_checksums(run_dir)
    for p in problems:
        key = str(p.path)
        if key in now:
            out["regenerated"] += 1
            out["identical"] += int(key in original and file_matches(key, original[key]))
    _, left = verify_shards(run_dir)
    out["remaining"] = len(left)
    log(
        f"[verify] regenerated {out['regenerated']} of {len(problems)} shards, "
        f"{out['identical']} byte-identical to the originals; {len(left)} still failing"
    )
    if out["identical"] < out["regenerated"] and (run_dir / SCORES_FILE).exists():
        log(
            f"[verify] some regenerated shards differ from the originals; {SCORES_FILE} was "
            "computed from the originals: run `hardbench score` to re-score"
        )
    return out
