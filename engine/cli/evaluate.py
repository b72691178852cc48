"""Commands that measure models on finished runs: eval, compare, audit, relabel."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from engine.cli.common import EXIT_BAD_INPUT, default_runs_dir

AUDIT_ROWS_PRINTED = 5  # rows of each ranking hardbench audit prints (the page has the rest)


def _actors(value: str | None) -> int | str | None:
    """``--actors``: None (the spec's), ``auto`` or a number >= 1."""
    if value is None or value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"--actors must be 'auto' or an integer >= 1, got {value!r}")
    return n


def cmd_eval(args: argparse.Namespace) -> int:
    """``hardbench eval RUN``: measure a registered or MLflow-logged model on a split.

    With ``--labels v<n>``, on the original and the corrected labels side by side; with
    ``--labels`` alone, the run's own models are re-measured from their predictions.
    """
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import yaml

    from engine.lifecycle import RunSetupError, evaluate_model_on_run
    from engine.lifecycle.eval_model import evaluate_run_on_labels

    if args.model is None and args.model_uri is None:
        if args.labels is None:
            print("hardbench: eval needs --model, --model-uri or --labels", file=sys.stderr)
            return EXIT_BAD_INPUT
        try:
            record = evaluate_run_on_labels(args.run_dir, args.labels)
        except (RunSetupError, FileNotFoundError, ValueError) as exc:
            print(f"hardbench: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(record["table"])
        print(f"written: {', '.join(record['files'])}")
        if record["mlflow_runs"]:
            print(
                f"logged {len(record['mlflow_runs'])} MLflow runs tagged labels_version={args.labels}"
            )
        return 0
    model_kwargs = {}
    for item in args.model_kwargs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"hardbench: --model-kwargs takes KEY=VALUE, got {item!r}", file=sys.stderr)
            return EXIT_BAD_INPUT
        model_kwargs[key] = yaml.safe_load(value)
    try:
        ev = evaluate_model_on_run(
            args.run_dir,
            model=args.model,
            model_uri=args.model_uri,
            label=args.label,
            pretrained=args.pretrained,
            weights_file=args.weights_file,
            model_kwargs=model_kwargs or None,
            split=args.split,
            num_cpus=args.num_cpus,
            actors=_actors(args.actors),
            cpus_per_actor=args.cpus_per_actor,
            gpus_per_actor=args.gpus_per_actor,
            labels=args.labels,
        )
    except (RunSetupError, FileNotFoundError, ValueError) as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    lo, hi = ev["error_all_ci95"]
    line = f"{ev['model']} on {ev['split']}: error {100 * ev['error_all']:.1f}% (95% CI {100 * lo:.1f}..{100 * hi:.1f}%)"
    if "error_hard" in ev:
        line += f", hard {100 * ev['error_hard']:.1f}%, rest {100 * ev['error_rest']:.1f}%, Pearson rho {ev['pearson_rho']:+.3f}"
    print(line)
    if ev.get("mlflow_run"):
        print(f"logged as MLflow run {ev['mlflow_run']}")
    if "labels_comparison" in ev:
        print(ev["labels_comparison"]["table"])
        print(f"written: {', '.join(ev['labels_comparison']['files'])}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``hardbench compare [EXPERIMENT]``: the robustness table across builds, from MLflow."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from engine.tracking.compare import fetch_model_runs, format_compare_table
    from engine.tracking.mlflow_log import resolve_tracking_uri

    uri = args.tracking_uri or resolve_tracking_uri(args.runs_dir or default_runs_dir())
    try:
        rows = fetch_model_runs(
            args.experiment, tracking_uri=uri, build=args.run_id, labels=args.labels
        )
    except ValueError as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_compare_table(rows, labels=args.labels))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """``hardbench audit RUN``: rank samples by how suspicious their labels are."""
    from engine.layout import SPEC_FILE
    from engine.lifecycle.audit import audit_run, write_audit
    from engine.lifecycle.rundir import read_run_spec
    from engine.lifecycle.text_audit import TEXT_AUDIT_TASKS

    if not (args.run_dir / SPEC_FILE).exists():
        print(f"hardbench: {args.run_dir} is not a run directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    if read_run_spec(args.run_dir).task.name in TEXT_AUDIT_TASKS:
        return _audit_text_answers(args)
    try:
        audit = audit_run(args.run_dir, split=args.split, folds=args.folds, pool=args.pool)
    except ValueError as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    data = audit.data  # loaded once by the audit (text data retrains its tokenizer)
    out = write_audit(
        args.run_dir,
        audit,
        class_names=data.class_names,
        inputs=data.inputs,
        top=args.top,
        texts=data.texts,
    )
    print(f"audited {audit.table.num_rows} samples on {', '.join(audit.scores_used)}")
    for name, est in audit.label_issues.items():
        rate, ci = audit.error_rates.get(name), ""
        if rate:  # a ranking of one data split: its rate and interval
            low, high = rate["ci95"]
            ci = f", rate {rate['rate']:.1%} (95% CI {low:.1%} .. {high:.1%})"
        print(
            f"ranking {name}: about {est['num_label_issues']} of {est['samples']} labels look "
            f"wrong (confident learning){ci}; {est['flagged']} flagged"
        )
    _print_audit_top(
        audit, out, "given  oof_pred  audit_score  issue",
        lambda row: f"{data.class_names[row['label']]:>5}  "
        f"{data.class_names[row['oof_pred']]:>8}  {row['audit_score']:>11.3f}  "
        f"{'yes' if row['issue'] else ''}",
    )  # fmt: skip
    return 0


def _print_audit_top(audit: object, out: object, header: str, cells: Callable[[dict], str]) -> None:
    """The first rows of each ranking (``cells`` gives a row's columns after its sample id)."""
    from engine.lifecycle.audit import AUDIT_CSV, AUDIT_HTML

    rows = audit.table.to_pylist()
    print(f"ranking  rank  sample  {header}")
    for name in audit.rankings:
        for row in [r for r in rows if r["ranking"] == name][:AUDIT_ROWS_PRINTED]:
            print(f"{name:>7}  {row['rank']:>4}  {row['sample_id']:>6}  {cells(row)}")
    print(f"audit: {out / AUDIT_CSV}")
    print(f"page: {out / AUDIT_HTML}")


def _audit_text_answers(args: argparse.Namespace) -> int:
    """``hardbench audit`` on a QA or seq2seq run: answers ranked by training dynamics."""
    from engine.lifecycle.text_audit import audit_text_run, write_text_audit

    try:
        audit = audit_text_run(args.run_dir, split=args.split, pool=args.pool)
    except ValueError as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = write_text_audit(args.run_dir, audit, top=args.top)
    print(f"audited {audit.table.num_rows} answers on {', '.join(audit.scores_used)} "
          "(training dynamics; no class probabilities, so no confident-learning estimate)")  # fmt: skip
    _print_audit_top(audit, out, "audit_score", lambda row: f"{row['audit_score']:>11.3f}")
    return 0


def cmd_relabel(args: argparse.Namespace) -> int:
    """``hardbench relabel RUN --verdicts FILE``: a new labels version from a review."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from engine.layout import SPEC_FILE
    from engine.lifecycle.audit import apply_verdicts

    if not (args.run_dir / SPEC_FILE).exists():
        print(f"hardbench: {args.run_dir} is not a run directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        out = apply_verdicts(args.run_dir, args.verdicts)
    except (ValueError, FileNotFoundError) as exc:
        print(f"hardbench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"labels {out['version']}: {out['relabelled']} relabelled, {out['removed']} removed, "
        f"{out['kept']} kept -> {out['dir']}"
    )
    if out["mlflow_run"]:
        print(f"logged as MLflow run {out['mlflow_run']}")
    return 0
