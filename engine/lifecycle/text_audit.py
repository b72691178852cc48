"""The answer audit of a finished QA or seq2seq run: rank its samples, write the audit.

The run-directory workflow around :mod:`engine.evaluation.text_audit`:
:func:`audit_text_run` reads a run's ``scores.parquet`` and samples and ranks them by
the training-dynamics scores; :func:`write_text_audit` writes
``<run>/audit/<UTC stamp>/`` (``audit.csv``, ``audit.html``, ``audit.json``) as the
classification audit does, showing each sample's question or source, its given answer
and (QA) the replicas' ensemble answer. A text answer has no class to relabel to:
``hardbench relabel`` takes classification runs only.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from engine.data.qa import QAData
from engine.evaluation.audit import Audit
from engine.evaluation.text_audit import build_text_audit, detection_by_ranking
from engine.layout import SCORES_FILE
from engine.lifecycle.audit import (
    AUDIT_CSV,
    AUDIT_HTML,
    AUDIT_JSON,
    AUDIT_SPLITS,
    new_audit_folder,
    ranked_how,
)
from engine.lifecycle.rundir import read_run_spec
from engine.shards import atomic_write_bytes
from engine.tasks import load_data

TEXT_AUDIT_TASKS = ("qa", "seq2seq")  # tasks whose answers the text audit ranks


def audit_text_run(run_dir: Path | str, *, split: str = "all", pool: bool = False) -> Audit:
    """Rank a finished QA or seq2seq run's samples by how suspicious their answer is.

    Args:
        run_dir: A QA or seq2seq run with ``scores.parquet`` and ``spec.yaml``.
        split: ``train``, ``heldout`` or ``all`` samples.
        pool: Rank the audited splits together instead of one ranking per split.

    Returns:
        The audit (:func:`engine.evaluation.text_audit.build_text_audit`), its ``data``
        the run's samples.

    Raises:
        ValueError: For another task, an unknown split, an unfinished run, or scores
            that do not match the run's samples.
    """
    run_dir = Path(run_dir)
    if split not in AUDIT_SPLITS:
        raise ValueError(f"split must be one of {', '.join(AUDIT_SPLITS)}, got {split!r}")
    spec = read_run_spec(run_dir)
    if spec.task.name not in TEXT_AUDIT_TASKS:
        raise ValueError(f"{run_dir} is a {spec.task.name} run: the answer audit takes "
                         f"{' and '.join(TEXT_AUDIT_TASKS)} runs")  # fmt: skip
    scores_path = run_dir / SCORES_FILE
    if not scores_path.exists():
        raise ValueError(f"{run_dir} has no {SCORES_FILE}: audit a finished run")
    scores = pq.read_table(scores_path)
    data = load_data(spec, run_dir)
    if not np.array_equal(scores.column("sample_id").to_numpy(), np.arange(len(data))):
        raise ValueError(f"{scores_path} does not hold one row per sample of the run, in id order")
    split_of = np.asarray(data.split).astype(str)
    idx = np.arange(len(data)) if split == "all" else np.flatnonzero(split_of == split)
    if len(idx) == 0:
        raise ValueError(f"{run_dir} has no {split} samples to audit")
    return build_text_audit(scores, split_of, idx, data.corrupted, pool=pool, data=data)


def _texts(data: object, scores_path: Path) -> tuple[list[str], list[str], list[str] | None]:
    """Per sample: what was asked (question / source), the given answer, the ensemble's."""
    if isinstance(data, QAData):
        code = pq.read_table(scores_path, columns=["ensemble_pred"]).column(0).to_numpy()
        length = data.input_ids.shape[1]
        guess = [data.span_text(i, c // length, c % length) for i, c in enumerate(code)]
        return list(data.questions), list(data.answers), guess
    return list(data.sources), [r[0] for r in data.references], None


def write_text_audit(run_dir: Path | str, audit: Audit, *, top: int = 200) -> Path:
    """Write ``audit.csv`` (every sample), ``audit.html`` (``top`` per ranking), ``audit.json``.

    ``audit.json`` holds the scores used, the rankings and, with corrupted answers,
    each score's detection AUROC and precision at the true count per ranking
    (``injected_noise_detection``).

    Returns:
        The audit folder ``<run>/audit/<UTC stamp>/``.
    """
    run_dir = Path(run_dir)
    asked, given, guess = _texts(audit.data, run_dir / SCORES_FILE)
    out = new_audit_folder(run_dir)
    cols = audit.table.column_names
    rows = audit.table.to_pylist()
    extra = ["asked", "given_answer"] + (["ensemble_answer"] if guess is not None else [])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*cols, *extra])
    for row in rows:
        i = row["sample_id"]
        texts = [asked[i], given[i]] + ([guess[i]] if guess is not None else [])
        writer.writerow([row[c] for c in cols] + texts)
    atomic_write_bytes(out / AUDIT_CSV, buf.getvalue().encode())
    score_cols = [*audit.scores_used, "audit_score"]
    sections = []
    for name in audit.rankings:
        members = [r for r in rows if r["ranking"] == name][:top]
        cells = []
        for row in members:
            i = row["sample_id"]
            theirs = f"<td>{html.escape(guess[i])}</td>" if guess is not None else ""
            flag = ' class="corrupted"' if row.get("flipped") else ""
            cells.append(
                f"<tr{flag}><td>{row['rank']}</td><td>{i}</td>"
                f"<td class='text'>{html.escape(asked[i])}</td>"
                f"<td class='text'>{html.escape(given[i])}</td>{theirs}"
                + "".join(f"<td>{row[c]:.3f}</td>" for c in score_cols)
                + "</tr>"
            )
        head = "".join(f"<th>{html.escape(c)}</th>" for c in score_cols)
        theirs_head = "<th>ensemble answer</th>" if guess is not None else ""
        sections.append(
            f"<h2>Ranking: {html.escape(name)}</h2><table><tr><th>rank</th><th>sample</th>"
            f"<th>asked</th><th>given answer</th>{theirs_head}{head}</tr>{''.join(cells)}</table>"
        )
    marked = (
        " Rows whose answer was corrupted on purpose (data.label_noise) are shaded."
        if "flipped" in cols
        else ""
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>hardbench audit</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}
td.text{{text-align:left;max-width:30em}}tr.corrupted td{{background:#fff4e0}}</style></head><body>
<h1>Answer audit: {html.escape(run_dir.name)}</h1>
<p>{len(rows)} samples audited, ranked {ranked_how(audit)}. Audit score = mean suspicion
percentile of {", ".join(audit.scores_used)} within the ranking (1 = most suspicious); a text
answer has no class probabilities, so there is no confident-learning estimate.{marked}
The {top} most suspicious of each ranking are shown; every sample is in {AUDIT_CSV}.</p>
{"".join(sections)}
</body></html>"""
    atomic_write_bytes(out / AUDIT_HTML, page.encode())
    meta: dict = {"scores_used": audit.scores_used, "samples": len(rows),
                  "rankings": audit.rankings}  # fmt: skip
    if "flipped" in cols:
        meta["injected_noise_detection"] = detection_by_ranking(audit)
    atomic_write_bytes(out / AUDIT_JSON, json.dumps(meta, indent=2).encode())
    return out
