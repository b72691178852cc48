"""The label audit of a finished run: rank its samples, write the audit, apply verdicts.

The run-directory workflow around the pure audit functions of
:mod:`engine.evaluation.audit`: :func:`audit_run` reads a run's ``scores.parquet`` and
data and ranks its labelled samples by suspicion, each data split on its own unless
pooled; :func:`write_audit` writes ``<run>/audit/<UTC stamp>/`` (``audit.csv``,
``audit.html``, ``audit.json``, ``oof_probs.parquet``) and puts the held-out split's
estimated label-error rate on the benchmark card. A
reviewer's verdicts (``sample_id, verdict, corrected_label``) make a new labels version
under ``<run>/datasets/v<n>/`` (:func:`apply_verdicts`), logged as a nested MLflow run of
the build; the run's own files are never changed.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.evaluation.audit import (
    POOLED,
    Audit,
    build_audit,
    detection_metrics,
    issue_detection,
    out_of_fold_probs,
)
from engine.layout import AUDIT_DIR, DATASETS_DIR, RUN_FILE, SCORES_FILE
from engine.lifecycle.rundir import read_run_spec
from engine.shards import atomic_write_bytes, atomic_write_table
from engine.splits.card import record_label_errors
from engine.tasks import get_task, load_data

VERDICTS = ("keep", "relabel", "remove")  # what a reviewer may decide for a sample
AUDIT_SPLITS = ("train", "heldout", "all")  # the samples an audit may cover
AUDIT_CSV = "audit.csv"  # in an audit folder: every audited sample, most suspicious first
AUDIT_HTML = "audit.html"  # in an audit folder: the most suspicious samples, shown
AUDIT_JSON = "audit.json"  # in an audit folder: scores used, counts, label-error estimates
OOF_FILE = "oof_probs.parquet"  # in an audit folder: sample_id, label, probs (out-of-fold)
CARD_SPLIT = "heldout"  # the data split whose estimated label-error rate goes on the card
CL_METHOD = (  # how the estimate on the card was made, in words
    "confident learning (Northcutt et al. 2021): off-diagonal of the calibrated confident "
    "joint of out-of-fold probabilities"
)
LABELS_FILE = "labels.parquet"  # in a labels version: sample_id, original_label, label, removed
VERSION_CARD_JSON = "card.json"  # in a labels version: what changed, machine-readable
VERSION_CARD_MD = "card.md"  # in a labels version: what changed, for people
VERDICTS_FILE = "verdicts.csv"  # in a labels version: the verdicts as given
ORIGINAL_VERSION = "original"  # the parent of the first labels version: the run's own labels


def audit_run(
    run_dir: Path | str, *, split: str = "all", folds: int = 5, pool: bool = False
) -> Audit:
    """Rank a finished run's labelled samples by suspicion.

    The out-of-fold probabilities are cross-fitted over all audited samples (no sample
    is predicted by a model that saw it); ranks, percentiles and the confident-learning
    estimate are computed within each data split, or over all of them with ``pool``.

    Args:
        run_dir: A run with ``scores.parquet`` (label-aware scores) and ``spec.yaml``.
        split: ``train``, ``heldout`` or ``all`` samples.
        folds: Folds of the out-of-fold probabilities.
        pool: Rank the audited splits together (one ranking) instead of one per split.

    Returns:
        The audit.

    Raises:
        ValueError: For a label-free run, an unknown split, or no usable score.
    """
    run_dir = Path(run_dir)
    if split not in AUDIT_SPLITS:
        raise ValueError(f"split must be one of {', '.join(AUDIT_SPLITS)}, got {split!r}")
    scores_path = run_dir / SCORES_FILE
    if not scores_path.exists():
        raise ValueError(f"{run_dir} has no {SCORES_FILE}: audit a finished run")
    spec = read_run_spec(run_dir)
    scores = pq.read_table(scores_path)
    if "label" not in scores.column_names:  # a multi-label run: several classes per sample
        raise ValueError(
            f"{run_dir} is a {spec.task.name} run without one class per sample: the audit "
            "estimates wrong single labels (confident learning) and has no multi-label form"
        )
    if scores.column("label").null_count:
        raise ValueError("this run is label-free: there are no labels to audit")
    data = load_data(spec, run_dir)
    if get_task(spec.task.name).runtime().class_names(data) is None:
        raise ValueError(f"{run_dir} is a {spec.task.name} run: the audit needs class labels")
    idx = data.indices(split)
    ids = scores.column("sample_id").to_numpy()
    if not np.array_equal(ids, np.arange(len(data.labels))):
        raise ValueError(f"{scores_path} does not hold one row per sample in id order")
    if not np.array_equal(scores.column("label").to_numpy(), data.labels):
        raise ValueError(f"{scores_path} holds other labels than the run's data gives")
    oof = out_of_fold_probs(data, spec.replicas.recipe, idx, folds=folds)
    return build_audit(scores, data, idx, oof, pool=pool)


def _png_data_uri(image: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    buf = io.BytesIO()
    plt.imsave(buf, img, cmap="gray" if img.ndim == 2 else None, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def write_audit(
    run_dir: Path | str,
    audit: Audit,
    *,
    class_names: list[str],
    inputs: np.ndarray,
    top: int = 200,
    texts: list[str] | None = None,
) -> Path:
    """Write the audit folder and put the held-out label-error estimate on the card.

    ``audit.csv`` holds every audited sample (``ranking`` names the ranking a row's
    ``rank`` belongs to, ``issue`` marks the labels confident learning flags),
    ``audit.html`` the ``top`` first of each ranking (as images, or as their text for
    text data: ``texts``), ``audit.json`` the scores used, the estimated number of wrong
    labels (``num_label_issues``: total, per class, per ranking) and the estimated
    label-error rate of each data split with its bootstrap interval
    (``label_error_rate``), and ``oof_probs.parquet`` the out-of-fold probabilities
    (``sample_id`` int64, ``label`` int64, ``probs`` list<float64>, in sample-id order).
    When the audit covers held-out samples, the run's benchmark card (if any) records
    their estimated label-error rate (:func:`engine.splits.card.record_label_errors`).

    Returns:
        The audit folder ``<run>/audit/<UTC stamp>/``.
    """
    out = new_audit_folder(run_dir)
    cols = audit.table.column_names
    rows = audit.table.to_pylist()
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*cols, "label_name", "oof_pred_name"])
    for row in rows:
        writer.writerow(
            [row[c] for c in cols] + [class_names[row["label"]], class_names[row["oof_pred"]]]
        )
    atomic_write_bytes(out / AUDIT_CSV, buf.getvalue().encode())
    _write_oof(out / OOF_FILE, audit)
    sections = [
        _ranking_section(
            name,
            [r for r in rows if r["ranking"] == name],
            audit,
            class_names=class_names,
            inputs=inputs,
            top=top,
            texts=texts,
        )
        for name in audit.rankings
    ]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>hardbench audit</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}img{{image-rendering:pixelated}}
tr.disagree td{{background:#fff4e0}}tr.issue td:first-child{{border-left:4px solid #c00}}
tr.cut td{{background:#eee;text-align:center;font-style:italic}}
span.text{{display:block;text-align:left;max-width:40em}}</style></head><body>
<h1>Label audit: {html.escape(Path(run_dir).name)}</h1>
<p>{len(rows)} samples audited, ranked {ranked_how(audit)}. Audit score = mean suspicion
percentile of {", ".join(audit.scores_used)} within the ranking (1 = most suspicious). Rows
where the out-of-fold prediction disagrees with the given label are shaded; rows whose label
confident learning flags (<code>find_label_issues</code>, pruning by noise rate) are marked
with a red edge and "yes" under <i>issue</i>. Record verdicts in a CSV with columns
<code>sample_id,verdict,corrected_label</code> (verdict: keep, relabel or remove) and run
<code>hardbench relabel {html.escape(str(run_dir))} --verdicts FILE</code>.</p>
{"".join(sections)}
</body></html>"""
    atomic_write_bytes(out / AUDIT_HTML, page.encode())
    meta = {
        "scores_used": audit.scores_used,
        "samples": len(rows),
        "rankings": audit.rankings,
        "top_in_html": {name: min(top, est["samples"]) for name, est in audit.label_issues.items()},
        "num_label_issues": _issue_counts(audit, class_names),
        "label_error_rate": audit.error_rates,
        "oof_probs": OOF_FILE,
    }
    if "flipped" in cols:  # injected label noise: how well each score finds the flips
        meta["injected_noise_detection"] = detection_metrics(audit)
        meta["confident_learning_detection"] = issue_detection(audit)
    atomic_write_bytes(out / AUDIT_JSON, json.dumps(meta, indent=2).encode())
    if CARD_SPLIT in audit.error_rates:
        est = audit.error_rates[CARD_SPLIT]
        record_label_errors(
            run_dir,
            {
                "split": CARD_SPLIT,
                "rate": est["rate"],
                "ci95": est["ci95"],
                "num_label_issues": est["num_label_issues"],
                "samples": est["samples"],
                "method": CL_METHOD,
                "audit": f"{AUDIT_DIR}/{out.name}",
            },
        )
    return out


def new_audit_folder(run_dir: Path | str) -> Path:
    """Create ``<run>/audit/<UTC stamp>/`` (an existing one is an error: no overwrite)."""
    out = Path(run_dir) / AUDIT_DIR / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out.mkdir(parents=True, exist_ok=False)
    return out


def ranked_how(audit: Audit) -> str:
    """How the audit ranked its samples, in words for the page."""
    names = audit.rankings
    if names == [POOLED]:
        return "together (pooled over the audited splits)"
    return f"within each data split ({', '.join(names)})"


def _issue_counts(audit: Audit, class_names: list[str]) -> dict:
    """``num_label_issues`` of audit.json: the total, per class name and per ranking."""
    by_ranking = {
        name: {
            "total": est["num_label_issues"],
            "per_class": dict(zip(class_names, est["per_class"], strict=True)),
            "samples": est["samples"],
            "flagged": est["flagged"],
        }
        for name, est in audit.label_issues.items()
    }
    per_class = np.sum([est["per_class"] for est in audit.label_issues.values()], axis=0)
    return {
        "total": int(per_class.sum()),
        "per_class": {c: int(n) for c, n in zip(class_names, per_class, strict=True)},
        "by_ranking": by_ranking,
    }


def _write_oof(path: Path, audit: Audit) -> None:
    ids = audit.table.column("sample_id").to_numpy()
    order = np.argsort(ids, kind="stable")
    probs = np.asarray(audit.oof_probs, dtype=np.float64)[order]
    atomic_write_table(
        path,
        pa.table(
            {
                "sample_id": pa.array(ids[order], type=pa.int64()),
                "label": pa.array(audit.table.column("label").to_numpy()[order], type=pa.int64()),
                "probs": pa.array(list(probs), type=pa.list_(pa.float64())),
            }
        ),
    )


def _ranking_section(
    name: str,
    rows: list[dict],
    audit: Audit,
    *,
    class_names: list[str],
    inputs: np.ndarray,
    top: int,
    texts: list[str] | None,
) -> str:
    """One ranking of the page: its confident-learning estimate and its ``top`` rows."""
    est = audit.label_issues[name]
    n = est["num_label_issues"]
    shown = min(top, len(rows))
    score_cols = [*audit.scores_used, "audit_score"]
    cells = []
    for row in rows[:shown]:
        if texts is not None:
            sample = f'<span class="text">{html.escape(texts[row["sample_id"]])}</span>'
        else:
            img = _png_data_uri(inputs[row["sample_id"]])
            sample = f'<img src="{img}" width="64" height="64" alt="sample {row["sample_id"]}">'
        given, guess = class_names[row["label"]], class_names[row["oof_pred"]]
        classes = [c for c, on in (("disagree", row["label"] != row["oof_pred"]),
                                   ("issue", row["issue"])) if on]  # fmt: skip
        flag = f' class="{" ".join(classes)}"' if classes else ""
        scores_html = "".join(f"<td>{row[c]:.3f}</td>" for c in score_cols)
        cells.append(
            f"<tr{flag}><td>{row['rank']}</td><td>{row['sample_id']}</td><td>{html.escape(str(row['split']))}</td>"
            f"<td>{sample}</td>"
            f"<td>{html.escape(given)}</td><td>{html.escape(class_names[row['ensemble_pred']])}</td>"
            f"<td>{html.escape(guess)}</td>{scores_html}<td>{'yes' if row['issue'] else ''}</td></tr>"
        )
        if row["rank"] == n and n < shown:
            cells.append(
                f'<tr class="cut"><td colspan="{8 + len(score_cols)}">about {n} labels look '
                "wrong above this line (confident learning)</td></tr>"
            )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in score_cols)
    rate = audit.error_rates.get(name)
    rate_text = (
        f" Estimated label-error rate of the {html.escape(name)} split: {100 * rate['rate']:.1f}% "
        f"(95% bootstrap interval {100 * rate['ci95'][0]:.1f}% .. {100 * rate['ci95'][1]:.1f}%)."
        if rate
        else ""
    )
    more = f" ({shown} shown here; every sample is in {AUDIT_CSV})" if n > shown else ""
    return f"""<h2>Ranking: {html.escape(name)} ({len(rows)} samples)</h2>
<p>About {n} labels look wrong (confident learning); the top {n} are listed first{more}.
{est["flagged"]} are flagged individually.{rate_text} The {shown} most suspicious are shown.</p>
<table><tr><th>rank</th><th>sample</th><th>split</th><th>{"text" if texts is not None else "image"}</th><th>given label</th>
<th>ensemble pred</th><th>out-of-fold pred</th>{head}<th>issue</th></tr>
{"".join(cells)}
</table>
"""


def read_verdicts(path: Path | str, *, num_samples: int, num_classes: int) -> list[dict]:
    """Parse and check a reviewer's verdict CSV.

    Raises:
        ValueError: Naming the line of the first bad row (unknown sample, verdict or
            label, a relabel without a label, a sample listed twice).
    """
    rows, seen = [], set()
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"sample_id", "verdict"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            where = f"{path} line {line}"
            try:
                sid = int(row["sample_id"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{where}: sample_id {row['sample_id']!r} is not an integer"
                ) from None
            if not 0 <= sid < num_samples:
                raise ValueError(f"{where}: sample_id {sid} is not in [0, {num_samples})")
            if sid in seen:
                raise ValueError(f"{where}: sample_id {sid} has a verdict already")
            verdict = (row["verdict"] or "").strip().lower()
            if verdict not in VERDICTS:
                raise ValueError(
                    f"{where}: verdict {row['verdict']!r} is not one of {', '.join(VERDICTS)}"
                )
            corrected = (row.get("corrected_label") or "").strip()
            label = None
            if verdict == "relabel":
                if not corrected.lstrip("-").isdigit() or not 0 <= int(corrected) < num_classes:
                    raise ValueError(
                        f"{where}: relabel needs corrected_label in [0, {num_classes}), got {corrected!r}"
                    )
                label = int(corrected)
            seen.add(sid)
            rows.append({"sample_id": sid, "verdict": verdict, "corrected_label": label})
    return rows


def apply_verdicts(run_dir: Path | str, verdicts_path: Path | str) -> dict:
    """Write a new labels version from a reviewer's verdicts; the run's files stay as they are.

    The version ``<run>/datasets/v<n>/`` holds ``labels.parquet`` (``sample_id,
    original_label, label, removed``), the verdicts as given, and ``card.json`` /
    ``card.md`` recording the change (counts, per-class moves, the parent version).
    It is logged as a nested MLflow run of the build when the run has one.

    Returns:
        ``{"version", "dir", "relabelled", "removed", "kept", "mlflow_run"}``.
    """
    run_dir = Path(run_dir)
    spec = read_run_spec(run_dir)
    data = load_data(spec, run_dir)
    verdicts = read_verdicts(
        verdicts_path, num_samples=len(data.labels), num_classes=data.num_classes
    )
    base = run_dir / DATASETS_DIR
    base.mkdir(exist_ok=True)
    previous = sorted(int(p.name[1:]) for p in base.glob("v*") if p.name[1:].isdigit())
    version = (previous[-1] + 1) if previous else 1
    parent = f"v{previous[-1]}" if previous else ORIGINAL_VERSION
    labels = data.labels.copy()
    removed = np.zeros(len(labels), dtype=bool)
    if previous:  # versions build on the latest one
        prev = pq.read_table(base / parent / LABELS_FILE)
        labels = prev.column("label").to_numpy().copy()
        removed = prev.column("removed").to_numpy(zero_copy_only=False).copy()
    moves: dict[str, int] = {}
    for v in verdicts:
        sid = v["sample_id"]
        if v["verdict"] == "relabel" and labels[sid] != v["corrected_label"]:
            key = f"{data.class_names[labels[sid]]} -> {data.class_names[v['corrected_label']]}"
            moves[key] = moves.get(key, 0) + 1
            labels[sid] = v["corrected_label"]
        elif v["verdict"] == "remove":
            removed[sid] = True
    out = base / f"v{version}"
    out.mkdir()
    atomic_write_table(
        out / LABELS_FILE,
        pa.table(
            {
                "sample_id": np.arange(len(labels), dtype=np.int64),
                "original_label": data.labels.astype(np.int64),
                "label": labels.astype(np.int64),
                "removed": removed,
            }
        ),
    )
    counts = {k: sum(v["verdict"] == k for v in verdicts) for k in VERDICTS}
    card = {
        "version": f"v{version}",
        "parent": parent,
        "run_id": run_dir.name,
        "verdicts_file": str(Path(verdicts_path).resolve()),
        "verdicts": counts,
        "labels_changed_vs_original": int((labels != data.labels).sum()),
        "removed_total": int(removed.sum()),
        "moves": dict(sorted(moves.items(), key=lambda kv: -kv[1])),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_bytes(out / VERSION_CARD_JSON, json.dumps(card, indent=2).encode())
    md = [f"# Labels {card['version']} of run {run_dir.name}", "",
          f"Parent: {parent}. Verdicts: {counts['relabel']} relabel, {counts['remove']} remove, "
          f"{counts['keep']} keep. Labels differing from the original: "
          f"{card['labels_changed_vs_original']}; removed in total: {card['removed_total']}.", "",
          "| move | samples |", "|---|---|", *[f"| {k} | {n} |" for k, n in card["moves"].items()]]  # fmt: skip
    atomic_write_bytes(out / VERSION_CARD_MD, ("\n".join(md) + "\n").encode())
    atomic_write_bytes(out / VERDICTS_FILE, Path(verdicts_path).read_bytes())
    card["mlflow_run"] = _log_version(run_dir, out, card)
    return {"version": card["version"], "dir": out, "relabelled": counts["relabel"],
            "removed": counts["remove"], "kept": counts["keep"], "mlflow_run": card["mlflow_run"]}  # fmt: skip


def _log_version(run_dir: Path, out: Path, card: dict) -> str | None:
    status_file = run_dir / RUN_FILE
    info = json.loads(status_file.read_text()).get("mlflow") if status_file.exists() else None
    if not info:
        return None
    from mlflow.tracking import MlflowClient

    from engine.tracking.mlflow_log import reconnect_uri

    client = MlflowClient(tracking_uri=reconnect_uri(info["tracking_uri"]))
    run = client.create_run(
        info["experiment_id"],
        run_name=f"labels-{card['version']}",
        tags={"mlflow.parentRunId": info["parent_run_id"], "hardbench.kind": "labels_version"},
    )
    rid = run.info.run_id
    for key in ("version", "parent"):
        client.log_param(rid, key, card[key])
    for key, value in card["verdicts"].items():
        client.log_metric(rid, f"verdict_{key}", value)
    client.log_metric(rid, "labels_changed_vs_original", card["labels_changed_vs_original"])
    client.log_metric(rid, "removed_total", card["removed_total"])
    for name in (LABELS_FILE, VERSION_CARD_JSON, VERSION_CARD_MD, VERDICTS_FILE):
        client.log_artifact(rid, str(out / name), artifact_path=f"labels/{card['version']}")
    client.set_terminated(rid)
    return rid
