"""What an unlabelled pool allows measuring: each model's own confusion and its disagreement with the others.

With no labels there is no error. Two label-free measures stand in for it, per bin of
the small ensemble's score (bin 0 = easiest):

- **confusion** of a model: the entropy of its own predicted distribution (natural
  log, higher = less sure), its mean per bin;
- **disagreement** (``disagreement_*``): the share of samples where the model's top-1
  class differs from the majority vote of the *other evaluated models* (ties go to the
  lowest class id). The replicas' own ensemble is left out of the vote: it is the
  scorer whose confusion cut the bins, so a vote it joins is circular. A model with no
  other evaluated model to vote against has no disagreement: NaN, and
  ``disagreement_note`` says why.
- ``disagreement_with_scorer_*``: the same share against the vote of the other
  evaluated models *and* the scorer's ensemble (what ``disagreement_*`` measured before
  issue 27), kept under its own name.

If the small ensemble's hard samples are hard for large models too, both rise with
the bin. Labels attached later (``data.pool_labels``) turn the error metrics on.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from engine.evaluation.evaluate import BOOTSTRAP_RESAMPLES, unmeasured_errors
from engine.evaluation.metrics import auroc, auroc_ci, bin_centres, pearson_bins
from engine.scores.classification import entropy
from engine.splits.builder import BuiltSplits

DISAGREEMENT_KEYS = ("disagreement_all", "disagreement_hard", "disagreement_rest")
# the disagreement with the vote the scorer's ensemble joins (circular: its score cut the bins)
WITH_SCORER_KEYS = (
    "disagreement_with_scorer_all",
    "disagreement_with_scorer_hard",
    "disagreement_with_scorer_rest",
)
# disagreement_note of a model with no other evaluated model to vote against
NO_OTHER_MODELS = (
    "no other evaluated model to vote against (the scorer's ensemble is left out: its "
    "score cut the bins); evaluate two or more models to measure disagreement"
)


def majority_vote(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Int (P,) most frequent class over the rows of int (M, P) predictions, lowest id on ties.

    Raises:
        ValueError: For no rows (M = 0): there is no vote to take.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[0] == 0:
        raise ValueError(f"majority_vote needs (M >= 1, P) predictions, got shape {preds.shape}")
    counts = np.zeros((preds.shape[1], num_classes), dtype=np.int64)
    for row in preds:
        counts[np.arange(preds.shape[1]), row] += 1
    return counts.argmax(axis=1)


def _per_bin(values: np.ndarray, bins: np.ndarray, num_bins: int) -> list[float]:
    return [float(values[bins == b].mean()) if (bins == b).any() else math.nan
            for b in range(num_bins)]  # fmt: skip


def _parts(values: np.ndarray | None, hard: np.ndarray) -> tuple[float, float, float]:
    """Mean of ``values`` over the pool, the hard split and the rest; NaN for no values."""
    if values is None:
        return math.nan, math.nan, math.nan
    return float(values.mean()), float(values[hard].mean()), float(values[~hard].mean())


def evaluate_label_free(
    name: str,
    probs: np.ndarray,
    others: np.ndarray,
    splits: BuiltSplits,
    *,
    scorer: np.ndarray | None = None,
    params: int | None = None,
    in_sample_reason: str | None = None,
    seed: int = 0,
) -> dict:
    """Label-free transfer metrics of one model on the pool of a built benchmark.

    Args:
        name: Model label.
        probs: Float (P, K) the model's predicted distribution per pool sample.
        others: Int (M, P) the other *evaluated* models' top-1 classes; M may be 0 (the
            model is the only one evaluated: its disagreement is NaN, with a note).
        splits: The built benchmark (its bins are read in the score's direction).
        scorer: Int (P,) the replicas' ensemble's top-1 classes, for
            ``disagreement_with_scorer_*`` (NaN without it).
        params: The model's number of parameters.
        in_sample_reason: Why the model's figures are in-sample (the pool holds its
            training samples), or None for a held-out pool.
        seed: Seed of the bootstrap resampling.

    Returns:
        ``{"model", "label_free": True, "in_sample", "params", "confusion_all|hard|rest",
        "confusion_per_bin", "disagreement_all|hard|rest", "disagreement_per_bin",
        "disagreement_note" (None, or why there is no disagreement),
        "disagreement_with_scorer_all|hard|rest", "pearson_rho"/"pearson_p" (bin centre
        vs disagreement) and "pearson_rho_ci95", "auroc_score_disagreement" and
        "auroc_score_disagreement_ci95"}`` (``in_sample_reason`` too when
        given) plus the error and miss keys of a labelled evaluation
        (:func:`engine.evaluation.evaluate.unmeasured_errors`): NaN, ``num_misses`` None
        (there is no label to measure an error against).
    """
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    others = np.asarray(others, dtype=np.int64).reshape(-1, len(pred))
    disagree = pred != majority_vote(others, k) if len(others) else None
    with_scorer = None
    if scorer is not None:
        voters = np.concatenate([others, np.asarray(scorer, dtype=np.int64).reshape(1, -1)])
        with_scorer = (pred != majority_vote(voters, k)).astype(float)
    conf = entropy(probs / probs.sum(axis=1, keepdims=True))
    nb = len(splits.bin_edges)
    hard = splits.is_hard
    nan2 = [math.nan, math.nan]
    if disagree is None:
        dis_bins, roc, roc_ci = [math.nan] * nb, math.nan, nan2
        rho = p = lo = hi = math.nan
    else:
        dis_bins = _per_bin(disagree.astype(float), splits.bins, nb)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no disagreement at all: AUROC undefined (NaN)
            roc = auroc(splits.hardness, disagree)
        roc_ci = list(auroc_ci(splits.hardness, disagree, n_boot=BOOTSTRAP_RESAMPLES, seed=seed))
        rho, p, lo, hi = pearson_bins(  # over the bins at their centres, as a labelled one
            bin_centres(splits.hardness, splits.bins, nb), disagree.astype(float), splits.bins,
            n_boot=BOOTSTRAP_RESAMPLES, seed=seed,
        )  # fmt: skip
    dis = _parts(None if disagree is None else disagree.astype(float), hard)
    ev = {
        "model": name,
        "label_free": True,
        "in_sample": in_sample_reason is not None,
        "params": params,
        "confusion_all": float(conf.mean()),
        "confusion_hard": float(conf[hard].mean()),
        "confusion_rest": float(conf[~hard].mean()),
        "confusion_per_bin": _per_bin(conf, splits.bins, nb),
        **dict(zip(DISAGREEMENT_KEYS, dis, strict=True)),
        "disagreement_per_bin": dis_bins,
        "disagreement_note": NO_OTHER_MODELS if disagree is None else None,
        **dict(zip(WITH_SCORER_KEYS, _parts(with_scorer, hard), strict=True)),
        "pearson_rho": rho,
        "pearson_p": p,
        "auroc_score_disagreement": roc,
        **unmeasured_errors(nb),
        "pearson_rho_ci95": [lo, hi],
        "auroc_score_disagreement_ci95": roc_ci,
    }
    if in_sample_reason is not None:
        ev["in_sample_reason"] = in_sample_reason
    return ev


def format_label_free_table(
    built: BuiltSplits, evaluations: list[dict], score: str, transfer: dict | None = None
) -> str:
    """The end-of-run table of an unlabelled pool: per bin, each model's confusion and disagreement.

    Disagreement is with the majority of the other evaluated models (the scorer's
    ensemble is left out); a model with none reads ``n/a``, and a line says why.
    In-sample models (a pool that holds their training samples) are marked.
    """
    from engine.scores import get_score
    from engine.splits.display import display_name, format_params, in_sample_note

    names = [display_name(ev) for ev in evaluations]
    width = max(18, *(len(n) + 2 for n in names))
    head = f"{'bin':<6}{score + ' range':<22}{'count':>7}" + "".join(f"{n:>{width}}" for n in names)
    rows = [
        f"unlabelled pool: each model's confusion (mean entropy, nats) / disagreement with the "
        f"majority of the other evaluated models (the scorer's ensemble left out); bins from "
        f"easiest (0) to hardest by {score} ({get_score(score).direction})",
        head,
        "-" * len(head),
        f"{'params':<35}"
        + "".join(f"{format_params(ev['params']):>{width}}" for ev in evaluations),
    ]

    def cell(c: float, d: float) -> str:
        return f"{c:.3f} / " + ("n/a" if math.isnan(d) else f"{100 * d:.1f}%")

    def num(x: float, fmt: str) -> str:
        return "n/a" if math.isnan(x) else format(x, fmt)

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
    for ev, name in zip(evaluations, names, strict=True):
        if ev.get("disagreement_note"):
            rows.append(f"{name}: disagreement n/a: {ev['disagreement_note']}")
            continue
        rows.append(
            f"{name}: Pearson rho(bin, disagreement) = {num(ev['pearson_rho'], '+.3f')}, "
            f"AUROC({score} hardness -> disagreement) = "
            f"{num(ev['auroc_score_disagreement'], '.3f')}"
        )
    note = in_sample_note(evaluations)
    if note:
        rows.append(note)
    if transfer and transfer.get("kendall_tau_small_large") is not None:
        rows.append(
            f"Kendall tau between the small ensemble's {score} hardness and the reference models' "
            f"confusion ({', '.join(transfer['reference_models'])}) = "
            f"{transfer['kendall_tau_small_large']:+.3f}"
        )
    rows.append("no labels: errors are not measured (data.pool_labels attaches labels)")
    return "\n".join(rows)
