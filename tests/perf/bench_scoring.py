"""Scoring benchmark: a synthetic run of N samples, K classes, R replicas, E epochs.

Writes float16 shards in the per-replica layout, once as Parquet and once as Arrow IPC
(``shards.format``), then scores each (confusion and action, then every label-aware
score) through the real Ray Data actor pool, and reports wall time, the pool actors'
peak RSS (VmHWM from /proc), throughput in GB of shard data per second, and, measured
in the same run, this machine's memory copy bandwidth and the per-core ceilings of the
work every shard needs: SHA-256 of its bytes and the confusion/action arithmetic on
float16 arrays already in memory. Not a test: run it by hand or with ``make bench``.

    python tests/perf/bench_scoring.py --n 1000000 --k 10 --r 3 --e 20
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from engine.distributed.cluster import ray_session
from engine.distributed.scoring import score_run
from engine.scores import entropy_float32, margins_from_logits
from engine.shards import consolidate_manifest, num_blocks, record_epoch, write_epoch_shards
from engine.shards.checksums import DEFAULT_CHECKSUM, digest
from engine.shards.reader import probs_look_valid, widen_probs

RESULTS = Path(__file__).resolve().parent / "results"
COPY_BYTES = 1 << 30  # array size of the copy-bandwidth probe (1 GiB)
ALL_LABEL_AWARE = [
    "confusion", "action", "aum", "forgetting", "el2n", "confidence", "variability",
    "correctness", "self_confidence", "normalized_margin", "ensemble_max_prob", "ensemble_margin",
]  # fmt: skip


def copy_bandwidth(repeats: int = 5) -> float:
    """Best-of-``repeats`` memory copy rate in GB/s, STREAM style (bytes read + written)."""
    src = np.ones(COPY_BYTES // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.nbytes / best / 1e9


def checksum_rate(nbytes: int = 64 << 20, repeats: int = 5) -> float:
    """Best-of-``repeats`` rate of one core in GB/s of the shards' default checksum."""
    data = np.random.default_rng(0).bytes(nbytes)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        digest(data, DEFAULT_CHECKSUM)
        best = min(best, time.perf_counter() - t)
    return nbytes / best / 1e9


def arithmetic_rate(r: int, k: int, block_size: int, repeats: int = 5) -> float:
    """One core's rate, in GB of float16 probabilities per second, of the scoring arithmetic.

    Per epoch-block, on arrays already in memory (no file, no hash, no Ray): widen R
    float16 (block, K) arrays to float32, check them (row sums, no negatives), average
    over replicas, and take the entropy; plus the float64 action sum of R losses.
    """
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((r, block_size, k), dtype=np.float32)
    probs = np.exp(logits)
    probs /= probs.sum(-1, keepdims=True)
    half = probs.astype(np.float16)
    loss = rng.random((r, block_size), dtype=np.float32)
    acc = np.zeros(block_size)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        wide = np.empty((r, block_size, k), np.float32)
        for i in range(r):
            widen_probs(half[i], out=wide[i])
            assert probs_look_valid(wide[i])
        acc += entropy_float32(wide.mean(axis=0))
        acc += loss.astype(np.float64).mean(axis=0)
        best = min(best, time.perf_counter() - t)
    return half.nbytes / best / 1e9


def write_synthetic_run(
    run_dir: Path, n: int, k: int, r: int, e: int, block_size: int, fmt: str = "parquet"
) -> float:
    """Write R*E float16 shard sets of random predictions in ``fmt``; returns seconds taken."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, size=n)
    start = time.perf_counter()
    for ri in range(r):
        for ei in range(e):
            logits = rng.standard_normal((n, k), dtype=np.float32) * 2
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            loss = -np.log(probs[np.arange(n), labels])
            blocks = write_epoch_shards(
                run_dir, replica=ri, epoch=ei, probs=probs, loss=loss, labels=labels,
                margin=margins_from_logits(labels, logits), block_size=block_size, probs_dtype="float16",
                fmt=fmt, pred=logits.argmax(axis=1),
            )  # fmt: skip
            record_epoch(run_dir, replica=ri, epoch=ei, blocks=blocks)
        print(f"  wrote replica {ri + 1}/{r} ({time.perf_counter() - start:.0f} s)", flush=True)
    return time.perf_counter() - start


class PeakRSS:
    """Polls /proc for the largest VmHWM (peak RSS) of processes whose cmdline matches."""

    def __init__(self, needle: str) -> None:
        self.needle = needle.encode()
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if self.needle not in (proc / "cmdline").read_bytes():
                        continue
                    for line in (proc / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                except OSError:
                    continue

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def self_peak_kib() -> int:
    """This process's peak RSS in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _score(run_dir: Path, n: int, manifest: dict, blocks: int, shard_bytes: int, bandwidth: float,
           work: int, fmt: str) -> list[dict]:  # fmt: skip
    """Score one synthetic run through the pool; one result row per score set."""
    rows = []
    for label, names in (
        ("confusion + action", ["confusion", "action"]),
        ("12 label-aware scores", ALL_LABEL_AWARE),
    ):
        print(f"scoring {label} ({fmt} shards) through the Ray Data pool ...", flush=True)
        with PeakRSS("MapWorker") as rss:
            t = time.perf_counter()
            table = score_run(
                run_dir,
                replicas=manifest["replicas"],
                epochs=manifest["epochs"],
                num_blocks=blocks,
                scores=names,
            )
            wall = time.perf_counter() - t
        assert table.num_rows == n
        rows.append({
            "format": fmt,
            "scores": label,
            "wall_s": round(wall, 2),
            "actor_peak_rss_gib": round(rss.peak_kib / 2**20, 3),
            "shard_gb_per_s": round(shard_bytes / wall / 1e9, 3),
            "samples_epochs_replicas_per_s": round(work / wall),
            "fraction_of_copy_bandwidth": round(shard_bytes / wall / 1e9 / bandwidth, 4),
        })  # fmt: skip
        print(f"  {rows[-1]}", flush=True)
    return rows


def main() -> None:
    """Run the benchmark and write results/scoring.json and results/scoring.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--r", type=int, default=3)
    parser.add_argument("--e", type=int, default=20)
    parser.add_argument("--block-size", type=int, default=65_536)
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to write the synthetic runs (default: a temp dir)",
    )
    args = parser.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="hardbench-bench-"))
    print(f"memory copy bandwidth, {DEFAULT_CHECKSUM} and scoring-arithmetic rates ...", flush=True)
    bandwidth = copy_bandwidth()
    sha = checksum_rate()
    arith = arithmetic_rate(args.r, args.k, args.block_size)
    print(
        f"  copy {bandwidth:.1f} GB/s; per core: {DEFAULT_CHECKSUM} {sha:.2f}, arithmetic {arith:.2f} GB/s"
    )
    blocks = num_blocks(args.n, args.block_size)
    rows, shards = [], {}
    with ray_session() as cluster:
        cpus = cluster["cpus"]
        for fmt in ("parquet", "arrow"):
            run_dir = work / f"run-{fmt}"
            print(f"writing N={args.n:,} K={args.k} R={args.r} E={args.e} float16 {fmt} shards "
                  f"to {run_dir}", flush=True)  # fmt: skip
            write_s = write_synthetic_run(
                run_dir, args.n, args.k, args.r, args.e, args.block_size, fmt
            )
            shard_bytes = sum(f.stat().st_size for f in (run_dir / "preds").rglob(f"*.{fmt}"))
            shards[fmt] = {"bytes": shard_bytes, "write_s": round(write_s, 1)}
            manifest = consolidate_manifest(run_dir, replicas=args.r, epochs=args.e, blocks=blocks)
            rows += _score(run_dir, args.n, manifest, blocks, shard_bytes, bandwidth,
                           args.n * args.e * args.r, fmt)  # fmt: skip
            shutil.rmtree(run_dir, ignore_errors=True)
    # Every shard byte is hashed once and its probabilities go through the arithmetic once
    # (they are most of the bytes), so with perfect scaling over the CPUs:
    ceiling = cpus / (1 / sha + 1 / arith)
    result = {
        "config": {
            "n": args.n,
            "k": args.k,
            "r": args.r,
            "e": args.e,
            "block_size": args.block_size,
            "probs_dtype": "float16",
        },
        "machine": {
            "cpus": cpus,
            "platform": platform.platform(),
            "copy_bandwidth_gb_s": round(bandwidth, 2),
            "checksum": DEFAULT_CHECKSUM,
            "checksum_gb_s_per_core": round(sha, 2),
            "arithmetic_gb_s_per_core": round(arith, 2),
            "ceiling_gb_s": round(ceiling, 2),
            "ceiling_fraction_of_copy_bandwidth": round(ceiling / bandwidth, 4),
        },
        "shards": {**shards, "files": args.r * args.e * blocks},
        "driver_peak_rss_gib": round(self_peak_kib() / 2**20, 3),
        "scoring": rows,
        # the fastest pool run (Arrow IPC, confusion + action) against the ceiling
        "scoring_vs_ceiling": round(max(r["shard_gb_per_s"] for r in rows) / ceiling, 3),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scoring.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"Synthetic run N={args.n:,}, K={args.k}, R={args.r}, E={args.e}, float16 probabilities, "
        f"{result['shards']['files']} files per format (Parquet {shards['parquet']['bytes'] / 1e9:.2f} GB, "
        f"Arrow IPC {shards['arrow']['bytes'] / 1e9:.2f} GB, read from the page cache), {cpus:.0f} CPUs. "
        f"Measured in the same run: memory copy bandwidth {bandwidth:.1f} GB/s (STREAM-style); "
        f"per core, {DEFAULT_CHECKSUM} {sha:.2f} GB/s and the scoring arithmetic on in-memory float16 arrays "
        f"{arith:.2f} GB/s.",
        "",
        "| format | scores | wall (s) | pool actor peak RSS (GiB) | shard GB/s | fraction of copy bandwidth |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['format']} | {r['scores']} | {r['wall_s']} | {r['actor_peak_rss_gib']} | {r['shard_gb_per_s']} | {r['fraction_of_copy_bandwidth']:.2%} |"
            for r in rows
        ],
        f"| ceiling: hash + arithmetic on all {cpus:.0f} CPUs, no I/O or Ray | confusion + action | | | {ceiling:.2f} | {ceiling / bandwidth:.2%} |",
        "",
        f"Scoring vs ceiling (fastest pool run): {result['scoring_vs_ceiling']:.0%}.",
        "",
        f"Driver peak RSS (includes the 2 GiB copy-bandwidth probe and writing the shards): {result['driver_peak_rss_gib']} GiB.",
    ]  # fmt: skip
    (RESULTS / "scoring.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
