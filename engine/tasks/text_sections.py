"""What a QA or seq2seq task says about its measurement, and its piece of the one report.

Each text task names its per-sample quality and its other per-sample means
(:class:`TextMeasure`); the report of a text run is the shared one
(:func:`engine.tracking.report.build_report`) with the task's heading, columns and
its hardest and easiest pool samples beside the largest model's outputs.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from engine.evaluation.evaluate import MetricColumn
from engine.layout import BENCHMARK_DIR, CARD_JSON_FILE, EVAL_DIR, EVAL_PREDICTIONS_FILE, SPLITS_DIR
from engine.scores import hardness
from engine.tracking.report import TaskReport

REPORT_EXAMPLES = 8  # hardest and easiest pool samples shown


@dataclass(frozen=True)
class TextMeasure:
    """How a text task measures an evaluated model per sample.

    Attributes:
        title: The task in words (the report's heading).
        metrics: Its per-sample means; the first is the quality (``error_*`` = 1 - it).
        miss: What a miss is, in words.
        inputs: The split-file columns shown beside each example: the input and the gold
            output (e.g. ``question`` and ``answer``).
    """

    title: str
    metrics: tuple[MetricColumn, ...]
    miss: str
    inputs: tuple[str, str]

    @property
    def quality(self) -> MetricColumn:
        """The per-sample quality: ``error_*`` is one minus it."""
        return self.metrics[0]

    @property
    def error(self) -> str:
        """What ``error_*`` measures, in words (``1 - EM``)."""
        return f"1 - {self.quality.label}"


def examples_section(run_dir: Path, measure: TextMeasure) -> str:
    """The hardest and easiest pool samples by the splitting score, with the largest model's output.

    "Largest" is the last evaluated model (the spec lists them from small to large).
    """
    card = json.loads((run_dir / BENCHMARK_DIR / CARD_JSON_FILE).read_text())
    score = card["splits"]["score"]
    evaluations = card["evaluation"]
    if not evaluations:
        return ""
    pool = pq.read_table(run_dir / BENCHMARK_DIR / SPLITS_DIR / "pool.parquet")
    preds = pq.read_table(run_dir / EVAL_DIR / EVAL_PREDICTIONS_FILE)
    largest = evaluations[-1]["model"]
    order = np.argsort(-hardness(score, pool.column(score).to_numpy()), kind="stable")
    pick = np.r_[order[:REPORT_EXAMPLES], order[-REPORT_EXAMPLES:]]
    first, gold = measure.inputs
    said = preds.column(f"pred_{largest}").to_pylist()
    shown = [c for c in dict.fromkeys((score, "action")) if c in pool.column_names]  # scores shown
    rows = "".join(
        f"<tr><td>{pool['sample_id'][int(i)].as_py()}</td>"
        + "".join(f"<td>{pool[c][int(i)].as_py():.3f}</td>" for c in shown)
        + f"<td>{html.escape(pool[first][int(i)].as_py())}</td>"
        f"<td>{html.escape(pool[gold][int(i)].as_py())}</td><td>{html.escape(str(said[int(i)]))}</td></tr>"
        for i in pick
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown)
    return (
        "<h2>Hardest and easiest pool samples</h2>"
        f"<table><tr><th>id</th>{head}<th>{first}</th><th>{gold}</th>"
        f"<th>{html.escape(largest)}'s output</th></tr>{rows}</table>"
    )


def text_task_report(run_dir: Path, measure: TextMeasure) -> TaskReport:
    """A text task's piece of the run's report."""
    return TaskReport(
        title=measure.title,
        error=measure.error,
        miss=measure.miss,
        metrics=measure.metrics,
        sections=[examples_section(run_dir, measure)],
    )
