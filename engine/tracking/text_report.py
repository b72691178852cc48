"""The static HTML report of a QA or seq2seq run, rebuilt from the run directory's files.

Reads the card (``benchmark/card.json``: the task, the splits, the evaluations and
the score comparison), the pool split, the evaluated models' predictions and the
scores table; writes one self-contained page with inline PNG figures.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from engine.evaluation.evaluate import display_name
from engine.evaluation.text_eval import TEXT_METRICS
from engine.scores import get_score, hardness
from engine.shards import atomic_write_bytes
from engine.tracking.plots import plot_error_by_bin
from engine.tracking.report import REPORT_FILE, plot_data_map

REPORT_EXAMPLES = 8  # hardest and easiest pool samples shown
DATA_MAP_FIELDS = ("confidence", "variability", "correctness")


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure class="hb-figure"><img src="data:image/png;base64,{data}" alt="{path.stem}"></figure>'


def build_text_report(run_dir: Path | str) -> Path:
    """Write ``<run>/report.html`` for a finished QA or seq2seq run.

    Raises:
        FileNotFoundError: If the run has no benchmark card yet (not finished).
    """
    run_dir = Path(run_dir)
    card_path = run_dir / "benchmark" / "card.json"
    if not card_path.exists():
        raise FileNotFoundError(f"{card_path} not found: the run has not finished its benchmark")
    card = json.loads(card_path.read_text())
    task, sp = card["task"], card["splits"]
    score = sp["score"]
    info = TEXT_METRICS[task]
    key, metric, second = info["key"], info["metric"], info["second"]
    evaluations, comparison = card["evaluation"], card["transfer"]
    figures = run_dir / "report_figures"
    figures.mkdir(exist_ok=True)
    plots = [plot_error_by_bin(evaluations, score, figures / "error_by_bin.png",
                               metric=f"1 - {metric}")]  # fmt: skip
    scores = pq.read_table(run_dir / "scores.parquet")
    if all(c in scores.column_names for c in DATA_MAP_FIELDS):
        plots.append(plot_data_map(*(scores.column(c).to_numpy() for c in DATA_MAP_FIELDS),
                                   figures / "data_map.png"))  # fmt: skip

    def seq(values: list[float], scale: float) -> str:
        return " / ".join(f"{scale * v:.{1 if scale == 100 else 3}f}" for v in values)

    rows = "".join(
        f"<tr><td>{html.escape(display_name(ev))}</td><td>{100 * ev[f'{key}_all']:.1f}</td>"
        f"<td>{100 * ev[f'{key}_hard']:.1f}</td><td>{100 * ev[f'{key}_rest']:.1f}</td>"
        f"<td>{seq(ev[f'{key}_per_bin'], 100)}</td>"
        f"<td>{seq(ev[f'{second}_per_bin'], 100 if second == 'f1' else 1)}</td>"
        f"<td>{ev['pearson_rho']:.3f}</td></tr>"
        for ev in evaluations
    )
    rho = comparison["spearman_action_confusion"]
    aucs = "".join(
        f"<tr><td>{html.escape(n)}</td>"
        + "".join(f"<td>{v:.3f}</td>" for v in a.values())
        + "</tr>"
        for n, a in comparison["auroc"].items()
    )
    auc_head = "".join(
        f"<th>{html.escape(k)}</th>" for k in next(iter(comparison["auroc"].values()), {})
    )
    pool = pq.read_table(run_dir / "benchmark" / "splits" / "pool.parquet")
    preds = pq.read_table(run_dir / "eval" / "predictions.parquet")
    largest = [ev["model"] for ev in evaluations][-1]
    order = np.argsort(-hardness(score, pool.column(score).to_numpy()), kind="stable")
    pick = np.r_[order[:REPORT_EXAMPLES], order[-REPORT_EXAMPLES:]]
    first, gold = info["inputs"]
    said = preds.column(f"pred_{largest}").to_pylist()
    ex = "".join(
        f"<tr><td>{pool['sample_id'][int(i)].as_py()}</td><td>{pool[score][int(i)].as_py():.3f}</td>"
        f"<td>{pool['action'][int(i)].as_py():.2f}</td>"
        f"<td>{html.escape(pool[first][int(i)].as_py())}</td>"
        f"<td>{html.escape(pool[gold][int(i)].as_py())}</td><td>{html.escape(str(said[int(i)]))}</td></tr>"
        for i in pick
    )
    name = html.escape(card["name"])
    direction = get_score(score).direction
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>hardbench report: {name}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}table{{border-collapse:collapse;margin:1em 0}}img{{max-width:100%}}figure{{margin:0}}</style></head><body>
<h1>hardbench report: {name} ({info["title"]})</h1>
<p>{html.escape(card["description"])}</p>
<p>run <code>{html.escape(card["run_id"])}</code>; models evaluated on the {html.escape(sp["pool"])} pool; hard split: {html.escape(sp.get("hard_rule_text", ""))}; bins run from the easiest (0) to the hardest.</p>
<h2>{metric} and {second} by {html.escape(score)} bin</h2>
<table><tr><th>model</th><th>{metric} all (%)</th><th>{metric} hard</th><th>{metric} rest</th><th>{metric} per bin</th><th>{second} per bin</th><th>Pearson rho (bin, 1 - {metric})</th></tr>{rows}</table>
<h2>Action vs confusion</h2>
<p>Spearman correlation: all {rho["all"]:.3f}, train {rho["train"]:.3f}, held-out {rho["heldout"]:.3f}.</p>
<table><tr><th>misses of</th>{auc_head}</tr>{aucs}</table>
<p>AUROC of each score, read in its own direction ({html.escape(score)}: {direction}; lower-is-harder scores such as confidence, correctness and AUM negated), as a predictor of each model's misses ({info["miss"]}) on the pool.</p>
{"".join(_img(p) for p in plots)}
<h2>Hardest and easiest pool samples</h2>
<table><tr><th>id</th><th>{html.escape(score)}</th><th>action</th><th>{first}</th><th>{gold}</th><th>{html.escape(largest)}'s output</th></tr>{ex}</table>
</body></html>"""
    path = run_dir / REPORT_FILE
    atomic_write_bytes(path, page.encode())
    return path
