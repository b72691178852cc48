"""The NLP difficulty study: action vs confusion vs VoG vs data maps on every text task.

Can the action score (loss accumulated over epochs) measure difficulty in NLP? For
sentiment (classification with VoG on the embedded tokens), extractive QA and
seq2seq, this runs the shipped spec end to end and tabulates what the build wrote to
``eval/score_comparison.json``: the Spearman agreement of action, confusion, VoG,
data-map confidence and variability (all, train, held-out) and each score's AUROC
with a bootstrap interval as a predictor of the larger model's misses. Then, as an
auditing tool: for QA and seq2seq a run with ``fraction`` of the answers corrupted on
purpose (wrong spans, swapped targets) is audited, and each score's detection AUROC
and precision at the true count are tabulated per data split. Writes
``results/nlp_study.{json,md}``. Not a test:

    python tests/perf/bench_nlp_study.py [--runs-dir runs/nlp] [--skip-full] [--skip-audit]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from engine.evaluation.score_comparison import read_score_comparison
from engine.evaluation.text_audit import detection_by_ranking
from engine.lifecycle import run_benchmark
from engine.lifecycle.text_audit import audit_text_run
from engine.spec import load_spec

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[2]
SENTIMENT_SCORES = "confusion,action,aum,forgetting,el2n,confidence,variability,correctness,vog"
TEXT_SCORES = "confusion,action,aum,forgetting,confidence,variability,correctness,vog"
# task -> (spec, overrides): the shipped specs with VoG added (3 checkpoints of 6 epochs
# for sentiment, 2 of 4 for QA and seq2seq)
STUDY = {
    "sentiment": (
        "benchmarks/sentiment.yaml",
        [f"scores=[{SENTIMENT_SCORES}]", "shards.grad_epochs=[1,3,5]"],
    ),
    "qa": ("benchmarks/quoref-qa.yaml", [f"scores=[{TEXT_SCORES}]", "shards.grad_epochs=[1,3]"]),
    "seq2seq": (
        "benchmarks/qasc-fusion.yaml",
        [f"scores=[{TEXT_SCORES}]", "shards.grad_epochs=[1,3]"],
    ),
}
# the text tasks whose answers the study corrupts and audits -> their extra overrides (QA
# needs no evaluated model for the audit; a seq2seq run must evaluate one: no ensemble row)
AUDITED = {"qa": ["evaluate.models=[]"], "seq2seq": []}
NOISE = 0.1  # share of answers corrupted for the audit study
AUDIT_LIMIT = 2000  # samples of each audit run (the first of the corpus)
PAIRS = ("action", "confusion", "vog", "confidence", "variability")  # Spearman table order


def _num(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.3f}"


def score_tables(
    task: str, comparison: dict, seconds: float, spec: str, sets: list[str]
) -> list[str]:
    """The Markdown of one task: its Spearman pairs and its AUROC table."""
    names = comparison["scores"]
    command = f"hardbench run {spec}" + "".join(f" --set '{s}'" for s in sets)
    lines = [f"### {task}", "", f"`{command}` ({seconds:.0f} s on 2 cores)", "",
             "| pair | all | train | held-out |", "|---|---|---|---|"]  # fmt: skip
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            cells = [_num(comparison["spearman"][p][i][j]) for p in ("all", "train", "heldout")]
            lines.append(f"| {a} vs {names[j]} | " + " | ".join(cells) + " |")
    lines += ["", "| AUROC for the misses of | misses | " + " | ".join(comparison["auroc"][
        next(iter(comparison["auroc"]))]) + " |"]  # fmt: skip
    lines.append("|---|---|" + "---|" * len(comparison["auroc"][next(iter(comparison["auroc"]))]))
    for model, aucs in comparison["auroc"].items():
        cis = comparison["auroc_ci95"][model]
        cells = [f"{_num(v)} [{_num(cis[k][0])}, {_num(cis[k][1])}]" for k, v in aucs.items()]
        label = f"{model} (scorer, in-sample)" if model == "ensemble" else model
        count = f"{comparison['misses'][model]} of {comparison['pool_size']}"
        lines.append(f"| {label} | {count} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def audit_tables(task: str, detection: dict, spec: str, sets: list[str]) -> list[str]:
    """The Markdown of one audit: each score's detection of the corrupted answers."""
    command = f"hardbench run {spec}" + "".join(f" --set '{s}'" for s in sets)
    lines = [f"### {task}: {NOISE:.0%} of the answers corrupted", "",
             f"`{command}`, then `hardbench audit RUN`", "",
             "| split | corrupted | score | AUROC | precision at the true count |",
             "|---|---|---|---|---|"]  # fmt: skip
    for split, found in detection.items():
        count = f"{found['corrupted']['count']} of {found['corrupted']['samples']}"
        for score, m in found.items():
            if score != "corrupted":
                lines.append(f"| {split} | {count} | {score} | {_num(m['auroc'])} | "
                             f"{_num(m['precision_at_m'])} |")  # fmt: skip
    return [*lines, ""]


def main() -> None:
    """Run the study and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default="runs/nlp")
    parser.add_argument("--skip-full", action="store_true", help="only the audit runs")
    parser.add_argument("--skip-audit", action="store_true", help="only the full runs")
    args = parser.parse_args()
    out: dict = {"comparisons": {}, "audits": {}}
    lines = ["# The NLP difficulty study (tests/perf/bench_nlp_study.py)", ""]
    if not args.skip_full:
        for task, (spec, sets) in STUDY.items():
            start = time.perf_counter()
            result = run_benchmark(load_spec(ROOT / spec, sets), runs_dir=args.runs_dir,
                                   log=print)  # fmt: skip
            seconds = time.perf_counter() - start
            comparison = read_score_comparison(result.run_dir)
            out["comparisons"][task] = {"run": str(result.run_dir), "seconds": seconds,
                                        **comparison}  # fmt: skip
            lines += score_tables(task, comparison, seconds, spec, sets)
    if not args.skip_audit:
        for task, extra in AUDITED.items():
            spec, _ = STUDY[task]
            sets = [f"data.label_noise={{fraction: {NOISE}, seed: 0}}",
                    f"data.limit={AUDIT_LIMIT}", *extra]  # fmt: skip
            result = run_benchmark(load_spec(ROOT / spec, sets), runs_dir=args.runs_dir,
                                   log=print)  # fmt: skip
            detection = detection_by_ranking(audit_text_run(result.run_dir))
            out["audits"][task] = {"run": str(result.run_dir), "detection": detection}
            lines += audit_tables(task, detection, spec, sets)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nlp_study.json").write_text(json.dumps(out, indent=2, default=str))
    (RESULTS / "nlp_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
