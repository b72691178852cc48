"""The audit of text answers (QA spans, seq2seq targets) by training dynamics alone.

The NLP study's question in practice: does the action score (loss accumulated over
epochs) point a human auditor at mislabelled samples? A QA or seq2seq run has no
classes, so the confident-learning half of :mod:`engine.evaluation.audit` (out-of-fold
class probabilities) has no counterpart; the text audit ranks samples by the
training-dynamics scores the run computed (action; AUM and forgetting events where the
task defines them), each a suspicion percentile within its ranking (one data split,
or all samples pooled), averaged into ``audit_score``. With answers corrupted on
purpose (``data.label_noise``: wrong spans, swapped targets), each score's detection
AUROC and precision at the true count are measured per ranking.

Pure functions; the run-directory workflow is :mod:`engine.lifecycle.text_audit`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.evaluation.audit import (
    POOLED,
    Audit,
    detection_metrics,
    rank_by_suspicion,
)

# Scores a text audit may use (their directions are AUDIT_SCORES'), those the run computed
TEXT_AUDIT_SCORES = ("action", "aum", "forgetting")


def build_text_audit(
    scores: pa.Table,
    split: np.ndarray,
    idx: np.ndarray,
    corrupted: np.ndarray | None,
    *,
    pool: bool = False,
    data: object = None,
) -> Audit:
    """Rank the samples ``idx`` by how suspicious their answer is.

    Args:
        scores: The run's score table, one row per sample in id order.
        split: Str (N,) data split of every sample.
        idx: Int (M,) sample ids to audit.
        corrupted: Bool (N,) samples whose answer was corrupted on purpose, or None.
        pool: Rank all samples together instead of each data split on its own.
        data: The run's samples, kept on the audit for the page.

    Returns:
        The audit: ``table`` with ``rank, ranking, sample_id, split``, the scores used,
        ``audit_score`` (higher = more suspicious) and ``flipped`` (with ``corrupted``);
        no out-of-fold probabilities (an (M, 0) array) and no confident-learning
        estimate.

    Raises:
        ValueError: When the scores table holds none of :data:`TEXT_AUDIT_SCORES`.
    """
    used = [s for s in TEXT_AUDIT_SCORES if s in scores.column_names]
    if not used:
        raise ValueError(
            f"the run's scores hold none of {', '.join(TEXT_AUDIT_SCORES)}: nothing to audit by"
        )
    split = np.asarray(split).astype(str)[idx]
    columns: dict[str, np.ndarray] = {"sample_id": idx.astype(np.int64), "split": split}
    for name in used:
        columns[name] = scores.column(name).to_numpy()[idx]
    ranking = np.full(len(idx), POOLED) if pool else split
    suspicion, rank, parts = rank_by_suspicion(columns, used, ranking)
    columns["audit_score"] = suspicion
    if corrupted is not None:
        columns["flipped"] = np.asarray(corrupted, dtype=bool)[idx]
    order = np.concatenate(parts)
    table = pa.table(
        {
            "rank": rank[order],
            "ranking": ranking[order],
            **{k: v[order] for k, v in columns.items()},
        }
    )
    return Audit(table=table, scores_used=used, oof_probs=np.zeros((len(idx), 0)), data=data)


def detection_by_ranking(audit: Audit) -> dict[str, dict[str, dict[str, float]]]:
    """Each score's detection of the corrupted answers, within each ranking.

    Returns:
        Ranking -> :func:`engine.evaluation.audit.detection_metrics` on its rows (score
        -> ``{"precision_at_m", "auroc"}``; none for a ranking without a corrupted
        answer or without a clean one) plus ``corrupted``: ``count`` and ``samples``.
    """
    ranking = np.asarray(audit.table.column("ranking").to_pylist())
    out = {}
    for name in audit.rankings:
        rows = audit.table.filter(pa.array(ranking == name))
        part = Audit(table=rows, scores_used=audit.scores_used, oof_probs=audit.oof_probs[:0])
        flipped = rows.column("flipped").to_numpy(zero_copy_only=False)
        both = 0 < flipped.sum() < len(flipped)  # AUROC needs corrupted and clean rows
        out[name] = {
            **(detection_metrics(part) if both else {}),
            "corrupted": {"count": int(flipped.sum()), "samples": len(flipped)},
        }
    return out
