"""QA and seq2seq benchmarks: seed ensemble -> reduced shards -> scores -> splits -> models.

Same run directory as a classification run (``spec.yaml``, ``run.json``, ``preds/``,
``scores.parquet``, ``benchmark/``, ``eval/``, ``report.html``, an MLflow parent run
with a nested run per evaluated model). The evaluation is per sample: QA, exact
match (EM) and token F1 of each reader's best span; seq2seq, ROUGE-L of each
model's greedy decoding against the references and its token NLL; both per
confusion bin. Then the comparison the issue asks for: Spearman correlation between
action and confusion, and each score's AUROC as a predictor of each model's misses
(QA: EM = 0; seq2seq: reference NLL above the model's median on the pool).
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

from engine.data.qa import SPLIT_HELDOUT, QAData
from engine.data.seq2seq import Seq2SeqData
from engine.distributed.cluster import ray_session
from engine.distributed.models import MODELS_DIR
from engine.distributed.scoring import score_run
from engine.evaluation.evaluate import display_name
from engine.evaluation.metrics import auroc, bootstrap_ci, pearson_bin_error
from engine.evaluation.text_metrics import exact_match, rouge_l_multi, token_f1
from engine.pipeline import (
    RUN_FILE,
    RUN_ID_PATTERN,
    SCORES_FILE,
    SPEC_FILE,
    RunSetupError,
    new_run_id,
)
from engine.scores import get_score, hardness
from engine.shards import atomic_write_bytes, atomic_write_table, consolidate_manifest, num_blocks
from engine.spec import BenchmarkSpec
from engine.splits.builder import BENCHMARK_DIR
from engine.splits.selectors import quantile_bins, top_fraction
from engine.tracking.mlflow_log import log_benchmark_run
from engine.tracking.plots import plot_error_by_bin
from engine.tracking.report import plot_data_map

BOOTSTRAP_RESAMPLES = 1000  # resamples for the confidence intervals of the miss rates
REPORT_EXAMPLES = 8  # hardest and easiest pool samples shown in the report
TASKS = {
    "qa": {"title": "extractive QA", "metric": "EM", "key": "em", "second": "f1",
           "miss": "EM = 0", "inputs": ("question", "answer")},
    "seq2seq": {"title": "sequence to sequence", "metric": "ROUGE-L", "key": "rouge_l",
                "second": "nll", "miss": "reference NLL above the model's pool median",
                "inputs": ("source", "reference")},
}  # fmt: skip


@dataclass
class TextRunResult:
    """What a text run produced (the :class:`engine.pipeline.RunResult` fields the CLI uses)."""

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


def _per_bin(values: np.ndarray, bins: np.ndarray, count: int) -> np.ndarray:
    return np.array(
        [values[bins == b].mean() if (bins == b).any() else np.nan for b in range(count)]
    )


def _evaluation(name: str, key: str, quality: np.ndarray, second: tuple[str, np.ndarray],
                miss: np.ndarray, bins: np.ndarray, is_hard: np.ndarray, count: int,
                score: np.ndarray) -> dict:  # fmt: skip
    """Overall, hard, rest and per-bin means of a per-sample quality and a second metric.

    The quality is in [0, 1], higher = better; ``error_*`` is 1 - quality (so MLflow
    logging and the error-by-bin plot work as for classifiers); the AUROC is that of
    ``score``, the splitting score's hardness (higher = harder), for ``miss``. The
    replicas' own ensemble is marked ``in_sample``: the bins are cut from its score.
    """
    per_bin = _per_bin(quality, bins, count)
    rho, p = pearson_bin_error(1 - per_bin)
    other, values = second
    ev = {"model": name, "in_sample": name == "ensemble"}
    for part, mask in (("all", np.ones(len(quality), bool)), ("hard", is_hard), ("rest", ~is_hard)):
        ev[f"{key}_{part}"] = float(quality[mask].mean())
        ev[f"{other}_{part}"] = float(values[mask].mean())
        ev[f"error_{part}"] = 1 - ev[f"{key}_{part}"]
    ev.update({
        "hard_minus_rest": ev["error_hard"] - ev["error_rest"],
        "error_per_bin": [float(x) for x in 1 - per_bin],
        f"{key}_per_bin": [float(x) for x in per_bin],
        f"{other}_per_bin": [float(x) for x in _per_bin(values, bins, count)],
        "miss_rate_all_ci95": list(bootstrap_ci(miss, n_boot=BOOTSTRAP_RESAMPLES, seed=0)),
        "miss_rate_hard_ci95": list(bootstrap_ci(miss[is_hard], n_boot=BOOTSTRAP_RESAMPLES, seed=0)),
        "pearson_rho": rho,
        "pearson_p": p,
        "auroc_score_error": auroc(score, miss) if 0 < miss.sum() < len(miss) else float("nan"),
        "num_misses": int(miss.sum()),
    })  # fmt: skip
    return ev


def evaluate_reader(
    name: str, data: QAData, pool: np.ndarray, start: np.ndarray, end: np.ndarray,
    bins: np.ndarray, is_hard: np.ndarray, count: int, score: np.ndarray,
) -> tuple[dict, dict[str, np.ndarray]]:  # fmt: skip
    """EM and F1 of one QA reader on the pool, overall, hard vs rest and per bin.

    Args:
        name: Reader label.
        data: The QA samples.
        pool: Int (P,) sample ids of the pool.
        start: Int (N,) start of the reader's best span, for every sample.
        end: Int (N,) its end (inclusive).
        bins: Int (P,) bin of each pool sample (0 = easiest).
        is_hard: Bool (P,) hard-split membership.
        count: Number of bins.
        score: Float (P,) the splitting score's hardness (higher = harder), for the AUROC.

    Returns:
        ``(evaluation, per-sample arrays {"prediction", "em", "f1", "miss"})``; the
        evaluation holds ``em_*``, ``f1_*`` and ``error_*`` (1 - EM) keys.
    """
    preds = [data.span_text(i, start[i], end[i]) for i in pool]
    em = np.array([exact_match(p, data.answers[i]) for p, i in zip(preds, pool, strict=True)])
    f1 = np.array([token_f1(p, data.answers[i]) for p, i in zip(preds, pool, strict=True)])
    miss = em == 0
    ev = _evaluation(name, "em", em, ("f1", f1), miss, bins, is_hard, count, score)
    return ev, {"prediction": np.asarray(preds, dtype=object), "em": em, "f1": f1, "miss": miss}


def evaluate_generator(
    name: str, data: Seq2SeqData, pool: np.ndarray, texts: list[str], loss: np.ndarray,
    bins: np.ndarray, is_hard: np.ndarray, count: int, score: np.ndarray,
) -> tuple[dict, dict[str, np.ndarray]]:  # fmt: skip
    """ROUGE-L and token NLL of one seq2seq model on the pool, overall, hard/rest, per bin.

    Args:
        name: Model label.
        data: The pairs.
        pool: Int (P,) sample ids of the pool.
        texts: N greedy decodings (every sample).
        loss: Float (N,) token-averaged NLL of the first reference.
        bins: Int (P,) bin of each pool sample (0 = easiest).
        is_hard: Bool (P,) hard-split membership.
        count: Number of bins.
        score: Float (P,) the splitting score's hardness (higher = harder), for the AUROC.

    Returns:
        ``(evaluation, per-sample arrays {"prediction", "rouge_l", "nll", "miss"})``; a
        miss is a reference NLL above the model's median on the pool (ROUGE-L has too
        many ties at 0 to split a pool of weak generations in two).
    """
    rouge = np.array([rouge_l_multi(texts[i], data.references[i]) for i in pool])
    nll = np.asarray(loss)[pool]
    miss = nll > np.median(nll)  # continuous, so an even split (ROUGE-L ties at 0 are common)
    ev = _evaluation(name, "rouge_l", rouge, ("nll", nll), miss, bins, is_hard, count, score)
    preds = np.asarray([texts[i] for i in pool], dtype=object)
    return ev, {"prediction": preds, "rouge_l": rouge, "nll": nll, "miss": miss}


def compare_scores(table: pa.Table, pool: np.ndarray, miss: dict[str, np.ndarray]) -> dict:
    """Action vs confusion, and each score as a predictor of each model's misses.

    Args:
        table: The scores table (one row per sample id, sorted), with ``split``.
        pool: Int (P,) pool sample ids.
        miss: Model name -> Bool (P,) its misses on the pool.

    Returns:
        ``{"spearman_action_confusion": {"all", "train", "heldout"}, "auroc": {model:
        {score: AUROC}}}``; each score is read in its direction (the registry's
        :func:`engine.scores.hardness`), so AUROC > 0.5 means harder by the score, more
        misses, for every score.
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
            h = hardness(s, table.column(s).to_numpy()[pool])
            out[name][s] = auroc(h, m) if 0 < m.sum() < len(m) else float("nan")
    return {"spearman_action_confusion": rho, "auroc": out}


def _results_table(task: str, evaluations: list[dict], comparison: dict, score: str) -> str:
    info = TASKS[task]
    key, metric, second = info["key"], info["metric"], info["second"]
    lines = [
        f"model | {metric} all | {metric} hard | {metric} rest | {second} all | "
        f"error by {score} bin (1 - {metric}, %)"
    ]
    for ev in evaluations:
        bins = " ".join(f"{100 * e:.1f}" for e in ev["error_per_bin"])
        lines.append(
            f"{display_name(ev)} | {100 * ev[f'{key}_all']:.1f} | {100 * ev[f'{key}_hard']:.1f} | "
            f"{100 * ev[f'{key}_rest']:.1f} | {ev[f'{second}_all']:.3f} | {bins} "
            f"(rho {ev['pearson_rho']:.3f})"
        )
    lines[0] += f"; bins from easiest (0) to hardest by {score} ({get_score(score).direction})"
    if any(ev.get("in_sample") for ev in evaluations):
        lines.append("(scorer, in-sample): the replicas' own ensemble, on bins cut from its score")
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


def _report(run_dir: Path, spec: BenchmarkSpec, evaluations: list[dict], comparison: dict,
            examples: pa.Table, plots: list[Path]) -> Path:  # fmt: skip
    """A self-contained HTML page: tables, plots (inline PNG) and example samples."""
    import base64

    info = TASKS[spec.task.name]
    key, metric, second = info["key"], info["metric"], info["second"]
    direction = get_score(spec.splits.score).direction

    def img(p: Path) -> str:
        return f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'

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
    first, gold = info["inputs"]
    ex = "".join(
        f"<tr><td>{r['sample_id']}</td><td>{r[spec.splits.score]:.3f}</td><td>{r['action']:.2f}</td>"
        f"<td>{html.escape(r[first])}</td><td>{html.escape(r[gold])}</td>"
        f"<td>{html.escape(str(r['prediction']))}</td></tr>"
        for r in examples.to_pylist()
    )
    name = html.escape(spec.metadata.name)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{name}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}table{{border-collapse:collapse;margin:1em 0}}</style></head><body>
<h1>{name}: {info["title"]}</h1>
<p>Models evaluated on the {spec.splits.pool} pool; hard split = the hardest {100 * spec.splits.hard.value:.0f}% by {spec.splits.score} ({direction}).</p>
<h2>{metric} and {second} by {spec.splits.score} bin (bin 0 = easiest)</h2>
<table><tr><th>model</th><th>{metric} all (%)</th><th>{metric} hard</th><th>{metric} rest</th><th>{metric} per bin</th><th>{second} per bin</th><th>Pearson rho (bin, 1 - {metric})</th></tr>{rows}</table>
<h2>Action vs confusion</h2>
<p>Spearman correlation: all {rho["all"]:.3f}, train {rho["train"]:.3f}, held-out {rho["heldout"]:.3f}.</p>
<table><tr><th>misses of</th>{auc_head}</tr>{aucs}</table>
<p>AUROC of each score, read in its own direction (lower-is-harder scores such as confidence, correctness and AUM negated), as a predictor of each model's misses ({info["miss"]}) on the pool.</p>
{"".join(img(p) for p in plots)}
<h2>Hardest and easiest pool samples</h2>
<table><tr><th>id</th><th>{spec.splits.score}</th><th>action</th><th>{first}</th><th>{gold}</th><th>last model's output</th></tr>{ex}</table>
</body></html>"""
    path = run_dir / "report.html"
    atomic_write_bytes(path, page.encode())
    return path


def run_text_benchmark(
    spec: BenchmarkSpec,
    *,
    runs_dir: Path | str = "runs",
    run_id: str | None = None,
    num_cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> TextRunResult:
    """Run a QA or seq2seq benchmark end to end on a local or attached Ray cluster.

    Args:
        spec: The validated text-task spec.
        runs_dir: Parent of the run directory.
        run_id: Run id (default: ``<name>-<UTC stamp>-<hex>``).
        num_cpus: CPUs of a local Ray cluster started for the run.
        log: Progress lines.

    Returns:
        :class:`TextRunResult`.

    Raises:
        RunSetupError: For a run id that is not a safe directory name, or a run
            directory that already exists; nothing is written.
    """
    run_id = run_id or new_run_id(spec)
    if not RUN_ID_PATTERN.match(run_id):
        raise RunSetupError(f"run id must match {RUN_ID_PATTERN.pattern}, got {run_id!r}")
    run_dir = Path(runs_dir).resolve() / run_id
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir(exist_ok=False)
    except FileExistsError:
        raise RunSetupError(f"run directory already exists: {run_dir}") from None
    atomic_write_bytes(
        run_dir / SPEC_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False).encode()
    )
    timings: dict[str, float] = {}
    status = {"run_id": run_id, "task": spec.task.name, "status": "running", "timings_s": timings}
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


def _stages(spec: BenchmarkSpec, run_dir: Path, run_id: str, num_cpus: int | None,
            timings: dict[str, float], log: Callable[[str], None]) -> TextRunResult:  # fmt: skip
    from engine.distributed.text_tasks import run_text_tasks

    def done(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 3)

    t = time.perf_counter()
    data = spec.load_data()
    done("load", t)
    log(f"[data] {len(data)} samples ({int((data.split == SPLIT_HELDOUT).sum())} held out)")
    epochs = spec.replicas.recipe.epochs
    with ray_session(num_cpus) as cluster:
        log(f"[ray] {cluster['address']} ({cluster['cpus']:.0f} CPUs)")
        t = time.perf_counter()
        summary, outputs = run_text_tasks(run_dir, spec, data)
        done("train", t)
        log(f"[train] {spec.replicas.count} replicas x {epochs} epochs and "
            f"{len(outputs)} models in {timings['train']:.0f} s")  # fmt: skip
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
        raise RuntimeError(f"scores table has {len(ids)} rows for {len(data)} samples")
    table = table.add_column(1, "split", pa.array(data.split))
    atomic_write_table(run_dir / SCORES_FILE, table)
    log(f"[score] {len(data)} samples x {len(spec.scores)} scores -> {SCORES_FILE}")

    t = time.perf_counter()
    pool = np.flatnonzero(data.split == SPLIT_HELDOUT) if spec.splits.pool == "heldout" else ids
    score = table.column(spec.splits.score).to_numpy()[pool]
    hard_by = hardness(spec.splits.score, score)  # higher = harder, whatever the score
    bins = quantile_bins(hard_by, pool, spec.splits.bins.count)
    is_hard = top_fraction(hard_by, pool, spec.splits.hard.value)
    split_dir = run_dir / BENCHMARK_DIR / "splits"
    if spec.task.name == "qa":
        texts = {
            "question": [data.questions[i] for i in pool],
            "context": [data.contexts[i] for i in pool],
            "answer": [data.answers[i] for i in pool],
        }
    else:
        texts = {
            "source": [data.sources[i] for i in pool],
            "reference": [data.references[i][0] for i in pool],
            "references": [data.references[i] for i in pool],
        }
    base = {
        "sample_id": pa.array(pool),
        **{k: pa.array(v) for k, v in texts.items()},
        **{
            name: pa.array(table.column(name).to_numpy()[pool])
            for name in dict.fromkeys(("confusion", "action", spec.splits.score))
        },
        "bin": pa.array(bins),
        "hard": pa.array(is_hard),
    }
    masks = {"pool": np.ones(len(pool), bool), "hard": is_hard, "rest": ~is_hard}
    masks.update({f"bin_{b}": bins == b for b in range(spec.splits.bins.count)})
    pool_table = pa.table(base)
    for name, mask in masks.items():
        atomic_write_table(split_dir / f"{name}.parquet", pool_table.filter(pa.array(mask)))
    done("build", t)
    log(
        f"[build] pool {len(pool)} samples, hard {int(is_hard.sum())}, {spec.splits.bins.count} bins"
    )

    t = time.perf_counter()
    evaluations, per_sample = [], {}
    args = (bins, is_hard, spec.splits.bins.count, hard_by)
    if spec.task.name == "qa":
        # The seed ensemble too: its best span of the replica-mean distributions.
        code = table.column("ensemble_pred").to_numpy()
        length = data.input_ids.shape[1]
        runs = [("ensemble", code // length, code % length)]
        runs += [(r["name"], r["start"], r["end"]) for r in outputs]
        for name, start, end in runs:
            ev, arrays = evaluate_reader(name, data, pool, start, end, *args)
            evaluations.append(ev)
            per_sample[name] = arrays
    else:
        for r in outputs:
            ev, arrays = evaluate_generator(r["name"], data, pool, r["texts"], r["loss"], *args)
            evaluations.append(ev)
            per_sample[r["name"]] = arrays
    comparison = compare_scores(table, pool, {n: a["miss"] for n, a in per_sample.items()})
    eval_dir = run_dir / "eval"
    preds = {"sample_id": pa.array(pool)}
    for name, arrays in per_sample.items():
        preds[f"pred_{name}"] = pa.array(list(arrays["prediction"]), pa.string())
        for metric, values in arrays.items():
            if metric != "prediction":
                preds[f"{metric}_{name}"] = pa.array(values)
    atomic_write_table(eval_dir / "predictions.parquet", pa.table(preds))
    atomic_write_bytes(eval_dir / "metrics.json", json.dumps(evaluations, indent=2).encode())
    atomic_write_bytes(eval_dir / "comparison.json", json.dumps(comparison, indent=2).encode())
    done("evaluate", t)

    t = time.perf_counter()
    info = TASKS[spec.task.name]
    plots = [plot_error_by_bin(evaluations, spec.splits.score, eval_dir / "error_by_bin.png",
                               metric=f"1 - {info['metric']}")]  # fmt: skip
    if all(c in table.column_names for c in ("confidence", "variability", "correctness")):
        plots.append(plot_data_map(
            table.column("confidence").to_numpy(), table.column("variability").to_numpy(),
            table.column("correctness").to_numpy(), eval_dir / "data_map.png",
        ))  # fmt: skip
    largest = evaluations[-1]["model"]
    order = np.argsort(-hard_by, kind="stable")
    pick = np.r_[order[:REPORT_EXAMPLES], order[-REPORT_EXAMPLES:]]
    examples = pool_table.take(pa.array(pick)).append_column(
        "prediction", pa.array([per_sample[largest]["prediction"][j] for j in pick], pa.string())
    )
    report = _report(run_dir, spec, evaluations, comparison, examples, plots)
    results = _results_table(spec.task.name, evaluations, comparison, spec.splits.score)
    card = {
        "name": spec.metadata.name, "task": spec.task.name, "run_id": run_id, "source": data.name,
        "samples": len(data), "pool": len(pool), "hard": int(is_hard.sum()),
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
        model_dirs={m.name: run_dir / MODELS_DIR / m.name for m in spec.evaluate.models},
        tags={"hardbench.spec": spec.metadata.name, "hardbench.task": spec.task.name},
    )  # fmt: skip
    done("track", t)
    log(f"[mlflow] parent run {mlflow_info['parent_run_id']} in {mlflow_info['tracking_uri']}")
    return TextRunResult(
        run_id=run_id, run_dir=run_dir, evaluations=evaluations, comparison=comparison,
        timings=timings, table=results, mlflow=mlflow_info,
    )  # fmt: skip
