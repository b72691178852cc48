"""What an unlabelled pool allows measuring: each model's own confusion and its disagreement with the others.

With no labels there is no error. Two label-free measures stand in for it, per bin of
the small ensemble's score (bin 0 = easiest):

- **confusion** of a model: the entropy of its own predicted distribution (natural
  log, higher = less sure), its mean per bin;
- **disagreement**: the share of samples where the model's top-1 class differs from
  the majority vote of the other predictors (the other evaluated models and the
  replicas' final-epoch ensemble; ties go to the lowest class id).

If the small ensemble's hard samples are hard for large models too, both rise with
the bin. Labels attached later (``data.pool_labels``) turn the error metrics on.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from engine.evaluation.evaluate import unmeasured_errors
from engine.evaluation.metrics import auroc, pearson_bin_error
from engine.scores.classification import entropy
from engine.splits.builder import BuiltSplits

DISAGREEMENT_KEYS = ("disagreement_all", "disagreement_hard", "disagreement_rest")


def majority_vote(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Int (P,) most frequent class over the rows of int (M, P) predictions, lowest id on ties."""
    counts = np.zeros((preds.shape[1], num_classes), dtype=np.int64)
    for row in preds:
        counts[np.arange(preds.shape[1]), row] += 1
    return counts.argmax(axis=1)


def _per_bin(values: np.ndarray, bins: np.ndarray, num_bins: int) -> list[float]:
    return [float(values[bins == b].mean()) if (bins == b).any() else math.nan
            for b in range(num_bins)]  # fmt: skip


def evaluate_label_free(
    name: str,
    probs: np.ndarray,
    others: np.ndarray,
    splits: BuiltSplits,
    *,
    params: int | None = None,
) -> dict:
    """Label-free transfer metrics of one model on the pool of a built benchmark.

    Args:
        name: Model label.
        probs: Float (P, K) the model's predicted distribution per pool sample.
        others: Int (M, P) the other predictors' top-1 classes (M >= 1).
        splits: The built benchmark (its bins are read in the score's direction).
        params: The model's number of parameters.

    Returns:
        ``{"model", "label_free": True, "in_sample": False, "params",
        "confusion_all|hard|rest", "confusion_per_bin", "disagreement_all|hard|rest",
        "disagreement_per_bin", "pearson_rho"/"pearson_p" (bin vs disagreement),
        "auroc_score_disagreement"}`` plus the error and miss keys of a labelled evaluation
        (:func:`engine.evaluation.evaluate.unmeasured_errors`): NaN, ``num_misses`` None
        (there is no label to measure an error against).
    """
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    disagree = pred != majority_vote(np.asarray(others), k)
    conf = entropy(probs / probs.sum(axis=1, keepdims=True))
    nb = len(splits.bin_edges)
    hard = splits.is_hard
    dis_bins = _per_bin(disagree.astype(float), splits.bins, nb)
    rho, p = pearson_bin_error(np.asarray(dis_bins))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no disagreement at all: AUROC undefined (NaN)
        roc = auroc(splits.hardness, disagree)
    return {
        "model": name,
        "label_free": True,
        "in_sample": False,
        "params": params,
        "confusion_all": float(conf.mean()),
        "confusion_hard": float(conf[hard].mean()),
        "confusion_rest": float(conf[~hard].mean()),
        "confusion_per_bin": _per_bin(conf, splits.bins, nb),
        "disagreement_all": float(disagree.mean()),
        "disagreement_hard": float(disagree[hard].mean()),
        "disagreement_rest": float(disagree[~hard].mean()),
        "disagreement_per_bin": dis_bins,
        "pearson_rho": rho,
        "pearson_p": p,
        "auroc_score_disagreement": roc,
        **unmeasured_errors(nb),
    }  # fmt: skip


def format_label_free_table(
    built: BuiltSplits, evaluations: list[dict], score: str, transfer: dict | None = None
) -> str:
    """The end-of-run table of an unlabelled pool: per bin, each model's confusion and disagreement."""
    from engine.scores import get_score
    from engine.splits.display import format_params

    names = [ev["model"] for ev in evaluations]
    width = max(18, *(len(n) + 2 for n in names))
    head = f"{'bin':<6}{score + ' range':<22}{'count':>7}" + "".join(f"{n:>{width}}" for n in names)
    rows = [
        f"unlabelled pool: each model's confusion (mean entropy, nats) / disagreement with the "
        f"others' majority; bins from easiest (0) to hardest by {score} "
        f"({get_score(score).direction})",
        head,
        "-" * len(head),
        f"{'params':<35}"
        + "".join(f"{format_params(ev['params']):>{width}}" for ev in evaluations),
    ]

    def cell(c: float, d: float) -> str:
        return f"{c:.3f} / {100 * d:.1f}%"

    for b, (lo, hi) in enumerate(built.bin_edges):
        rows.append(f"{b:<6}{f'{lo:.4f} .. {hi:.4f}':<22}{int((built.bins == b).sum()):>7}" + "".join(
            f"{cell(ev['confusion_per_bin'][b], ev['disagreement_per_bin'][b]):>{width}}"
            for ev in evaluations))  # fmt: skip
    rows.append("-" * len(head))
    n_hard = int(built.is_hard.sum())
    for label, part, count in (("hard", "hard", n_hard), ("rest", "rest", len(built.is_hard) - n_hard),
                               ("all", "all", len(built.is_hard))):  # fmt: skip
        rows.append(f"{label:<28}{count:>7}" + "".join(
            f"{cell(ev[f'confusion_{part}'], ev[f'disagreement_{part}']):>{width}}"
            for ev in evaluations))  # fmt: skip
    rows.append("")
    for ev in evaluations:
        rows.append(
            f"{ev['model']}: Pearson rho(bin, disagreement) = {ev['pearson_rho']:+.3f}, "
            f"AUROC({score} hardness -> disagreement) = {ev['auroc_score_disagreement']:.3f}"
        )
    if transfer and transfer.get("kendall_tau_small_large") is not None:
        rows.append(
            f"Kendall tau between the small ensemble's {score} hardness and the reference models' "
            f"confusion ({', '.join(transfer['reference_models'])}) = "
            f"{transfer['kendall_tau_small_large']:+.3f}"
        )
    rows.append("no labels: errors are not measured (data.pool_labels attaches labels)")
    return "\n".join(rows)
