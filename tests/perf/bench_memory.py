"""Memory benchmark: peak RSS of the driver and of every Ray worker, Fashion-MNIST at N = 10,000 vs 60,000.

Runs ``hardbench run benchmarks/fashion-mnist.yaml`` twice in a subprocess (``data.limit``
N, 2 replicas x 2 epochs, the spec's largest-activation CNN and its MLP for 1 epoch
each, the real IDX package), and samples ``/proc/<pid>/status`` of the driver and all
its descendants every 0.3 s: the
peak resident set (VmHWM) of the driver and of each Ray worker process (``ray::...``),
by the task it ran. With the dataset cache memory-mapped and float32 made per batch,
the peaks should not grow with N (target: within 1.3x, none over 2 GiB). RSS counts the
shared libraries (torch alone is ~300 MiB) and the mapped cache pages a process touched.
Not a test: run it by hand or with ``make bench``.

    python tests/perf/bench_memory.py --sizes 10000 60000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[2]
SAMPLE_S = 0.3  # seconds between /proc samples
FLAT = 1.3  # the peaks at the largest N must stay within this factor of the smallest N's
CAP_GIB = 2.0  # and under this many GiB
OVERRIDES = [
    "replicas.count=2", "replicas.epochs=2", "shards.block_size=4096",
    "evaluate.models=[{name: cnn_32, model: small_cnn, model_kwargs: {width: 32},"
    " epochs: 1, batch_size: 128, seed: 1}, {name: mlp_wide, model: mlp, model_kwargs:"
    " {hidden: 512, depth: 2}, epochs: 1, batch_size: 128, seed: 4}]",
]  # fmt: skip


def _children(pid: int) -> set[int]:
    """All descendants of ``pid`` (from /proc/*/stat parent ids)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                parent[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parent.items() if p in frontier} - out
        out |= frontier
    return out


def _peak_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "?"


def measure(n: int, runs_dir: Path) -> dict:
    """Run one build of N samples; peak RSS (MiB) of the driver and per worker role."""
    cmd = [sys.executable, "-m", "engine.cli", "run", "benchmarks/fashion-mnist.yaml",
           "--runs-dir", str(runs_dir), "--set", f"data.limit={n}"]  # fmt: skip
    for o in OVERRIDES:
        cmd += ["--set", o]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peaks: dict[int, int] = {}  # pid -> peak KiB
    roles: dict[int, set[str]] = {}  # pid -> every task name the process ran
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in {proc.pid} | _children(proc.pid):
                kib = _peak_kib(pid)
                name = "driver" if pid == proc.pid else _name(pid)
                if kib is None or not (name == "driver" or name.startswith("ray::")):
                    continue
                peaks[pid] = max(peaks.get(pid, 0), kib)
                if name != "ray::IDLE":
                    roles.setdefault(pid, set()).add(name.split(" ")[0].split(".")[0])
            time.sleep(SAMPLE_S)

    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    output = proc.communicate()[0].decode()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"the build of N={n} failed:\n{output[-3000:]}")
    by_role: dict[str, float] = {}  # a worker reused by several tasks counts for each of them
    for pid, kib in peaks.items():
        role = " + ".join(sorted(roles.get(pid, {"ray::IDLE"})))
        by_role[role] = max(by_role.get(role, 0.0), kib / 1024)
    return {"n": n, "seconds": round(time.perf_counter() - start, 1),
            "peak_mib": {k: round(v, 1) for k, v in sorted(by_role.items())}}  # fmt: skip


def main() -> None:
    """Run the builds and write ``results/memory.{json,md}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 60_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hb-mem-") as tmp:
        rows = [measure(n, Path(tmp) / f"runs{n}") for n in args.sizes]
    roles = sorted({r for row in rows for r in row["peak_mib"]})
    small, large = rows[0]["peak_mib"], rows[-1]["peak_mib"]
    ratios = {r: round(large.get(r, 0) / small[r], 3) for r in roles if small.get(r)}
    worst = max(v for row in rows for v in row["peak_mib"].values())
    out = {"rows": rows, "ratio_largest_to_smallest": ratios, "max_peak_mib": worst,
           "flat": all(v <= FLAT for v in ratios.values()), "under_cap": worst <= CAP_GIB * 1024}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(out, indent=2))
    md = [
        "# Peak RSS (MiB) per process, Fashion-MNIST builds of N samples",
        "",
        "`python tests/perf/bench_memory.py` (VmHWM sampled every 0.3 s; both builds in one run)",
        "",
        "| process | " + " | ".join(f"N={row['n']:,}" for row in rows) + " | ratio |",
        "|---|" + "---|" * len(rows) + "---|",
        *[
            f"| {r} | "
            + " | ".join(f"{row['peak_mib'].get(r, 0):,.0f}" for row in rows)
            + f" | {ratios.get(r, float('nan')):.2f} |"
            for r in roles
        ],
        "",
        "build time (s): " + ", ".join(f"N={row['n']:,}: {row['seconds']}" for row in rows),
        f"Flat within {FLAT}x: {'yes' if out['flat'] else 'NO'}; every peak under "
        f"{CAP_GIB:.0f} GiB: {'yes' if out['under_cap'] else 'NO'} (max {worst:,.0f} MiB).",
    ]
    (RESULTS / "memory.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
