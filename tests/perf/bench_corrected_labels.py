"""Benchmarks on corrected labels: does fixing the pool's wrong labels change the ranking?

Runs a spec with ``fraction`` of the labels flipped on purpose (default: the 25 MLPs
of ``benchmarks/digits-mitigation.yaml``, 10% uniform noise), writes a labels version
that restores the clean label of every flipped pool sample (as a perfect reviewer
would, through ``hardbench relabel``), and re-measures every evaluated model on the
original and the corrected labels (``hardbench eval RUN --labels v1``): errors side by
side and both rankings, flagged where they change (Northcutt et al., "Pervasive label
errors in test sets destabilize ML benchmarks"). Writes
``results/corrected_labels.{json,md}``. Not a test:

    python tests/perf/bench_corrected_labels.py [--spec SPEC] [--runs-dir runs/labels]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from engine.lifecycle import run_benchmark
from engine.lifecycle.audit import apply_verdicts
from engine.lifecycle.eval_model import evaluate_run_on_labels
from engine.spec import load_spec
from engine.tasks import load_data

RESULTS = Path(__file__).resolve().parent / "results"
SPEC = Path(__file__).resolve().parents[2] / "benchmarks" / "digits-mitigation.yaml"
NOISE = "data.label_noise={fraction: 0.1, kind: uniform, seed: 4}"  # the injected errors


def main() -> None:
    """Run, relabel the flipped pool samples, re-measure, write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--runs-dir", default="runs/labels")
    args = parser.parse_args()
    spec = load_spec(args.spec, [NOISE])
    result = run_benchmark(spec, runs_dir=args.runs_dir, log=print)
    data = load_data(spec, result.run_dir)
    pool_file = result.run_dir / "benchmark" / "splits" / "pool.parquet"
    pool = pq.read_table(pool_file, columns=["sample_id"]).column(0).to_numpy()
    flipped = pool[data.labels[pool] != data.clean_labels[pool]]
    verdicts = result.run_dir / "perfect_review.csv"
    verdicts.write_text("sample_id,verdict,corrected_label\n" + "".join(
        f"{s},relabel,{data.clean_labels[s]}\n" for s in flipped))  # fmt: skip
    version = apply_verdicts(result.run_dir, verdicts)["version"]
    record = evaluate_run_on_labels(result.run_dir, version)
    out = {"run": str(result.run_dir), "spec": str(args.spec), "noise": NOISE,
           "pool": len(pool), "relabelled": len(flipped), **{
               k: v for k, v in record.items() if k not in ("table",)}}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "corrected_labels.json").write_text(json.dumps(out, indent=2, default=str))
    text = (f"{args.spec.name} with `{NOISE}`: {len(flipped)} of {len(pool)} pool labels "
            f"flipped, restored by labels {version}; `hardbench eval RUN --labels {version}`:")  # fmt: skip
    (RESULTS / "corrected_labels.md").write_text(f"{text}\n\n```\n{record['table']}\n```\n")
    print(text, record["table"], sep="\n")
    assert np.all(data.labels[flipped] != data.clean_labels[flipped])


if __name__ == "__main__":
    main()
