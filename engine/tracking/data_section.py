"""The report's data section: what the benchmark was built from, its duplicates and leaks.

Reads the data report the card carries (:mod:`engine.data.report`) and, for images,
draws the leaked pool samples beside the training samples they duplicate, read from
the dataset cache the split files refer to.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.report import DUPLICATE_ROWS, format_counts
from engine.tracking.plots import get_pyplot

LEAK_PAIRS_SHOWN = 12  # leaked (pool, training) pairs drawn in the report


def _counts(counter: dict) -> str:
    return html.escape(format_counts(counter))


def data_section_html(report: dict | None, leaks: dict | None) -> str:
    """The data section's text and tables (empty for a run without a data report)."""
    if not report:
        return ""
    names = report["class_names"]
    c = report["counts"]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{label}</td><td>{c[side]['total']:,}</td><td>{c[side]['unlabelled']:,}</td>"
        + "".join(f"<td>{v:,}</td>" for v in c[side]["per_class"])
        + "</tr>"
        for side, label in (("train", "training"), ("heldout", "held out"))
    )
    parts = [
        "<h2>Data</h2>",
        f"<table><tr><th>split</th><th>samples</th><th>unlabelled</th>{head}</tr>{rows}</table>",
    ]
    seen = report.get("seen") or {}
    facts = []
    if seen.get("modes"):
        facts.append(f"image modes: {_counts(seen['modes'])}")
        facts.append(f"sizes: {_counts(seen['sizes'])} ({seen['distinct_sizes']} distinct)")
        facts.append(f"converted: {_counts(seen.get('converted') or {})}")
    labels = report.get("labels") or {}
    if labels.get("class_list_from"):
        stripped = labels.get("stripped", 0)
        facts.append(
            f"class list from {html.escape(labels['class_list_from'])}"
            + (f"; {stripped:,} labels had surrounding whitespace, stripped" if stripped else "")
        )
    skipped = report.get("skipped") or {}
    if skipped.get("count"):
        facts.append(f"skipped: {skipped['count']:,} ({_counts(skipped['reasons'])})")
    parts.append("<ul>" + "".join(f"<li>{f}</li>" for f in facts) + "</ul>")
    dup = report.get("duplicates") or {}
    if "exact" in dup:
        cells = "".join(
            f"<tr><td style='text-align:left'>{label}</td><td>{dup['exact'][key]:,}</td>"
            f"<td>{dup['near'][key]:,}</td></tr>"
            for key, label in DUPLICATE_ROWS
        )
        parts.append(
            f"<p>Duplicates. Exact: the same stored content. Near: "
            f"{html.escape(dup.get('near_rule', 'not looked for'))}.</p>"
            f"<table><tr><th>samples</th><th>exact</th><th>near</th></tr>{cells}</table>"
        )
    if leaks and leaks.get("count"):
        where = (
            "left out of the hard split (splits.keep_leaked: false)"
            if leaks["left_out_of_hard"]
            else f"kept eligible (splits.keep_leaked: true): {leaks['in_hard']} in the hard split"
        )
        parts.append(f"<p><b>{leaks['count']:,} pool samples leak</b>: {where}.</p>")
    if report.get("warnings"):
        parts.append(
            "<p>Warnings:</p><ul>"
            + "".join(f"<li>{html.escape(w)}</li>" for w in report["warnings"])
            + "</ul>"
        )
    return "".join(parts)


def plot_leaks(pool: pa.Table, cached: object, path: Path) -> Path | None:
    """Leaked pool samples (top) above the training samples they duplicate (bottom).

    Args:
        pool: The pool split file (``sample_id``, ``duplicate_of``, ``key``).
        cached: The dataset cache's inputs (:class:`engine.data.cache.CachedInputs`).
        path: Where the PNG goes.

    Returns:
        ``path``, or None when nothing leaks.
    """
    if "duplicate_of" not in pool.column_names or cached is None:
        return None
    partner = pool.column("duplicate_of").to_numpy()
    rows = np.flatnonzero(partner >= 0)[:LEAK_PAIRS_SHOWN]
    if not len(rows):
        return None
    ids = pool.column("sample_id").to_numpy()
    plt = get_pyplot()
    fig, axes = plt.subplots(2, len(rows), figsize=(1.2 * len(rows) + 0.6, 2.8), squeeze=False)
    for col, r in enumerate(rows):
        for row, sid in enumerate((int(ids[r]), int(partner[r]))):
            img = cached.stored(sid)
            ax = axes[row, col]
            ax.imshow(img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1), cmap="gray")
            ax.set_title(f"{'pool' if row == 0 else 'train'} {sid}", fontsize=6)
            ax.axis("off")
    fig.suptitle("leaked pool samples (top) and the training samples they duplicate", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
