"""The extractive-QA benchmark: seed ensemble -> reduced shards -> scores -> splits -> readers.

Same run directory as a classification run (``spec.yaml``, ``run.json``, ``preds/``,
``scores.parquet``, ``benchmark/``, ``eval/``, ``report.html``, an MLflow parent run
with a nested run per evaluated reader); the evaluation is per question: exact
match (EM) and token F1 of each reader's best span, per confusion bin, and the
comparison the issue asks for: Spearman correlation between action and confusion,
and each score's AUROC as a predictor of the largest reader's misses (EM = 0).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from engine.data.qa import SPLIT_HELDOUT, QAData, exact_match, token_f1
from engine.distributed.cluster import ray_session
from engine.distributed.models import MODELS_DIR
from engine.distributed.scoring import score_run
from engine.evaluation.metrics import auroc, bootstrap_ci, pearson_bin_error
from engine.pipeline import RUN_FILE, SCORES_FILE, SPEC_FILE, new_run_id
from engine.shards import atomic_write_bytes, atomic_write_table, consolidate_manifest, num_blocks
from engine.splits.builder import BENCHMARK_DIR
from engine.splits.qa_spec import QASpec
from engine.splits.selectors import quantile_bins, top_fraction
from engine.tracking.mlflow_log import log_benchmark_run
from engine.tracking.plots import plot_error_by_bin
from engine.tracking.report import plot_data_map

BOOTSTRAP_RESAMPLES = 1000  # resamples for the EM confidence intervals
REPORT_EXAMPLES = 8  # hardest and easiest pool questions shown in the report


@dataclass
class QARunResult:
    """What a QA run produced (mirrors :class:`engine.pipeline.RunResult`'s fields used by the CLI)."""

    run_id: str
    run_dir: Path
    evaluations: list[dict]
    comparison: dict
    timings: dict[str, float]
    table: str
    output: str | None = None
    mlflow: dict = field(default_factory=dict)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def evaluate_reader(
    name: str, data: QAData, pool: np.ndarray, start: np.ndarray, end: np.ndarray,
    bins: np.ndarray, is_hard: np.ndarray, count: int, score: np.ndarray,
) -> tuple[dict, dict[str, np.ndarray]]:  # fmt: skip
    """EM and F1 of one reader on the pool, overall, hard vs rest and per bin.

    Args:
        name: Reader label.
        data: The QA samples.
        pool: Int (P,) sample ids of the pool.
        start: Int (N,) start of the reader's best span, for every sample.
        end: Int (N,) its end (inclusive).
        bins: Int (P,) bin of each pool sample (0 = lowest score).
        is_hard: Bool (P,) hard-split membership.
        count: Number of bins.
        score: Float (P,) the splitting score, for the AUROC.

    Returns:
        ``(evaluation, per-sample arrays {"prediction", "em", "f1"})``; the evaluation
        holds ``error_*`` (1 - EM) keys like the classification evaluations, so the same
        MLflow logging and plots apply, plus ``em_*`` and ``f1_*`` and ``f1_per_bin``.
    """
    preds = [data.span_text(i, start[i], end[i]) for i in pool]
    em = np.array([exact_match(p, data.answers[i]) for p, i in zip(preds, pool, strict=True)])
    f1 = np.array([token_f1(p, data.answers[i]) for p, i in zip(preds, pool, strict=True)])
    miss = em == 0
    em_bins = np.array(
        [em[bins == b].mean() if (bins == b).any() else np.nan for b in range(count)]
    )
    f1_bins = np.array(
        [f1[bins == b].mean() if (bins == b).any() else np.nan for b in range(count)]
    )
    rho, p = pearson_bin_error(1 - em_bins)
    ev = {
        "model": name,
        "em_all": float(em.mean()),
        "f1_all": float(f1.mean()),
        "em_hard": float(em[is_hard].mean()),
        "em_rest": float(em[~is_hard].mean()),
        "f1_hard": float(f1[is_hard].mean()),
        "f1_rest": float(f1[~is_hard].mean()),
        "error_all": float(miss.mean()),
        "error_hard": float(miss[is_hard].mean()),
        "error_rest": float(miss[~is_hard].mean()),
        "hard_minus_rest": float(miss[is_hard].mean() - miss[~is_hard].mean()),
        "error_per_bin": [float(x) for x in 1 - em_bins],
        "f1_per_bin": [float(x) for x in f1_bins],
        "error_all_ci95": list(bootstrap_ci(miss, n_boot=BOOTSTRAP_RESAMPLES, seed=0)),
        "error_hard_ci95": list(bootstrap_ci(miss[is_hard], n_boot=BOOTSTRAP_RESAMPLES, seed=0)),
        "pearson_rho": rho,
        "pearson_p": p,
        "auroc_score_error": auroc(score, miss) if 0 < miss.sum() < len(miss) else float("nan"),
        "num_errors": int(miss.sum()),
    }
    return ev, {"prediction": np.asarray(preds, dtype=object), "em": em, "f1": f1}


def compare_scores(table: pa.Table, pool: np.ndarray, miss: dict[str, np.ndarray]) -> dict:
    """Action vs confusion, and each score as a predictor of each reader's misses.

    Args:
        table: The scores table (one row per sample id, sorted), with ``split``.
        pool: Int (P,) pool sample ids.
        miss: Reader name -> Bool (P,) EM = 0 on the pool.

    Returns:
        ``{"spearman_action_confusion": {"all", "train", "heldout"}, "auroc": {reader:
        {score: AUROC}}}``; AUROC > 0.5 = higher score, more misses.
    """
    split = np.asarray(table.column("split").to_pylist())
    conf = table.column("confusion").to_numpy()
    act = table.column("action").to_numpy()
    rho = {"all": _spearman(act, conf)}
    for part in ("train", "heldout"):
        rho[part] = _spearman(act[split == part], conf[split == part])
    scores = [c for c in table.column_names if c not in ("sample_id", "split", "label",
                                                         "ensemble_pred", "ensemble_conf")]  # fmt: skip
    out: dict[str, dict] = {}
    for name, m in miss.items():
        out[name] = {}
        for s in scores:
            v = table.column(s).to_numpy()[pool]
            # confidence and correctness are "higher = easier": flip so 0.5 is chance either way
            flip = s in ("confidence", "correctness", "aum")
            out[name][s] = auroc(-v if flip else v, m) if 0 < m.sum() < len(m) else float("nan")
    return {"spearman_action_confusion": rho, "auroc": out}


def _results_table(evaluations: list[dict], comparison: dict, score: str) -> str:
    lines = [f"reader | EM all | EM hard | EM rest | F1 all | error by {score} bin (1 - EM, %)"]
    for ev in evaluations:
        bins = " ".join(f"{100 * e:.1f}" for e in ev["error_per_bin"])
        lines.append(
            f"{ev['model']} | {100 * ev['em_all']:.1f} | {100 * ev['em_hard']:.1f} | "
            f"{100 * ev['em_rest']:.1f} | {100 * ev['f1_all']:.1f} | {bins} (rho {ev['pearson_rho']:.3f})"
        )
    rho = comparison["spearman_action_confusion"]
    lines.append(
        f"Spearman(action, confusion): all {rho['all']:.3f}, train {rho['train']:.3f}, "
        f"held-out {rho['heldout']:.3f}"
    )
    for name, aucs in comparison["auroc"].items():
        lines.append(
            f"AUROC for {name}'s misses: " + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items())
        )
    return "\n".join(lines)


def _report(run_dir: Path, spec: QASpec, evaluations: list[dict], comparison: dict,
            examples: pa.Table, plots: list[Path]) -> Path:  # fmt: skip
    """A self-contained HTML page: tables, plots (inline PNG) and example questions."""
    import base64

    def img(p: Path) -> str:
        return f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'

    rows = "".join(
        f"<tr><td>{html.escape(ev['model'])}</td><td>{100 * ev['em_all']:.1f}</td>"
        f"<td>{100 * ev['em_hard']:.1f}</td><td>{100 * ev['em_rest']:.1f}</td>"
        f"<td>{100 * ev['f1_all']:.1f}</td><td>{' / '.join(f'{100 * e:.1f}' for e in ev['error_per_bin'])}</td>"
        f"<td>{' / '.join(f'{100 * e:.1f}' for e in ev['f1_per_bin'])}</td><td>{ev['pearson_rho']:.3f}</td></tr>"
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
    ex = "".join(
        f"<tr><td>{r['sample_id']}</td><td>{r[spec.splits.score]:.3f}</td><td>{r['action']:.2f}</td>"
        f"<td>{html.escape(r['question'])}</td><td>{html.escape(r['answer'])}</td>"
        f"<td>{html.escape(str(r['prediction']))}</td></tr>"
        for r in examples.to_pylist()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(spec.metadata.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}table{{border-collapse:collapse;margin:1em 0}}</style></head><body>
<h1>{html.escape(spec.metadata.name)}: extractive QA</h1>
<p>{len(evaluations) and "Readers"} evaluated on the {spec.splits.pool} pool; hard split = top {100 * spec.splits.hard_fraction:.0f}% by {spec.splits.score}.</p>
<h2>Exact match and F1 by {spec.splits.score} bin</h2>
<table><tr><th>reader</th><th>EM all</th><th>EM hard</th><th>EM rest</th><th>F1 all</th><th>1 - EM per bin (%)</th><th>F1 per bin (%)</th><th>Pearson rho</th></tr>{rows}</table>
<h2>Action vs confusion</h2>
<p>Spearman correlation: all {rho["all"]:.3f}, train {rho["train"]:.3f}, held-out {rho["heldout"]:.3f}.</p>
<table><tr><th>misses of</th>{auc_head}</tr>{aucs}</table>
<p>AUROC of each score as a predictor of the reader's misses (EM = 0) on the pool; confidence, correctness and AUM are negated (higher = easier).</p>
{"".join(img(p) for p in plots)}
<h2>Hardest and easiest pool questions</h2>
<table><tr><th>id</th><th>{spec.splits.score}</th><th>action</th><th>question</th><th>gold</th><th>largest reader</th></tr>{ex}</table>
</body></html>"""
    path = run_dir / "report.html"
    atomic_write_bytes(path, page.encode())
    return path


def run_qa_benchmark(
    spec: QASpec,
    *,
    runs_dir: Path | str = "runs",
    run_id: str | None = None,
    num_cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> QARunResult:
    """Run an extractive-QA benchmark end to end on a local or attached Ray cluster.

    Args:
        spec: The validated QA spec.
        runs_dir: Parent of the run directory.
        run_id: Run id (default: ``<name>-<UTC stamp>-<hex>``).
        num_cpus: CPUs of a local Ray cluster started for the run.
        log: Progress lines.

    Returns:
        :class:`QARunResult`.
    """
    run_id = run_id or new_run_id(spec)
    run_dir = Path(runs_dir) / run_id
    if run_dir.exists():
        raise FileExistsError(f"run directory {run_dir} already exists")
    run_dir.mkdir(parents=True)
    atomic_write_bytes(
        run_dir / SPEC_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False).encode()
    )
    timings: dict[str, float] = {}
    status = {"run_id": run_id, "task": "qa", "status": "running", "timings_s": timings}
    atomic_write_bytes(run_dir / RUN_FILE, json.dumps(status, indent=2).encode())
    t_total = time.perf_counter()
    try:
        result = _stages(spec, run_dir, run_id, num_cpus, timings, log)
    except BaseException as exc:
        status.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        atomic_write_bytes(run_dir / RUN_FILE, json.dumps(status, indent=2).encode())
        raise
    timings["total"] = round(time.perf_counter() - t_total, 3)
    status.update(status="complete", mlflow=result.mlflow)
    atomic_write_bytes(run_dir / RUN_FILE, json.dumps(status, indent=2).encode())
    return result


def _stages(spec: QASpec, run_dir: Path, run_id: str, num_cpus: int | None,
            timings: dict[str, float], log: Callable[[str], None]) -> QARunResult:  # fmt: skip
    from engine.distributed.qa import run_qa_tasks

    def done(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 3)

    t = time.perf_counter()
    data = spec.data.load()
    done("load", t)
    log(f"[data] {len(data)} questions ({int((data.split == SPLIT_HELDOUT).sum())} held out)")
    epochs = spec.replicas.recipe.epochs
    with ray_session(num_cpus) as cluster:
        log(f"[ray] {cluster['address']} ({cluster['cpus']:.0f} CPUs)")
        t = time.perf_counter()
        summary, readers = run_qa_tasks(run_dir, spec)
        done("train", t)
        log(f"[train] {spec.replicas.count} replicas x {epochs} epochs and "
            f"{len(readers)} readers in {timings['train']:.0f} s")  # fmt: skip
        t = time.perf_counter()
        blocks = num_blocks(len(data), spec.shards.block_size)
        manifest = consolidate_manifest(
            run_dir, replicas=spec.replicas.count, epochs=epochs, blocks=blocks
        )
        table = score_run(
            run_dir, replicas=manifest["replicas"], epochs=manifest["epochs"],
            num_blocks=blocks, scores=spec.scores,
        )  # fmt: skip
        done("score", t)
    ids = table.column("sample_id").to_numpy()
    if not np.array_equal(ids, np.arange(len(data))):
        raise RuntimeError(f"scores table has {len(ids)} rows for {len(data)} questions")
    table = table.add_column(1, "split", pa.array(data.split))
    atomic_write_table(run_dir / SCORES_FILE, table)
    log(f"[score] {len(data)} questions x {len(spec.scores)} scores -> {SCORES_FILE}")

    t = time.perf_counter()
    pool = np.flatnonzero(data.split == SPLIT_HELDOUT) if spec.splits.pool == "heldout" else ids
    score = table.column(spec.splits.score).to_numpy()[pool]
    bins = quantile_bins(score, pool, spec.splits.bins)
    is_hard = top_fraction(score, pool, spec.splits.hard_fraction)
    split_dir = run_dir / BENCHMARK_DIR / "splits"
    base = {
        "sample_id": pa.array(pool),
        "question": pa.array([data.questions[i] for i in pool]),
        "context": pa.array([data.contexts[i] for i in pool]),
        "answer": pa.array([data.answers[i] for i in pool]),
        "confusion": pa.array(table.column("confusion").to_numpy()[pool]),
        "action": pa.array(table.column("action").to_numpy()[pool]),
        "bin": pa.array(bins),
        "hard": pa.array(is_hard),
    }
    masks = {"pool": np.ones(len(pool), bool), "hard": is_hard, "rest": ~is_hard}
    masks.update({f"bin_{b}": bins == b for b in range(spec.splits.bins)})
    pool_table = pa.table(base)
    for name, mask in masks.items():
        atomic_write_table(split_dir / f"{name}.parquet", pool_table.filter(pa.array(mask)))
    done("build", t)
    log(f"[build] pool {len(pool)} questions, hard {int(is_hard.sum())}, {spec.splits.bins} bins")

    t = time.perf_counter()
    evaluations, per_sample = [], {}
    # The ensemble of the seed replicas: its best span of the replica-mean distributions.
    code = table.column("ensemble_pred").to_numpy()
    length = data.input_ids.shape[1]
    candidates = [("ensemble", code // length, code % length)]
    candidates += [(r["name"], r["start"], r["end"]) for r in readers]
    for name, start, end in candidates:
        ev, arrays = evaluate_reader(name, data, pool, start, end, bins, is_hard,
                                     spec.splits.bins, score)  # fmt: skip
        evaluations.append(ev)
        per_sample[name] = arrays
    comparison = compare_scores(table, pool, {n: a["em"] == 0 for n, a in per_sample.items()})
    eval_dir = run_dir / "eval"
    preds = {"sample_id": pa.array(pool)}
    for name, arrays in per_sample.items():
        preds[f"pred_{name}"] = pa.array(list(arrays["prediction"]), pa.string())
        preds[f"em_{name}"] = pa.array(arrays["em"])
        preds[f"f1_{name}"] = pa.array(arrays["f1"])
    atomic_write_table(eval_dir / "predictions.parquet", pa.table(preds))
    atomic_write_bytes(eval_dir / "metrics.json", json.dumps(evaluations, indent=2).encode())
    atomic_write_bytes(eval_dir / "comparison.json", json.dumps(comparison, indent=2).encode())
    done("evaluate", t)

    t = time.perf_counter()
    plots = [plot_error_by_bin(evaluations, spec.splits.score, eval_dir / "error_by_bin.png",
                               metric="1 - exact match")]  # fmt: skip
    if all(c in table.column_names for c in ("confidence", "variability", "correctness")):
        plots.append(plot_data_map(
            table.column("confidence").to_numpy(), table.column("variability").to_numpy(),
            table.column("correctness").to_numpy(), eval_dir / "data_map.png",
        ))  # fmt: skip
    largest = candidates[-1][0]
    order = np.argsort(-score, kind="stable")
    pick = np.r_[order[:REPORT_EXAMPLES], order[-REPORT_EXAMPLES:]]
    examples = pool_table.take(pa.array(pick)).append_column(
        "prediction", pa.array([per_sample[largest]["prediction"][j] for j in pick], pa.string())
    )
    report = _report(run_dir, spec, evaluations, comparison, examples, plots)
    results = _results_table(evaluations, comparison, spec.splits.score)
    card = {
        "name": spec.metadata.name, "task": "qa", "run_id": run_id, "source": data.name,
        "questions": len(data), "pool": len(pool), "hard": int(is_hard.sum()),
        "score": spec.splits.score, "evaluations": evaluations, "comparison": comparison,
        "ensemble": summary, "timings_s": timings,
    }  # fmt: skip
    atomic_write_bytes(run_dir / BENCHMARK_DIR / "card.json", json.dumps(card, indent=2).encode())
    summary_metrics = {f"time_{k}_s": v for k, v in timings.items()}
    summary_metrics.update({f"spearman_action_confusion_{k}": v
                            for k, v in comparison["spearman_action_confusion"].items()})  # fmt: skip
    for name, aucs in comparison["auroc"].items():
        summary_metrics.update({f"auroc_{name}_{k}": v for k, v in aucs.items()})
    mlflow_info = log_benchmark_run(
        run_dir=run_dir, run_id=run_id, experiment=spec.tracking.experiment,
        spec_dict=spec.to_dict(), evaluations=evaluations, summary_metrics=summary_metrics,
        artifacts=[run_dir / BENCHMARK_DIR / "card.json", report, run_dir / SCORES_FILE,
                   run_dir / SPEC_FILE, *plots],
        model_dirs={m.name: run_dir / MODELS_DIR / m.name for m in spec.models},
        tags={"hardbench.spec": spec.metadata.name, "hardbench.task": "qa"},
    )  # fmt: skip
    done("track", t)
    log(f"[mlflow] parent run {mlflow_info['parent_run_id']} in {mlflow_info['tracking_uri']}")
    return QARunResult(
        run_id=run_id, run_dir=run_dir, evaluations=evaluations, comparison=comparison,
        timings=timings, table=results, mlflow=mlflow_info,
    )  # fmt: skip
