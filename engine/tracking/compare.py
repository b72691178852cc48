"""``hardbench compare``: a robustness table across models, read back from MLflow."""

from __future__ import annotations

import json
import math
import os
import re

COMPARE_COLUMNS = (
    "error_all",
    "error_hard",
    "error_rest",
    "hard_minus_rest",
    "pearson_r_sample",
    "pearson_rho",
    "auroc_score_error",
)
BIN_METRIC = re.compile(r"error_bin_(\d+)$")  # one equal-count bin's error (not its interval)
WIDTH_METRIC = re.compile(r"error_width_bin_(\d+)$")  # one fixed-width bin's error


def fetch_model_runs(
    experiment: str | None = None, *, tracking_uri: str | None = None, build: str | None = None
) -> list[dict]:
    """Nested per-model runs of an experiment (or of every one), newest build first.

    Args:
        experiment: MLflow experiment name; None: every experiment of the store.
        tracking_uri: Store to read (default ``MLFLOW_TRACKING_URI``).
        build: Only this hardbench run id.

    Returns:
        One dict per (build, model): ``build``, ``model``, ``start_time`` and the metrics.

    Raises:
        ValueError: If the experiment does not exist or holds no model runs.
    """
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ValueError("no tracking store: pass --tracking-uri or set MLFLOW_TRACKING_URI")
    client = MlflowClient(tracking_uri=uri)
    if experiment is None:
        ids = [e.experiment_id for e in client.search_experiments()]
    else:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            names = sorted(e.name for e in client.search_experiments())
            raise ValueError(
                f"no experiment {experiment!r} in {uri}; experiments there: "
                f"{', '.join(names) or 'none'}"
            )
        ids = [exp.experiment_id]
    query = "tags.`hardbench.model` != ''"
    if build:
        query += f" and tags.`hardbench.run_id` = '{build}'"
    runs = client.search_runs(ids, filter_string=query, order_by=["attributes.start_time DESC"])
    rows = [
        {
            "build": r.data.tags.get("hardbench.run_id", "?"),
            "model": r.data.tags["hardbench.model"],
            # builds logged before the tag existed: their ensemble is the scorer too
            "in_sample": r.data.tags.get(
                "hardbench.in_sample", str(r.data.tags.get("hardbench.kind") == "ensemble")
            ).lower()
            == "true",
            "start_time": r.info.start_time,
            "width_bin_edges": json.loads(r.data.tags.get("hardbench.width_bin_edges", "null")),
            **r.data.metrics,
        }
        for r in runs
    ]
    if not rows:
        where = f"experiment {experiment!r}" if experiment else f"the store {uri}"
        raise ValueError(
            f"{where} holds no hardbench model runs" + (f" for build {build!r}" if build else "")
        )
    return rows


def format_compare_table(rows: list[dict]) -> str:
    """Robustness table: per (build, model) size, error overall, on the hard split, the gap, per bin.

    Bins run from the easiest (0) to the hardest; the fixed-width bins follow, headed
    by their edges in the score's units (builds logged before issue 27 have none).
    Every line after the header and its rule is one row. A build's own replica ensemble is
    marked ``(scorer, in-sample)``: its bins were cut from its own score.
    """
    from engine.splits.display import display_name, format_params

    def count(pattern: re.Pattern) -> int:
        return max((int(m.group(1)) + 1 for r in rows for k in r if (m := pattern.match(k))),
                   default=0)  # fmt: skip

    n_bins, n_width = count(BIN_METRIC), count(WIDTH_METRIC)
    edges = next((r["width_bin_edges"] for r in rows if r.get("width_bin_edges")), None)
    width_heads = [
        f"{edges[b]:g}-{edges[b + 1]:g}" if edges and b + 1 < len(edges) else f"w{b}"
        for b in range(n_width)
    ]

    def pct(v: float | None) -> str:
        return "n/a" if v is None or math.isnan(v) else f"{100 * v:.1f}%"

    def num(v: float | None) -> str:
        return "n/a" if v is None or math.isnan(v) else f"{v:+.3f}"

    names = [display_name(r) for r in rows]
    build_w = max(len("build"), *(len(r["build"]) for r in rows)) + 2
    model_w = max(len("model"), *(len(n) for n in names)) + 2
    head = (
        f"{'build':<{build_w}}{'model':<{model_w}}{'params':>8}{'all':>8}{'hard':>8}{'rest':>8}{'gap':>8}"
        + "".join(f"{'bin ' + str(b):>8}" for b in range(n_bins))
        + "".join(f"{h:>8}" for h in width_heads)
        + f"{'r':>8}{'rho':>8}{'AUROC':>8}"
    )
    lines = [head, "-" * len(head)]
    for r, name in zip(rows, names, strict=True):
        params = r.get("params")
        lines.append(
            f"{r['build']:<{build_w}}{name:<{model_w}}"
            f"{format_params(None if params is None else int(params)):>8}"
            f"{pct(r.get('error_all')):>8}{pct(r.get('error_hard')):>8}{pct(r.get('error_rest')):>8}"
            f"{pct(r.get('hard_minus_rest')):>8}"
            + "".join(f"{pct(r.get(f'error_bin_{b}')):>8}" for b in range(n_bins))
            + "".join(f"{pct(r.get(f'error_width_bin_{b}')):>8}" for b in range(n_width))
            + f"{num(r.get('pearson_r_sample')):>8}{num(r.get('pearson_rho')):>8}"
            f"{num(r.get('auroc_score_error')):>8}"
        )
    return "\n".join(lines)
