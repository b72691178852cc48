"""Checksum benchmark: one core's digest rate of every ``shards.checksum`` algorithm.

Every shard byte is hashed once when it is written and once each time it is scored or
verified, so the algorithm's rate bounds how fast scoring can read shards. Digests a
64 MiB random buffer (larger than the caches, like a shard read from the page cache)
with each algorithm of :data:`engine.shards.checksums.CHECKSUMS`, best of several
repeats, and writes ``results/checksums.json``. Not a test: run it by hand.

    python tests/perf/bench_checksums.py
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from engine.shards.checksums import CHECKSUMS, digest

RESULTS = Path(__file__).resolve().parent / "results"
BUFFER_BYTES = 64 << 20  # bytes digested per repeat (64 MiB)
REPEATS = 7  # the best of this many repeats is reported


def digest_rate(algorithm: str, data: bytes, repeats: int = REPEATS) -> float:
    """Best-of-``repeats`` rate of ``algorithm`` over ``data`` on one core, in GB/s."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        digest(data, algorithm)
        best = min(best, time.perf_counter() - t)
    return len(data) / best / 1e9


def main() -> None:
    """Measure every algorithm, print one line each and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=BUFFER_BYTES)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    data = np.random.default_rng(0).bytes(args.bytes)
    rates = {name: digest_rate(name, data, args.repeats) for name in CHECKSUMS}
    for name, rate in rates.items():
        print(f"{name:>9}: {rate:6.2f} GB/s per core ({args.bytes / 2**20:.0f} MiB buffer)")
    RESULTS.mkdir(exist_ok=True)
    result = {
        "buffer_bytes": args.bytes,
        "repeats": args.repeats,
        "platform": platform.platform(),
        "processor": platform.processor(),
        "gb_s_per_core": {name: round(rate, 2) for name, rate in rates.items()},
    }
    (RESULTS / "checksums.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
