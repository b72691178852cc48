"""``hardbench compare``: a robustness table across models, read back from MLflow."""

from __future__ import annotations

import math
import os

COMPARE_COLUMNS = (
    "error_all",
    "error_hard",
    "error_rest",
    "hard_minus_rest",
    "pearson_rho",
    "auroc_score_error",
)


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

    Bins run from the easiest (0) to the hardest. A build's own replica ensemble is
    marked ``(scorer, in-sample)``: its bins were cut from its own score.
    """
    from engine.splits.display import display_name, format_params

    n_bins = max(
        (int(k.split("_")[-1]) + 1 for r in rows for k in r if k.startswith("error_bin_")),
        default=0,
    )

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
        + f"{'rho':>8}{'AUROC':>8}"
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
            + f"{num(r.get('pearson_rho')):>8}{num(r.get('auroc_score_error')):>8}"
        )
    return "\n".join(lines)
