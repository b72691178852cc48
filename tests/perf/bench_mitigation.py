"""Mitigation study: ERM vs GroupDRO, upsampling and curriculum, several seeds each.

Runs a mitigation spec end to end (``benchmarks/digits-mitigation.yaml`` by default:
replicas, confusion scores, hard split, 20 evaluated models logged to MLflow as nested
runs with their mitigation params; ``benchmarks/sentiment-curriculum.yaml`` does the
same for text) and tabulates, per method (the model name without its ``_s<seed>``
suffix), the mean and 95% t-interval over seeds of the error on the whole held-out
pool, on the hard split (top 10% by confusion), on the rest, and on the paper's two
confusion bands (below and at or above ln K / 2 nats, the groups of
``groupdro_bands``). Writes ``results/mitigation.{json,md}`` for the digits spec and
``results/mitigation-<spec name>.{json,md}`` for any other. Not a test:

    python tests/perf/bench_mitigation.py [--spec SPEC] [--set KEY=VALUE ...] [--runs-dir runs]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy import stats

from engine.lifecycle import run_benchmark
from engine.spec import load_spec

RESULTS = Path(__file__).resolve().parent / "results"
SPEC = Path(__file__).resolve().parents[2] / "benchmarks" / "digits-mitigation.yaml"
METRICS = ("error_all", "error_hard", "error_rest", "error_low_band", "error_high_band")
ERROR_OF = {"qa": "1 - EM", "seq2seq": "1 - ROUGE-L"}  # what a text task's error is


def band_errors(run_dir: Path, evaluations: list[dict], num_classes: int) -> None:
    """Add each model's error below and at or above ln K / 2 nats of confusion (in place)."""
    preds = pq.read_table(run_dir / "eval" / "predictions.parquet")
    pool = pq.read_table(run_dir / "benchmark" / "splits" / "pool.parquet")
    assert preds.column("sample_id").equals(pool.column("sample_id"))
    high = pool.column("confusion").to_numpy() >= np.log(num_classes) / 2
    labels = preds.column("label").to_numpy()
    for ev in evaluations:
        wrong = preds.column(f"pred_{ev['model']}").to_numpy() != labels
        ev["error_low_band"] = float(wrong[~high].mean())
        ev["error_high_band"] = float(wrong[high].mean())
        ev["band_sizes"] = [int((~high).sum()), int(high.sum())]


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval."""
    v = np.asarray(values, dtype=np.float64)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
    return float(v.mean()), float(half)


def main() -> None:
    """Run the spec and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC, help="a spec whose evaluated "
                        "models are named <method>_s<seed> (default: %(default)s)")  # fmt: skip
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a spec field, as hardbench run "
                        "--set (e.g. data.limit=2000 for a quicker text study)")  # fmt: skip
    args = parser.parse_args()
    spec = load_spec(args.spec, args.overrides)
    result = run_benchmark(spec, runs_dir=args.runs_dir, log=print)
    card = json.loads((result.run_dir / "benchmark" / "card.json").read_text())
    classes = card.get("class_names")  # None for QA and seq2seq: no ln K / 2 bands
    models = [ev for ev in result.evaluations if ev["model"] != "ensemble"]
    metrics = METRICS if classes else METRICS[:3]
    if classes:
        band_errors(result.run_dir, models, len(classes))
    by_method: dict[str, list[dict]] = {}
    for ev in result.evaluations:
        if ev["model"] == "ensemble":
            continue
        by_method.setdefault(ev["model"].rsplit("_s", 1)[0], []).append(ev)
    table = {
        method: {m: mean_ci([ev[m] for ev in evs]) for m in metrics} | {"seeds": len(evs)}
        for method, evs in by_method.items()
    }
    out = {"run_id": result.run_id, "mlflow": result.mlflow, "methods": table,
           "timings_s": result.timings}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    stem = "mitigation" if args.spec.resolve() == SPEC else f"mitigation-{spec.metadata.name}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=2, default=str))
    erm = table["erm"]
    recipe = spec.evaluate.models[0].recipe
    what = getattr(recipe, "model", None) or f"{spec.task.name} model (dim {recipe.dim})"
    lines = [
        f"{spec.metadata.name} ({args.spec}"
        + "".join(f" --set {o}" for o in args.overrides)
        + f"): {what}, {recipe.epochs} epochs, {erm['seeds']} "
        f"seeds per method; errors ({ERROR_OF.get(spec.task.name, 'top-1')}) on the held-out pool, "
        f"its hard split (by the replicas' {spec.splits.score}) and the rest"
        + (
            f", and the paper's two bands (confusion below / at or above ln {len(classes)} / 2 "
            f"= {np.log(len(classes)) / 2:.2f} nats: {models[0]['band_sizes'][0]} / "
            f"{models[0]['band_sizes'][1]} samples)"
            if classes
            else ""
        )
        + f"; mean ± 95% t-interval over seeds. Run {result.run_id}, logged to MLflow "
        f"experiment '{spec.tracking.experiment}'.",
        "",
        "| method | error, all | error, hard split | error, rest |"
        + (" low band | high band |" if classes else "")
        + " hard vs ERM |",
        "|---|---|---|---|" + ("---|---|" if classes else "") + "---|",
    ]
    for method, row in table.items():
        cells = [f"{100 * row[m][0]:.2f}% ± {100 * row[m][1]:.2f}" for m in metrics]
        delta = 100 * (row["error_hard"][0] - erm["error_hard"][0])
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {delta:+.2f} pts |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
