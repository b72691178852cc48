"""float16 shards against float32: row sums, entropy error and the ensemble's argmax.

Writes the same synthetic softmax predictions as float16 and float32 full shards and
reads both back through the real block reader (which renormalises widened float16
rows), then reports per K: how far rounded rows are off 1, the entropy error of the
replica mean against float32 with and without renormalising, and how often the
float16 ensemble's argmax differs from the float32 one, with the largest float32
top-2 gap among those flips (the docs bound it by 2**-11). Not a test: run it by hand
or with ``make bench``.

    python tests/perf/bench_float16.py --n 20000 --r 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from engine.scores import entropy
from engine.shards import BlockReader, record_epoch, write_epoch_shards

RESULTS = Path(__file__).resolve().parent / "results"
KS = (10, 1000)  # class counts measured
SCALES = (0.5, 2.0, 8.0)  # logit scales: flat to peaked distributions


def _softmax(x: np.ndarray) -> np.ndarray:
    p = np.exp(x - x.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def measure(n: int, r: int, k: int, scale: float, seed: int = 0) -> dict:
    """One (K, scale) cell: write both dtypes, read back, compare."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, k)) * scale
    logits = shared[None] + 0.3 * scale * rng.normal(size=(r, n, k))  # replicas that disagree a bit
    probs = _softmax(logits).astype(np.float32)
    labels = rng.integers(0, k, size=n)
    read = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float16", "float32"):
            run = Path(tmp) / dtype
            for i in range(r):
                blocks = write_epoch_shards(
                    run, replica=i, epoch=0, probs=probs[i], loss=np.ones(n, np.float32),
                    labels=labels, block_size=n, probs_dtype=dtype, pred=logits[i].argmax(1),
                )  # fmt: skip
                record_epoch(run, replica=i, epoch=0, blocks=blocks)
            read[dtype] = next(iter(BlockReader(run, 0, list(range(r)), [0])))
    rounded = probs.astype(np.float16).astype(np.float64)
    exact_mean = probs.astype(np.float64).mean(0)
    h_true = entropy(exact_mean)
    h_raw = entropy(np.clip(rounded.mean(0), 0, None))  # what the reader gave before
    h_read = read["float16"].mean_entropy
    flips = read["float16"].ensemble_pred != read["float32"].ensemble_pred
    top2 = np.sort(exact_mean, 1)[:, -2:]
    gaps = (top2[:, 1] - top2[:, 0])[flips]
    return {
        "k": k,
        "scale": scale,
        "max_row_off": float(np.abs(rounded.sum(-1) - 1).max()),
        "entropy_err_raw_max": float(np.abs(h_raw - h_true).max()),
        "entropy_err_raw_mean": float(np.abs(h_raw - h_true).mean()),
        "entropy_err_read_max": float(np.abs(h_read - h_true).max()),
        "entropy_err_read_mean": float(np.abs(h_read - h_true).mean()),
        "read_row_off_max": float(
            np.abs(read["float16"].probs.sum(-1, dtype=np.float64) - 1).max()
        ),
        "ensemble_flips": int(flips.sum()),
        "max_gap_of_a_flip": float(gaps.max()) if len(gaps) else 0.0,
    }


def main() -> None:
    """Run every (K, scale) cell and write JSON + Markdown under tests/perf/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--r", type=int, default=3)
    args = parser.parse_args()
    rows = [measure(args.n, args.r, k, s) for k in KS for s in SCALES]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "float16.json").write_text(
        json.dumps({"n": args.n, "r": args.r, "rows": rows}, indent=2)
    )
    lines = [
        f"float16 vs float32 full shards, N={args.n}, R={args.r} (`python tests/perf/bench_float16.py`)",
        "",
        "| K | logit scale | max row off 1 (float16) | entropy error, not renormalised: mean / max (nats) | "
        "entropy error as read (renormalised): mean / max | read rows off 1 | ensemble argmax flips | largest float32 gap of a flip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['k']} | {row['scale']} | {row['max_row_off']:.2e} | "
            f"{row['entropy_err_raw_mean']:.2e} / {row['entropy_err_raw_max']:.2e} | "
            f"{row['entropy_err_read_mean']:.2e} / {row['entropy_err_read_max']:.2e} | "
            f"{row['read_row_off_max']:.1e} | {row['ensemble_flips']} of {args.n} | "
            f"{row['max_gap_of_a_flip']:.2e} |"
        )
    (RESULTS / "float16.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
