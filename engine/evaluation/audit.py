"""Label-error auditing: rank samples by how suspicious their given label is.

The audit combines the run's training-dynamics scores (action, AUM, forgetting
events) with two scores on out-of-fold probabilities (self-confidence and
normalized margin of the replica recipe trained by stratified K-fold, so no sample is
scored by a model that saw its label). Each score is turned into a suspicion
percentile (1 = most suspicious of the samples ranked together) and the audit score is
their mean: higher = more likely mislabelled.

Each data split is ranked on its own by default (a *ranking* per split: the replicas
trained on the training samples, so action, AUM and forgetting are distributed
differently there than on held-out samples); ``pool=True`` ranks every audited sample
together. Within each ranking, confident learning
(:mod:`engine.evaluation.confident_learning`) estimates how many labels are wrong and
flags which (``issue``).

Pure functions: the run-directory workflow (reading a run, writing the audit,
reviewers' verdicts and labels versions) is :mod:`engine.lifecycle.audit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from engine.data.cache import take_rows
from engine.evaluation.confident_learning import (
    find_label_issues,
    label_error_rate,
    label_issues_per_class,
)
from engine.scores import get_score, normalized_margin, self_confidence

# The audit's scores, each read in its registry direction (harder = more suspicious
# label); ``<score>_oof`` is the score on out-of-fold probabilities. Score -> True when
# higher means a more suspicious label.
AUDIT_SCORES = {
    name: get_score(name.removesuffix("_oof")).higher_is_harder
    for name in ("action", "aum", "forgetting", "self_confidence_oof", "normalized_margin_oof")
}
POOLED = "pooled"  # the ranking of samples of every audited split ranked together
SPLIT_ORDER = ("train", "heldout")  # rankings listed in this order, unknown splits after


def suspicion_percentile(values: np.ndarray, higher_is_suspicious: bool) -> np.ndarray:
    """Average-rank percentile in (0, 1]; 1 = the most suspicious sample.

    Args:
        values: Float (N,) scores.
        higher_is_suspicious: Direction of the score.

    Returns:
        Float (N,) percentiles; ties share their average rank.
    """
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=np.float64)
    return rankdata(v if higher_is_suspicious else -v, method="average") / len(v)


def out_of_fold_probs(
    data: object, recipe: object, idx: np.ndarray, *, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Probabilities for ``idx`` from models that never saw those samples' labels.

    Stratified ``folds``-fold cross-fitting of ``recipe`` over the samples ``idx``: each
    fold is predicted by a model trained on the other folds.

    Args:
        data: A ``ClassificationData``.
        recipe: The ``TrainRecipe`` to fit (the replicas' by default).
        idx: Int (M,) sample ids to audit.
        folds: Number of folds (>= 2).
        seed: Seed of the fold assignment; fold f's model uses ``recipe.seed + 1000 + f``.

    Returns:
        Float64 (M, K) out-of-fold probabilities, rows in the order of ``idx``.
    """
    import torch

    from engine.training import infer, train

    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    labels = data.labels[idx]
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(idx), dtype=np.int64)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        fold_of[members] = np.arange(len(members)) % folds
    out = np.zeros((len(idx), data.num_classes))
    for f in range(folds):
        fit, held = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        model = train(
            recipe.with_seed(recipe.seed + 1000 + f),
            take_rows(data.inputs, idx[fit]),
            labels[fit],
            num_classes=data.num_classes,
        )
        logits = torch.as_tensor(
            infer(model, take_rows(data.inputs, idx[held])), dtype=torch.float64
        )
        out[held] = torch.softmax(logits, dim=1).numpy()
    return out


@dataclass
class Audit:
    """An audit: one row per audited sample, each ranking most suspicious first.

    Attributes:
        table: Columns ``rank`` (1 = most suspicious within its ranking), ``ranking``
            (the data split ranked, or :data:`POOLED`), ``sample_id, split, label,
            ensemble_pred, oof_pred``, each score in ``AUDIT_SCORES`` that was available,
            ``audit_score`` in (0, 1] (higher = more suspicious), ``issue`` (confident
            learning flags the label) and ``flipped`` (injected noise only). Rankings
            follow each other (train, then held-out).
        scores_used: The scores that entered ``audit_score``.
        oof_probs: Float (M, K) out-of-fold probabilities, rows in ``table`` order.
        data: The run's dataset as audited (class names, inputs, texts for the page).
        label_issues: Ranking -> confident-learning estimate within it: ``samples``,
            ``num_label_issues``, ``per_class`` (K ints, by given label), ``flagged``
            (rows with ``issue``).
        error_rates: Data split -> :func:`label_error_rate` of its samples alone
            (estimated share of wrong labels with a bootstrap 95% interval).
    """

    table: pa.Table
    scores_used: list[str]
    oof_probs: np.ndarray
    data: object = None
    label_issues: dict[str, dict] = field(default_factory=dict)
    error_rates: dict[str, dict] = field(default_factory=dict)

    @property
    def rankings(self) -> list[str]:
        """The rankings of the table, in table order."""
        return list(dict.fromkeys(self.table.column("ranking").to_pylist()))


def ranking_order(names: np.ndarray) -> list[str]:
    """The distinct rankings of ``names``: train, held-out, pooled, then any other sorted."""
    present = set(names.tolist())
    known = [s for s in (*SPLIT_ORDER, POOLED) if s in present]
    return known + sorted(present - set(known))


def rank_by_suspicion(
    columns: dict[str, np.ndarray], used: list[str], ranking: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The audit score and rank of every sample within its ranking.

    Args:
        columns: ``sample_id`` (M,) and each score of ``used`` (M,).
        used: Scores of :data:`AUDIT_SCORES` to average, each read in its direction.
        ranking: Str (M,) the ranking each sample belongs to (a data split or
            :data:`POOLED`).

    Returns:
        ``(audit_score (M,) in (0, 1], higher = more suspicious; rank (M,), 1 = most
        suspicious of its ranking; one index array per ranking in
        :func:`ranking_order`, most suspicious first, ties by sample id)``.
    """
    suspicion = np.zeros(len(ranking))
    rank = np.zeros(len(ranking), dtype=np.int64)
    parts = []
    for name in ranking_order(ranking):
        members = np.flatnonzero(ranking == name)
        suspicion[members] = np.mean(
            [suspicion_percentile(columns[s][members], AUDIT_SCORES[s]) for s in used], axis=0
        )
        part = members[np.lexsort((columns["sample_id"][members], -suspicion[members]))]
        rank[part] = np.arange(1, len(part) + 1)
        parts.append(part)
    return suspicion, rank, parts


def build_audit(
    scores: pa.Table, data: object, idx: np.ndarray, oof: np.ndarray, *, pool: bool = False
) -> Audit:
    """Rank the samples ``idx`` by suspicion of their label: the audit table.

    Each score in ``AUDIT_SCORES`` that ``scores`` holds (and the two on the out-of-fold
    probabilities) becomes a suspicion percentile within its ranking; ``audit_score`` is
    their mean. A ranking is one data split (default) or, with ``pool``, every sample.
    Confident learning on ``oof`` estimates the wrong labels within each ranking and
    flags them (``issue``); the label-error rate of every data split is estimated on that
    split's samples alone, with a seeded bootstrap interval.

    Args:
        scores: The run's score table, one row per sample in id order (``label``,
            ``ensemble_pred`` and the training-dynamics scores).
        data: The run's ``ClassificationData`` (labels, splits, clean labels if noise was
            injected).
        idx: Int (M,) sample ids to audit.
        oof: Float (M, K) out-of-fold probabilities of ``idx`` (:func:`out_of_fold_probs`).
        pool: Rank all samples together instead of each data split on its own.

    Returns:
        The audit, each ranking most suspicious first (ties by sample id).
    """
    labels = data.labels[idx]
    split = np.asarray(data.split[idx]).astype(str)
    columns: dict[str, np.ndarray] = {
        "sample_id": idx.astype(np.int64),
        "split": split,
        "label": labels.astype(np.int64),
        "ensemble_pred": scores.column("ensemble_pred").to_numpy()[idx],
        "oof_pred": oof.argmax(axis=1),
    }
    for name in ("action", "aum", "forgetting"):
        if name in scores.column_names:
            columns[name] = scores.column(name).to_numpy()[idx]
    columns["self_confidence_oof"] = self_confidence(labels, oof)
    columns["normalized_margin_oof"] = normalized_margin(labels, oof)
    used = [s for s in AUDIT_SCORES if s in columns]
    ranking = np.full(len(idx), POOLED) if pool else split
    suspicion, rank, order_parts = rank_by_suspicion(columns, used, ranking)
    issue = np.zeros(len(idx), dtype=bool)
    label_issues = {}
    for name in ranking_order(ranking):
        members = np.flatnonzero(ranking == name)
        issue[members] = find_label_issues(labels[members], oof[members])
        per_class = label_issues_per_class(labels[members], oof[members])
        label_issues[name] = {
            "samples": len(members),
            "num_label_issues": int(per_class.sum()),
            "per_class": [int(c) for c in per_class],
            "flagged": int(issue[members].sum()),
        }
    columns["audit_score"] = suspicion
    columns["issue"] = issue
    if data.clean_labels is not None:  # injected noise: the ground truth is known
        columns["flipped"] = data.labels[idx] != data.clean_labels[idx]
    error_rates = {
        name: label_error_rate(labels[split == name], oof[split == name])
        for name in ranking_order(split)
    }
    order = np.concatenate(order_parts)
    table = pa.table(
        {
            "rank": rank[order],
            "ranking": ranking[order],
            **{k: v[order] for k, v in columns.items()},
        }
    )
    return Audit(
        table=table,
        scores_used=used,
        oof_probs=oof[order],
        data=data,
        label_issues=label_issues,
        error_rates=error_rates,
    )


def detection_metrics(audit: Audit) -> dict[str, dict[str, float]]:
    """Precision at the true number of flipped labels and AUROC of each score.

    Only for runs with injected label noise (the table has a ``flipped`` column).

    Returns:
        Score name (and ``audit_score``) -> ``{"precision_at_m", "auroc"}``.
    """
    from engine.evaluation import auroc

    flipped = audit.table.column("flipped").to_numpy()
    m = int(flipped.sum())
    out = {}
    for name in [*audit.scores_used, "audit_score"]:
        values = audit.table.column(name).to_numpy()
        sus = values if name == "audit_score" or AUDIT_SCORES[name] else -values
        top = np.argsort(-sus, kind="stable")[:m]
        out[name] = {"precision_at_m": float(flipped[top].mean()), "auroc": auroc(sus, flipped)}
    return out


def issue_detection(audit: Audit) -> dict[str, dict[str, float | int | None]]:
    """Confident learning against injected noise, per ranking: count, precision, recall.

    Only for runs with injected label noise (the table has a ``flipped`` column).

    Returns:
        Ranking -> ``{"injected", "estimated", "flagged", "precision", "recall"}``:
        flipped labels, the estimated number of wrong labels, the rows flagged ``issue``,
        and the share of flagged rows that were flipped / of flipped rows flagged (None
        when there is none to divide by).
    """
    t = audit.table
    ranking = t.column("ranking").to_numpy(zero_copy_only=False)
    flipped = t.column("flipped").to_numpy(zero_copy_only=False)
    issue = t.column("issue").to_numpy(zero_copy_only=False)
    out = {}
    for name, est in audit.label_issues.items():
        rows = ranking == name
        hit = int((flipped & issue & rows).sum())
        flagged, injected = int((issue & rows).sum()), int((flipped & rows).sum())
        out[name] = {
            "injected": injected,
            "estimated": est["num_label_issues"],
            "flagged": flagged,
            "precision": hit / flagged if flagged else None,
            "recall": hit / injected if injected else None,
        }
    return out
