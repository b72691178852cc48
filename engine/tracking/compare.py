"""``hardbench compare``: a robustness table across models, read back from MLflow.

With a labels version (``--labels v<n>``), the models' errors on the corrected labels
stand beside the original ones: each (build, model, version) measured by ``hardbench
eval RUN --labels v<n>`` is a nested run of the build (:func:`log_labels_runs`, tags
:data:`LABELS_VERSION_TAG` and :data:`LABELS_MODEL_TAG`), written and read here so
the keys agree.
"""

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
LABELS_COLUMNS = ("error_all", "error_hard", "error_rest", "hard_minus_rest")  # per version
LABELS_VERSION_TAG = "hardbench.labels_version"  # a labels run's version, e.g. v1
LABELS_MODEL_TAG = "hardbench.labels_model"  # the model a labels run measured
LABELS_KIND = "labels_eval"  # hardbench.kind of a model measured on a labels version
LABELS_COUNTS = ("removed", "relabelled", "corrected_samples")  # pool counts a labels run logs
LABELS_HEADS = ("all", "hard", "rest", "gap")  # their column heads, followed by the version
LABELS_CELL = 10  # width of a corrected-label column of the table
INTERVAL_SUFFIXES = ("_low", "_high")  # a logged interval's bounds
BIN_METRIC = re.compile(r"error_bin_(\d+)$")  # one equal-count bin's error (not its interval)
WIDTH_METRIC = re.compile(r"error_width_bin_(\d+)$")  # one fixed-width bin's error


def labels_run_metrics(corrected: dict, original: dict, record: dict) -> dict[str, float]:
    """What a labels run logs for one model: its corrected evaluation and the pool counts.

    Args:
        corrected: The model's evaluation on the corrected labels (numbers, per-bin
            ``error_per_bin`` as ``error_bin_<b>``, ``*_ci95`` as ``*_ci95_low|high``).
        original: Its evaluation on the original labels (``original_error_*``).
        record: The comparison (``LabelsComparison.to_json()``): its counts and
            ``ranking_changed_<key>`` (1.0 where that ranking of the measured models
            changes order).
    """
    values = {
        k: float(v)
        for k, v in corrected.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    values.update({f"error_bin_{b}": v for b, v in enumerate(corrected.get("error_per_bin", []))})
    for key, value in corrected.items():
        if key.endswith("_ci95") and len(value) == 2 and not isinstance(value[0], list):
            values.update({f"{key}{s}": v for s, v in zip(INTERVAL_SUFFIXES, value, strict=True)})
    values.update({f"original_{k}": float(original[k]) for k in LABELS_COLUMNS})
    values.update({k: float(record[k]) for k in LABELS_COUNTS})
    values.update({f"ranking_changed_{k}": float(r["changed"])
                   for k, r in record["rankings"].items()})  # fmt: skip
    return values


def log_labels_runs(
    tracking_uri: str,
    *,
    experiment_id: str,
    parent_run_id: str,
    run_id: str,
    record: dict,
    models: list[str],
) -> dict[str, str]:
    """Log each model's measurement on a labels version as a nested run of the build.

    Args:
        tracking_uri: The build's store.
        experiment_id: Its experiment.
        parent_run_id: The build's MLflow run.
        run_id: The hardbench run id.
        record: The comparison (``LabelsComparison.to_json()``).
        models: The models to log (e.g. only an outside model ``hardbench eval`` added).

    Returns:
        Model -> its labels run id.
    """
    import time

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    version = record["labels_version"]
    original = {ev["model"]: ev for ev in record["original"]}
    out = {}
    for ev in record["corrected"]:
        name = ev["model"]
        if name not in models:
            continue
        run = client.create_run(
            experiment_id,
            run_name=f"{run_id}/{name}/labels-{version}",
            tags={"mlflow.parentRunId": parent_run_id, "hardbench.run_id": run_id,
                  LABELS_MODEL_TAG: name, LABELS_VERSION_TAG: version,
                  "hardbench.kind": LABELS_KIND},
        )  # fmt: skip
        rid = run.info.run_id
        stamp = int(time.time() * 1000)
        values = labels_run_metrics(ev, original[name], record)
        client.log_batch(
            rid,
            metrics=[Metric(k, v, stamp, 0) for k, v in values.items() if not math.isnan(v)],
            params=[Param("model", name), Param("labels_version", version)],
            tags=[RunTag("hardbench.in_sample", "true" if ev.get("in_sample") else "false")],
        )
        client.set_terminated(rid)
        out[name] = rid
    return out


def fetch_labels_metrics(
    client: object, experiment_ids: list[str], version: str, build: str | None = None
) -> dict[tuple[str, str], dict]:
    """The newest labels run of each (build, model) on ``version``: its metrics."""
    query = f"tags.`{LABELS_VERSION_TAG}` = '{version}'"
    if build:
        query += f" and tags.`hardbench.run_id` = '{build}'"
    runs = client.search_runs(
        experiment_ids, filter_string=query, order_by=["attributes.start_time DESC"]
    )
    out: dict[tuple[str, str], dict] = {}
    for r in runs:
        key = (r.data.tags.get("hardbench.run_id", "?"), r.data.tags[LABELS_MODEL_TAG])
        out.setdefault(key, dict(r.data.metrics))  # newest first: a re-measure wins
    return out


def fetch_model_runs(
    experiment: str | None = None,
    *,
    tracking_uri: str | None = None,
    build: str | None = None,
    labels: str | None = None,
) -> list[dict]:
    """Nested per-model runs of an experiment (or of every one), newest build first.

    Args:
        experiment: MLflow experiment name; None: every experiment of the store.
        tracking_uri: Store to read (default ``MLFLOW_TRACKING_URI``).
        build: Only this hardbench run id.
        labels: A labels version (``v1``): each row gets ``labels`` (its labels run's
            metrics, or None for a model never measured on it).

    Returns:
        One dict per (build, model): ``build``, ``model``, ``start_time`` and the metrics.

    Raises:
        ValueError: If the experiment does not exist or holds no model runs, or no
            model was measured on ``labels``.
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
    if labels is not None:
        measured = fetch_labels_metrics(client, ids, labels, build)
        if not measured:
            raise ValueError(
                f"no model was measured on labels {labels} in {uri}"
                + (f" for build {build!r}" if build else "")
                + f": run `hardbench eval RUN --labels {labels}` first"
            )
        for row in rows:
            row["labels"] = measured.get((row["build"], row["model"]))
    return rows


def format_compare_table(rows: list[dict], labels: str | None = None) -> str:
    """Robustness table: per (build, model) size, error overall, on the hard split, the gap, per bin.

    Bins run from the easiest (0) to the hardest; the fixed-width bins follow, headed
    by their edges in the score's units (builds logged before issue 27 have none).
    Every line after the header and its rule is one row. A build's own replica ensemble is
    marked ``(scorer, in-sample)``: its bins were cut from its own score.

    With ``labels`` (rows from ``fetch_model_runs(labels=...)``), the errors on that
    labels version (removed samples left out) follow the original ones, ``n/a`` for a
    model never measured on it; after the rows, a blank line, then per build the
    ranking of its measured models on each label set (:func:`labels_ranking_lines`).
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
        + "".join(f"{f'{h} {labels}':>{LABELS_CELL}}" for h in LABELS_HEADS if labels)
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
            + "".join(
                f"{pct((r.get('labels') or {}).get(k)):>{LABELS_CELL}}"
                for k in LABELS_COLUMNS
                if labels
            )
            + "".join(f"{pct(r.get(f'error_bin_{b}')):>8}" for b in range(n_bins))
            + "".join(f"{pct(r.get(f'error_width_bin_{b}')):>8}" for b in range(n_width))
            + f"{num(r.get('pearson_r_sample')):>8}{num(r.get('pearson_rho')):>8}"
            f"{num(r.get('auroc_score_error')):>8}"
        )
    if labels:
        lines += ["", *labels_ranking_lines(rows, labels)]
    return "\n".join(lines)


def labels_ranking_lines(rows: list[dict], labels: str) -> list[str]:
    """Per build, the ranking of its models measured on ``labels``, original vs corrected.

    Only models with a labels run are ranked (the same models on both sides), each
    build's line prefixed with its run id; a build with fewer than two is skipped.
    """
    from engine.evaluation.corrected_labels import RANKING_KEYS, ranking_change, ranking_lines

    lines = []
    for build in dict.fromkeys(r["build"] for r in rows):
        measured = [r for r in rows if r["build"] == build and r.get("labels")]
        if len(measured) < 2:
            continue
        rankings = {
            key: ranking_change(
                key,
                {r["model"]: r.get(key, math.nan) for r in measured},
                {r["model"]: r["labels"].get(key, math.nan) for r in measured},
            )
            for key in RANKING_KEYS
        }
        counts = measured[0]["labels"]
        lines.append(
            f"{build}: labels {labels}: {counts.get('relabelled', math.nan):.0f} pool samples "
            f"relabelled, {counts.get('removed', math.nan):.0f} removed (left out of {labels})"
        )
        lines += [f"{build}: {line}" for line in ranking_lines(rankings, labels)]
    return lines
