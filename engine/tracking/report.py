"""The static HTML report of a run: the paper's figures plus the hardest and easiest samples.

Everything is read back from the run directory (scores table, built splits, evaluation
outputs, card), so ``hardbench report RUN_DIR`` can rebuild it at any time. Figures are
PNGs embedded as base64, so the report is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.sources import UNLABELLED
from engine.layout import (
    BENCHMARK_DIR,
    CARD_JSON_FILE,
    EVAL_DIR,
    EVAL_PREDICTIONS_FILE,
    REPORT_FIGURES_DIR,
    REPORT_FILE,
    SCORES_FILE,
    SPLITS_DIR,
)
from engine.splits.display import SCORER
from engine.tracking.data_section import data_section_html, plot_leaks
from engine.tracking.plots import (
    get_pyplot,
    plot_confusion_vs_accuracy,
    plot_error_by_bin,
    plot_error_by_width_bin,
    plot_score_histogram,
    plot_train_vs_heldout,
)

if TYPE_CHECKING:
    from engine.evaluation.evaluate import MetricColumn

SAMPLES_PER_CLASS = 6  # hardest and easiest samples shown per class
DATA_MAP_FIELDS = ("confidence", "variability", "correctness")
# The samples each Spearman of the score comparison is measured on, as its table heads them
_PART_HEADS = {"all": "all samples", "train": "training samples", "heldout": "held-out samples"}


@dataclass
class TaskReport:
    """What a task adds to the one report every run gets (its plugin's ``build_report``).

    Attributes:
        title: The task in the page's heading (e.g. ``extractive QA``); empty: none.
        error: What the evaluations' ``error_*`` measure, e.g. ``top-1 error``, ``1 - EM``.
        miss: What a miss of a model is, in words (the AUROC of the scores is for misses).
        metrics: The task's own per-sample means (the evaluations' ``extra`` keys), shown
            per part and per bin in the evaluation table.
        sections: HTML sections of the task, placed after the shared ones.
    """

    title: str = ""
    error: str = "top-1 error"
    miss: str = "a wrong class"
    metrics: tuple[MetricColumn, ...] = ()
    sections: list[str] = field(default_factory=list)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def plot_kendall_scatter(
    small: np.ndarray,
    large: np.ndarray,
    tau: float,
    models: list[str],
    path: Path,
    *,
    score: str = "confusion",
) -> Path:
    """Scatter of the small ensemble's score against the reference models' confusion (Figure 3).

    The x axis runs towards harder samples whatever the score's direction (reversed
    for a lower-is-harder score), so a rising cloud means tau > 0.
    """
    from engine.scores import get_score

    info = get_score(score)
    plt = get_pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(small, large, s=6, alpha=0.5)
    if not info.higher_is_harder:
        ax.invert_xaxis()
    ax.set_xlabel(f"small ensemble {score} ({info.direction}; harder to the right)")
    names = ", ".join(models) if len(models) <= 2 else f"{len(models)} models"
    ax.set_ylabel(f"reference models' confusion ({names})")  # the names: in the caption
    ax.set_title(f"Kendall tau (hardness) = {tau:.3f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_data_map(
    confidence: np.ndarray, variability: np.ndarray, correctness: np.ndarray, path: Path
) -> Path:
    """Data map (Swayamdipta et al.): confidence against variability, coloured by correctness."""
    plt = get_pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(
        variability, confidence, c=correctness, cmap="viridis", s=6, alpha=0.7, vmin=0, vmax=1
    )
    fig.colorbar(sc, ax=ax, label="correctness")
    ax.set_xlabel("variability")
    ax.set_ylabel("confidence")
    ax.set_title("Data map (all samples)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def hardest_first(labels: np.ndarray, score: np.ndarray, score_name: str, cls: int) -> np.ndarray:
    """Indices of class ``cls``'s samples from the hardest to the easiest by ``score_name``."""
    from engine.scores import hardness

    idx = np.flatnonzero(labels == cls)
    return idx[np.argsort(-hardness(score_name, score[idx]), kind="stable")]


def plot_extreme_samples(
    inputs: np.ndarray,
    labels: np.ndarray,
    score: np.ndarray,
    class_names: list[str],
    score_name: str,
    path: Path,
    *,
    one_row: str = "unlabelled",
) -> Path:
    """Per class, the hardest and easiest samples by the score's direction, as images (Figure 1).

    A pool without a class per sample (every label -1: unlabelled, or multi-label) gets
    one row over all its samples, named ``one_row``.
    """
    from engine.scores import get_score

    plt = get_pyplot()
    k = SAMPLES_PER_CLASS
    classes = list(range(len(class_names)))
    if (np.asarray(labels) < 0).all():
        classes, class_names = [-1], [one_row]
    fig, axes = plt.subplots(len(classes), 2 * k, figsize=(2 * k * 0.9, len(classes) * 0.95))
    axes = np.atleast_2d(axes)
    for row, cls in enumerate(classes):
        order = hardest_first(labels, score, score_name, cls)
        picks = list(order[:k]) + [None] * max(0, k - len(order)) + list(order[::-1][:k])
        for col, i in enumerate(picks[: 2 * k]):
            ax = axes[row, col]
            ax.axis("off")
            if i is None:
                continue
            img = inputs[i]
            ax.imshow(img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1), cmap="gray")
            ax.set_title(f"{score[i]:.2f}", fontsize=6)
        axes[row, 0].text(
            -0.5, 0.5, class_names[row], transform=axes[row, 0].transAxes, ha="right", va="center"
        )
    fig.suptitle(
        f"hardest {k} (left) and easiest {k} (right) per class by {score_name} "
        f"({get_score(score_name).direction})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _extreme_texts(pool: pa.Table, score_name: str, class_names: list[str]) -> str:
    """Per class, the hardest and easiest texts of the pool by ``score_name`` (HTML).

    A label-free benchmark's split files carry no label: its texts are one group.
    """
    labelled = "label" in pool.column_names
    labels = pool.column("label").to_numpy() if labelled else np.full(pool.num_rows, UNLABELLED)
    score = pool.column(score_name).to_numpy()
    texts = pool.column("text").to_pylist()
    rows = []
    unlabelled = [(UNLABELLED, "unlabelled")] if (labels == UNLABELLED).any() else []
    for cls, name in [*enumerate(class_names), *unlabelled]:
        order = hardest_first(labels, score, score_name, cls)
        for kind, picks in (("hardest", order[:SAMPLES_PER_CLASS]),
                            ("easiest", order[::-1][:SAMPLES_PER_CLASS])):  # fmt: skip
            for i in picks:
                rows.append(
                    f"<tr><td>{html.escape(name)}</td><td>{kind}</td><td>{score[i]:.3f}</td>"
                    f'<td style="text-align:left">{html.escape(texts[i])}</td></tr>'
                )
    return (
        "<h2>Hardest and easiest texts</h2><table><tr><th>label</th><th></th>"
        f"<th>{html.escape(score_name)}</th><th>text</th></tr>{''.join(rows)}</table>"
    )


def _eval_table(evaluations: list[dict], metrics: tuple[MetricColumn, ...] = ()) -> str:
    """Each model's error on the pool, hard split, rest and bins, then the task's own means.

    In-sample rows are marked (:func:`engine.splits.display.display_name`): the scorer,
    and on a ``splits.pool`` of ``train`` or ``all`` every model, with a note saying why.
    """
    from engine.evaluation.evaluate import PARTS
    from engine.splits.display import display_name, format_params, in_sample_note, is_scorer

    def pct(x: float) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"

    def num(x: float | None) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    def ci(ev: dict, key: str) -> str:
        lo, hi = ev.get(f"{key}_ci95") or [math.nan, math.nan]
        return "" if math.isnan(lo) else f" [{lo:.3f}, {hi:.3f}]"

    nb = len(evaluations[0]["error_per_bin"]) if evaluations else 0
    head = "".join(f"<th>bin {b}</th>" for b in range(nb))
    rows = []
    for ev in evaluations:
        lo, hi = ev.get("error_hard_ci95", [math.nan, math.nan])
        cells = "".join(f"<td>{pct(e)}</td>" for e in ev["error_per_bin"])
        for m in metrics:
            per_bin = " / ".join(m.format(v) for v in ev.get(f"{m.key}_per_bin", []))
            cells += "".join(f"<td>{m.format(ev.get(f'{m.key}_{p}'))}</td>" for p in PARTS)
            cells += f"<td>{per_bin}</td>"
        rows.append(
            f"<tr><td>{html.escape(display_name(ev))}</td><td>{format_params(ev.get('params'))}</td>"
            f"<td>{pct(ev['error_all'])}</td>"
            f"<td>{pct(ev['error_hard'])} [{pct(lo)}, {pct(hi)}]</td><td>{pct(ev['error_rest'])}</td>{cells}"
            f"<td>{num(ev.get('pearson_r_sample'))}{ci(ev, 'pearson_r_sample')}</td>"
            f"<td>{num(ev['pearson_rho'])}{ci(ev, 'pearson_rho')}</td>"
            f"<td>{num(ev['auroc_score_error'])}{ci(ev, 'auroc_score_error')}</td></tr>"
        )
    note = (
        "<p><small>(scorer, in-sample): the replicas' own ensemble, evaluated on bins cut from "
        "its own score; it is not a transfer result and is left out of the figures.</small></p>"
        if any(is_scorer(ev) for ev in evaluations)
        else ""
    )
    pool_note = in_sample_note(evaluations)
    if pool_note:
        note += f"<p><small>{html.escape(pool_note)}.</small></p>"
    for m in metrics:
        label = html.escape(m.label)
        head += "".join(f"<th>{label} {p}</th>" for p in PARTS) + f"<th>{label} per bin</th>"
    return (
        "<table><tr><th>model</th><th>params</th><th>all</th><th>hard [95% CI]</th><th>rest</th>"
        f"{head}<th>Pearson r (per sample)</th><th>Pearson rho (bins)</th><th>AUROC</th></tr>"
        f"{''.join(rows)}</table>{note}{_width_table(evaluations)}"
    )


def _width_table(evaluations: list[dict]) -> str:
    """Each model's error in the fixed-width score bins, with 95% intervals ("" if none)."""
    from engine.splits.display import display_name

    rows = [ev for ev in evaluations if "error_per_width_bin" in ev]
    if not rows:
        return ""
    edges, counts = rows[0]["width_bin_edges"], rows[0]["width_bin_counts"]
    head = "".join(f"<th>{lo:g} .. {hi:g} ({n})</th>"
                   for lo, hi, n in zip(edges, edges[1:], counts, strict=False))  # fmt: skip

    def rho(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.3f}"

    def cell(e: float, pair: list[float]) -> str:
        if math.isnan(e):
            return "<td>n/a</td>"
        return f"<td>{100 * e:.1f}% [{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]</td>"

    body = "".join(
        f"<tr><td>{html.escape(display_name(ev))}</td>"
        + "".join(cell(e, p) for e, p in zip(ev["error_per_width_bin"],
                                              ev["error_per_width_bin_ci95"], strict=True))
        + f"<td>{rho(ev['pearson_rho_width'])}</td></tr>"
        for ev in rows
    )  # fmt: skip
    return (
        "<h3>Fixed-width bins of the score (samples per bin)</h3>"
        f"<table><tr><th>model</th>{head}<th>Pearson rho</th></tr>{body}</table>"
    )


def _comparison_section(run_dir: Path, card: dict, miss: str) -> str:
    """The scores compared (:mod:`engine.evaluation.score_comparison`) as HTML tables, if measured.

    Rank agreement (Spearman) of every pair of compared scores on all, training and
    held-out samples, and each score's AUROC [95% interval] for each model's misses, read
    from ``eval/score_comparison.json``; a text run written before that file: its
    ``transfer`` record (action vs confusion and the AUROCs, no intervals); "" if neither.
    """
    from engine.evaluation.score_comparison import PARTS, read_score_comparison

    comparison = read_score_comparison(run_dir)
    if comparison is None:
        comparison = card.get("transfer") or {}
        if "auroc" not in comparison:
            return ""

    def num(x: float | None) -> str:
        return "n/a" if x is None or math.isnan(x) else f"{x:.3f}"

    parts = ["<h2>Scores compared</h2>"]
    rho = comparison.get("spearman_action_confusion")
    if rho:
        parts.append(
            "<p>Action vs confusion, Spearman correlation: "
            f"all {num(rho['all'])}, train {num(rho['train'])}, held-out {num(rho['heldout'])}.</p>"
        )
    names = comparison.get("scores", [])
    if len(names) > 1:
        head = "".join(f"<th>{_PART_HEADS[p]}</th>" for p in PARTS)
        rows = "".join(
            f"<tr><td>{html.escape(a)} vs {html.escape(names[j])}</td>"
            + "".join(f"<td>{num(comparison['spearman'][p][i][j])}</td>" for p in PARTS)
            + "</tr>"
            for i, a in enumerate(names)
            for j in range(i + 1, len(names))
        )
        parts.append(
            "<h3>Rank agreement of the scores (Spearman)</h3>"
            f"<table><tr><th>scores</th>{head}</tr>{rows}</table>"
            "<p>Each score read in its hardness direction (lower-is-harder scores negated), so "
            "a positive rho means the two rank the same samples hard; data-map variability "
            "measures ambiguity, not hardness.</p>"
        )
    aurocs = comparison.get("auroc") or {}
    if comparison.get("no_misses_reason"):
        parts.append(f"<p>No AUROC for misses: {html.escape(comparison['no_misses_reason'])}.</p>")
    if aurocs:
        scores = list(next(iter(aurocs.values())))
        directions = comparison.get("directions", {})
        head = "".join(
            f"<th>{html.escape(k)}" + (f"<br><small>{html.escape(directions[k])}</small>"
                                       if k in directions else "") + "</th>"
            for k in scores
        )  # fmt: skip
        intervals, misses = comparison.get("auroc_ci95", {}), comparison.get("misses", {})

        def cell(model: str, score: str) -> str:
            ci = intervals.get(model, {}).get(score)
            band = f" [{num(ci[0])}, {num(ci[1])}]" if ci else ""
            return f"<td>{num(aurocs[model][score])}{band}</td>"

        rows = "".join(
            f"<tr><td>{html.escape(n)}"
            + (" <small>(scorer, in-sample)</small>" if n == SCORER else "")
            + "</td>"
            + (f"<td>{misses[n]} of {comparison['pool_size']}</td>" if misses else "")
            + "".join(cell(n, k) for k in scores)
            + "</tr>"
            for n in aurocs
        )
        count = "<th>misses</th>" if misses else ""
        parts.append(
            "<h3>Scores as predictors of misses (AUROC [95% interval])</h3>"
            f"<table><tr><th>misses of</th>{count}{head}</tr>{rows}</table>"
            "<p>AUROC of each score, read in its own direction (lower-is-harder scores such as "
            "confidence, correctness and AUM negated), as a predictor of each model's misses "
            f"({html.escape(miss)}) on the pool, with a seeded percentile-bootstrap 95% "
            "interval; n/a where a model has no miss or nothing but misses. The scorer's row is "
            "in-sample: its label-aware scores were computed from the same replicas' errors.</p>"
        )
    return "".join(parts)


# Records, once images are decoded, each figure's drawn size and position on the page as
# data attributes, so a headless browser's DOM dump tells whether every figure rendered.
_RENDER_CHECK = """window.addEventListener("load", () => {
  for (const fig of document.querySelectorAll("figure.hb-figure")) {
    const img = fig.querySelector("img"), r = img.getBoundingClientRect();
    fig.dataset.natural = img.complete ? img.naturalWidth + "x" + img.naturalHeight : "0x0";
    fig.dataset.box = [r.left + scrollX, r.top + scrollY, r.width, r.height].map(Math.round).join(",");
  }
  document.body.dataset.rendered = "1";
});"""


def build_report(run_dir: Path | str, task: TaskReport | None = None) -> Path:
    """Write ``<run>/report.html`` from a finished run's outputs, for any task.

    Args:
        run_dir: The run directory.
        task: What the run's task adds (its plugin's ``build_report`` passes it); None:
            a classification run's report.

    Raises:
        FileNotFoundError: If the run has no benchmark card yet (not finished).
    """
    from engine.splits.builder import read_input_shape
    from engine.splits.inputs import row_inputs, split_cache
    from engine.splits.samples import INPUT_SHAPE_KEY, LABEL_SET_COLUMN

    run_dir = Path(run_dir)
    card_path = run_dir / BENCHMARK_DIR / CARD_JSON_FILE
    if not card_path.exists():
        raise FileNotFoundError(
            f"{card_path} not found: the run has not finished building its benchmark"
        )
    card = json.loads(card_path.read_text())
    task = task or TaskReport()
    sp = card["splits"]
    score_name = sp["score"]
    figures = run_dir / REPORT_FIGURES_DIR
    figures.mkdir(exist_ok=True)
    scores = pq.read_table(run_dir / SCORES_FILE)
    split = np.asarray(scores.column("split").to_pylist())
    values = scores.column(score_name).to_numpy()
    sections = [
        ("Score histogram", plot_score_histogram(
            {s: values[split == s] for s in sorted(set(split))}, score_name, figures / "histogram.png")),
        ("Error by score bin", plot_error_by_bin(card["evaluation"], score_name, figures / "error_by_bin.png",
                                                 metric=task.error)),
    ]  # fmt: skip
    if any("error_per_width_bin" in ev for ev in card["evaluation"]):
        sections.append(("Error by fixed-width score bin", plot_error_by_width_bin(
            card["evaluation"], score_name, figures / "error_by_width_bin.png")))  # fmt: skip
    if any("train_samples" in ev for ev in card["evaluation"]):
        sections.append(("Held-out pool vs training samples", plot_train_vs_heldout(
            card["evaluation"], score_name, figures / "train_vs_heldout.png")))  # fmt: skip
    transfer_rec = card.get("transfer") or {}
    if (transfer_rec.get("confusion_vs_accuracy") or {}).get("models"):
        sections.append(("Confusion vs accuracy across models", plot_confusion_vs_accuracy(
            transfer_rec["confusion_vs_accuracy"], figures / "confusion_vs_accuracy.png")))  # fmt: skip
    if (run_dir / EVAL_DIR / "seed_ensembles.png").exists():
        sections.append(("Seed ensembles: the replicas' confusion vs each architecture's",
                         run_dir / EVAL_DIR / "seed_ensembles.png"))  # fmt: skip
    ablation = run_dir / EVAL_DIR / "ablation.json"
    for name, title in (
        ("ablation_histograms.png", "Ablation: the score from fewer epochs and replicas"),
        ("ablation_correlations.png", "Ablation: correlation with the strongest model's error"),
    ):
        if ablation.exists() and (run_dir / EVAL_DIR / name).exists():
            sections.append((title, run_dir / EVAL_DIR / name))  # fmt: skip
    preds_path = run_dir / EVAL_DIR / EVAL_PREDICTIONS_FILE
    transfer = card.get("transfer") or {}
    if preds_path.exists() and "large_confusion" in pq.read_schema(preds_path).names:
        preds = pq.read_table(preds_path)
        small = scores.column(score_name).to_numpy()[preds.column("sample_id").to_numpy()]
        sections.append(
            ("Small ensemble vs reference models", plot_kendall_scatter(
                small, preds.column("large_confusion").to_numpy(), transfer.get("kendall_tau_small_large", math.nan),
                transfer.get("reference_models", []), figures / "kendall.png", score=score_name)),
        )  # fmt: skip
    if all(f in scores.column_names for f in DATA_MAP_FIELDS):
        sections.append(
            (
                "Data map",
                plot_data_map(
                    *(scores.column(f).to_numpy() for f in DATA_MAP_FIELDS),
                    figures / "data_map.png",
                ),
            )
        )
    pool = pq.read_table(run_dir / BENCHMARK_DIR / SPLITS_DIR / "pool.parquet")
    has_shape = INPUT_SHAPE_KEY in (pool.schema.metadata or {})  # QA and seq2seq splits: texts
    shape = read_input_shape(pool.schema) if has_shape else ()
    if len(shape) == 3:
        images = row_inputs(pool, shape)  # lazy for cached data: only the shown rows are read
        labels = (pool.column("label").to_numpy() if "label" in pool.column_names
                  else np.full(pool.num_rows, -1))  # a label-free benchmark: no labels  # fmt: skip
        one_row = "all (several labels each)" if LABEL_SET_COLUMN in pool.column_names else (
            "unlabelled")  # fmt: skip
        sections.append(
            ("Hardest and easiest samples", plot_extreme_samples(
                images, labels, pool.column(score_name).to_numpy(),
                card["class_names"], score_name, figures / "samples.png", one_row=one_row)),
        )  # fmt: skip
    leak_figure = plot_leaks(pool, split_cache(pool.schema) if len(shape) == 3 else None,
                             figures / "leaks.png")  # fmt: skip
    if leak_figure is not None:
        sections.append(("Leaked pool samples and their training copies", leak_figure))
    body = "".join(
        f'<figure class="hb-figure" id="fig-{path.stem}"><h2>{html.escape(title)}</h2>{_img(path)}</figure>'
        for title, path in sections
    )
    body += data_section_html((card.get("dataset") or {}).get("report"), sp.get("leaked"))
    if "text" in pool.column_names:
        body += _extreme_texts(pool, score_name, card["class_names"])
    body += _comparison_section(run_dir, card, task.miss)
    body += "".join(task.sections)
    name = html.escape(card["name"]) + (f" ({html.escape(task.title)})" if task.title else "")
    error = html.escape(task.error[:1].upper() + task.error[1:])
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hardbench report: {html.escape(card["name"])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%}}figure{{margin:0}}</style></head><body>
<h1>hardbench report: {name}</h1>
<p>{html.escape(card["description"])}</p>
<p>run <code>{html.escape(card["run_id"])}</code>, git <code>{html.escape(str(card["provenance"]["git"]["commit"]))}</code>;
hard split: {html.escape(sp.get("hard_rule_text") or json.dumps(sp["hard_rule"]))} on the {html.escape(sp["pool"])} pool
({sp["hard"]["count"]} of {sp["pool_size"]} samples); bins run from the easiest (0) to the hardest.</p>
<h2>{error} by {html.escape(score_name)} bin</h2><div style="overflow-x:auto">{_eval_table(card["evaluation"], task.metrics)}</div>
{body}
<script>{_RENDER_CHECK}</script>
</body></html>
"""
    out = run_dir / REPORT_FILE
    out.write_text(page)
    return out
