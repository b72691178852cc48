"""Label-error auditing: rank samples by how suspicious their given label is.

The audit combines the run's training-dynamics scores (action, AUM, forgetting
events) with two scores on out-of-fold probabilities (self-confidence and
normalized margin of the replica recipe trained by stratified K-fold, so no sample is
scored by a model that saw its label). Each score is turned into a suspicion
percentile (1 = most suspicious of all samples audited) and the audit score is their
mean: higher = more likely mislabelled.

Pure functions: the run-directory workflow (reading a run, writing the audit,
reviewers' verdicts and labels versions) is :mod:`engine.lifecycle.audit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.data.cache import take_rows
from engine.scores import get_score, normalized_margin, self_confidence

# The audit's scores, each read in its registry direction (harder = more suspicious
# label); ``<score>_oof`` is the score on out-of-fold probabilities. Score -> True when
# higher means a more suspicious label.
AUDIT_SCORES = {
    name: get_score(name.removesuffix("_oof")).higher_is_harder
    for name in ("action", "aum", "forgetting", "self_confidence_oof", "normalized_margin_oof")
}


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
    """An audit: one row per audited sample, most suspicious first.

    Attributes:
        table: Columns ``rank, sample_id, split, label, ensemble_pred, oof_pred``, each
            score in ``AUDIT_SCORES`` that was available, and ``audit_score`` in (0, 1]
            (higher = more suspicious).
        scores_used: The scores that entered ``audit_score``.
        oof_probs: Float (M, K) out-of-fold probabilities, rows in ``table`` order.
        data: The run's dataset as audited (class names, inputs, texts for the page).
    """

    table: pa.Table
    scores_used: list[str]
    oof_probs: np.ndarray
    data: object = None


def build_audit(scores: pa.Table, data: object, idx: np.ndarray, oof: np.ndarray) -> Audit:
    """Rank the samples ``idx`` by suspicion of their label: the audit table.

    Each score in ``AUDIT_SCORES`` that ``scores`` holds (and the two on the out-of-fold
    probabilities) becomes a suspicion percentile; ``audit_score`` is their mean.

    Args:
        scores: The run's score table, one row per sample in id order (``label``,
            ``ensemble_pred`` and the training-dynamics scores).
        data: The run's ``ClassificationData`` (labels, splits, clean labels if noise was
            injected).
        idx: Int (M,) sample ids to audit.
        oof: Float (M, K) out-of-fold probabilities of ``idx`` (:func:`out_of_fold_probs`).

    Returns:
        The audit, most suspicious first (ties by sample id).
    """
    labels = data.labels[idx]
    columns: dict[str, np.ndarray] = {
        "sample_id": idx.astype(np.int64),
        "split": data.split[idx],
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
    suspicion = np.mean([suspicion_percentile(columns[s], AUDIT_SCORES[s]) for s in used], axis=0)
    columns["audit_score"] = suspicion
    if data.clean_labels is not None:  # injected noise: the ground truth is known
        columns["flipped"] = data.labels[idx] != data.clean_labels[idx]
    order = np.lexsort((columns["sample_id"], -suspicion))  # most suspicious first, ties by id
    table = pa.table(
        {"rank": np.arange(1, len(idx) + 1), **{k: v[order] for k, v in columns.items()}}
    )
    return Audit(table=table, scores_used=used, oof_probs=oof[order], data=data)


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
