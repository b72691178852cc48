"""Transfer of the small ensemble's difficulty to evaluated models: sizes, reference set, Kendall tau.

The replicas' own ensemble is the scorer: its bins are cut from its own score, so it
is in-sample. The reference models are the evaluated models the small ensemble is
compared with; by default those with more parameters than the whole replica ensemble.
"""

from __future__ import annotations

import math

import numpy as np

from engine.evaluation.evaluate import BOOTSTRAP_RESAMPLES, MetricColumn
from engine.evaluation.metrics import kendall_tau, kendall_tau_ci
from engine.spec import BenchmarkSpec
from engine.splits.builder import BuiltSplits

DEFAULT_ERROR = "error"  # what error_* and a miss are called for a classifier: top-1 error


def format_results_table(
    built: BuiltSplits,
    evaluations: list[dict],
    score: str,
    transfer: dict | None = None,
    *,
    error: str = DEFAULT_ERROR,
    miss: str = DEFAULT_ERROR,
    metrics: tuple[MetricColumn, ...] = (),
) -> str:
    """The table printed at the end of a run: each model's size and error per bin, then correlations.

    Bins run from the easiest (0) to the hardest by the score's direction. The
    replicas' own ensemble is marked as the in-sample scorer: its bins are cut from
    its own score, so its column is not a transfer result. The task names what its
    ``error_*`` measures (``error``, e.g. ``1 - EM``) and what a miss is (``miss``), and
    adds rows for its own per-sample means (``metrics``, e.g. EM and F1).
    """
    from engine.scores import get_score
    from engine.splits.display import display_name, format_params, in_sample_note, is_scorer

    direction = get_score(score).direction
    names = [display_name(ev) for ev in evaluations]
    widths = [max(10, len(n) + 2) for n in names]  # each model column as wide as its name

    def cells(values: list[str]) -> str:
        return "".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=True))

    head = f"{'bin':<6}{score + ' range':<22}{'count':>7}" + cells(names)
    title = f"bins from easiest (0) to hardest by {score} ({direction})"
    if error != DEFAULT_ERROR:
        title += f"; each cell is {error}"
    rows = [title, head, "-" * len(head)]

    def pct(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"

    def size(ev: dict) -> str:
        r = ev.get("replicas")
        if r and ev.get("params"):
            return f"{r} x {format_params(ev['params'] // r)}"
        return format_params(ev.get("params"))

    if any(ev.get("params") is not None for ev in evaluations):
        rows.append(f"{'params':<35}" + cells([size(ev) for ev in evaluations]))
    for b, (lo, hi) in enumerate(built.bin_edges):
        count = int((built.bins == b).sum())
        rows.append(
            f"{b:<6}{f'{lo:.4f} .. {hi:.4f}':<22}{count:>7}"
            + cells([pct(ev["error_per_bin"][b]) for ev in evaluations])
        )
    rows.append("-" * len(head))
    edges = built.width_edges
    if edges is not None and all("error_per_width_bin" in ev for ev in evaluations):
        counts = np.bincount(built.width_bins[built.width_bins >= 0], minlength=len(edges) - 1)
        for b in range(len(edges) - 1):
            rows.append(
                f"{'w' + str(b):<6}{f'{edges[b]:g} .. {edges[b + 1]:g} (fixed)':<22}"
                f"{int(counts[b]):>7}"
                + cells([pct(ev["error_per_width_bin"][b]) for ev in evaluations])
            )
        rows.append("-" * len(head))
    n_hard = int(built.is_hard.sum())
    for label, key, count in (
        ("hard", "error_hard", n_hard),
        ("rest", "error_rest", len(built.is_hard) - n_hard),
        ("all", "error_all", len(built.is_hard)),
    ):
        rows.append(f"{label:<28}{count:>7}" + cells([pct(ev[key]) for ev in evaluations]))
    for metric in metrics:
        for part, count in (("hard", n_hard), ("rest", len(built.is_hard) - n_hard),
                            ("all", len(built.is_hard))):  # fmt: skip
            values = [metric.format(ev.get(f"{metric.key}_{part}")) for ev in evaluations]
            rows.append(f"{metric.label + ' ' + part:<28}{count:>7}" + cells(values))
    rows.append("")

    def num(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:+.3f}"

    def auc(x: float) -> str:
        return "n/a (no errors)" if math.isnan(x) else f"{x:.3f}"

    def ci(ev: dict, key: str) -> str:
        lo, hi = ev.get(f"{key}_ci95", (math.nan, math.nan))
        return "" if math.isnan(lo) else f" [{lo:+.3f}, {hi:+.3f}]"

    for ev, name in zip(evaluations, names, strict=True):
        lo, hi = ev.get("error_hard_ci95", (math.nan, math.nan))
        ece = ev.get("ece", math.nan)
        sample_r = (
            f"Pearson r(hardness, {error}) = {num(ev['pearson_r_sample'])}"
            f"{ci(ev, 'pearson_r_sample')}, "
            if "pearson_r_sample" in ev
            else ""
        )
        width = (
            f", rho over fixed bins = {num(ev['pearson_rho_width'])}{ci(ev, 'pearson_rho_width')}"
            if "pearson_rho_width" in ev
            else ""
        )
        rows.append(
            f"{name}: {sample_r}rho over bins = {num(ev['pearson_rho'])}{ci(ev, 'pearson_rho')} "
            f"(p={ev['pearson_p']:.3g}){width}, "
            f"hard - rest = {num(100 * ev['hard_minus_rest'])} pts "
            f"(hard {error} 95% CI {pct(lo)}..{pct(hi)}), "
            f"AUROC({score} hardness -> {miss}) = {auc(ev['auroc_score_error'])}"
            + ci(ev, "auroc_score_error").replace("+", "")
            + ("" if math.isnan(ece) else f", ECE = {auc(ece)}")
        )
    rows.append(
        "(r: per sample, point-biserial; rho: over the bins at their centres; [95% bootstrap "
        "intervals])"
    )
    single = any(is_scorer(ev) and ev.get("replicas") == 1 for ev in evaluations)
    small = "single replica" if single else "small ensemble"
    if any(is_scorer(ev) for ev in evaluations):
        rows.append(
            f"(scorer, in-sample): the replicas' own {'model' if single else 'ensemble'}, on "
            "bins cut from its own score; not a transfer result"
        )
    note = in_sample_note(evaluations)
    if note:
        rows.append(note)
    if single:
        rows.append(
            "replicas.count: 1: its confusion is one model's own predictive entropy, not the "
            "disagreement of a seed ensemble"
        )
    if transfer and transfer.get("kendall_tau_small_large") is not None:
        rows.append(
            f"Kendall tau between the {small}'s {score} hardness and the reference models' "
            f"confusion ({', '.join(transfer['reference_models'])}; {transfer['reference_rule']}; "
            f"one seed each, final epoch) = {num(transfer['kendall_tau_small_large'])}"
            + (ci(transfer, "kendall_tau") if "kendall_tau_ci95" in transfer else "")
        )
    if transfer and "confusion_vs_accuracy" in transfer:
        from engine.splits.display import format_confusion_vs_accuracy

        rows.append(format_confusion_vs_accuracy(transfer["confusion_vs_accuracy"]))
    elif transfer and "reference_rule" in transfer:
        rows.append(f"Kendall tau: no reference models ({transfer['reference_rule']})")
    return "\n".join(rows)


def model_parameter_counts(
    spec: BenchmarkSpec, num_classes: int, input_shape: tuple[int, ...]
) -> dict[str, int]:
    """Parameters of one replica (key ``replica``) and of every evaluated model."""
    from engine.models import count_parameters

    def count(recipe: object) -> int:
        return count_parameters(
            recipe.model, num_classes=num_classes, input_shape=input_shape, **recipe.model_kwargs
        )

    return {"replica": count(spec.replicas.recipe)} | {
        m.name: count(m.recipe) for m in spec.evaluate.models
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def reference_models(
    spec: BenchmarkSpec, params: dict[str, int], replica_params: int
) -> tuple[list[str], str]:
    """The evaluated models the small ensemble's difficulty is compared with, and why.

    Args:
        spec: The run's spec (``evaluate.reference_models``: ``larger`` or names).
        params: Evaluated model name -> its number of parameters.
        replica_params: Parameters of one seed replica.

    Returns:
        ``(names, rule)``: the reference models in spec order, and the rule in words.
    """
    from engine.spec import REFERENCE_LARGER

    chosen = spec.evaluate.reference_models
    if chosen != REFERENCE_LARGER:
        return list(chosen), "listed in evaluate.reference_models"
    total = spec.replicas.count * replica_params
    names = [m.name for m in spec.evaluate.models if params[m.name] > total]
    return (
        names,
        f"models with more parameters than the {spec.replicas.count}-replica ensemble ({total:,})",
    )


def transfer_metrics(
    built: BuiltSplits, model_probs: dict[str, np.ndarray], rule: str, seed: int = 0
) -> dict:
    """Rank agreement between the small ensemble and the reference (larger) models.

    The reference models' confusion is the entropy of their mean predicted
    distribution (one prediction per model, after training); Kendall's tau compares it
    with the small ensemble's splitting score read as hardness (higher = harder), so
    tau > 0 means both find the same samples hard whatever the score's direction;
    ``kendall_tau_ci95`` is its bootstrap 95% interval (seeded with ``seed``).
    """
    out: dict = {"reference_models": list(model_probs), "reference_rule": rule}
    if not model_probs:
        return out
    from engine.scores import confusion

    stacked = np.stack(list(model_probs.values()))[:, None]  # (M, 1, P, K)
    large = confusion(stacked / stacked.sum(axis=-1, keepdims=True))
    tau, p = kendall_tau(built.hardness, large)
    low, high = kendall_tau_ci(built.hardness, large, n_boot=BOOTSTRAP_RESAMPLES, seed=seed)
    out.update(kendall_tau_small_large=tau, kendall_p=p, kendall_tau_ci95=[low, high],
               large_confusion=large)  # fmt: skip
    return out
