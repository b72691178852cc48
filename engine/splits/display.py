"""How evaluated models appear in every table: the card, the report, ``hardbench compare``.

A model's figures are *in-sample* (``in_sample``) when they are no held-out transfer
result. The replicas' own ensemble, the scorer, is always: it is scored on bins cut
from its own score, so it is marked as the in-sample scorer wherever it is shown and
left out of every transfer result. Every model is when the pool holds the samples it
trained on (``splits.pool: train`` or ``all``): its evaluation then carries
``in_sample_reason``, its name is marked ``(in-sample)`` and a note says why; it stays
in the transfer figures, marked.
"""

from __future__ import annotations

import math

import numpy as np

SCORER = "ensemble"  # the model name of the replicas' own ensemble, whose score cut the bins
IN_SAMPLE_LABEL = "scorer, in-sample"  # how the replicas' own ensemble is marked in every table
POOL_IN_SAMPLE_LABEL = "in-sample"  # how a model measured on its own training samples is marked
SINGLE_REPLICA = "single replica"  # what the "ensemble" of replicas.count: 1 is called
IN_SAMPLE_POOLS = ("train", "all")  # the splits.pool values that hold the models' training samples
TRAINED_ON_POOL = "the pool includes its training samples"  # in_sample_reason of such a pool
# the reason shown for a model marked in-sample with no reason recorded (an MLflow tag)
UNKNOWN_REASON = "measured on samples it trained on"
PARAM_SCALES = ((1e9, "B"), (1e6, "M"), (1e3, "k"))  # parameter-count suffixes, largest first


def pool_in_sample_reason(pool: str) -> str | None:
    """Why every model's figures on a ``splits.pool`` are in-sample; None for ``heldout``."""
    if pool in IN_SAMPLE_POOLS:
        return f"{TRAINED_ON_POOL} (splits.pool: {pool})"
    return None


def mark_in_sample(ev: dict, pool: str) -> dict:
    """Mark evaluation ``ev`` in-sample, with its reason, when ``pool`` holds its training samples.

    Args:
        ev: One model's evaluation; changed in place.
        pool: The spec's ``splits.pool``.

    Returns:
        ``ev``: on a ``train`` or ``all`` pool with ``in_sample`` True and
        ``in_sample_reason`` set; on ``heldout`` unchanged.
    """
    reason = pool_in_sample_reason(pool)
    if reason is not None:
        ev["in_sample"] = True
        ev["in_sample_reason"] = reason
    return ev


def is_scorer(ev: dict) -> bool:
    """Whether ``ev`` is the replicas' own ensemble, evaluated on bins cut from its own score."""
    return ev.get("model") == SCORER and bool(ev.get("in_sample"))


def transfer_rows(evaluations: list[dict]) -> list[dict]:
    """The evaluations that are transfer results: every model but the in-sample scorer.

    A model in-sample because the pool holds its training samples stays (it is marked
    wherever it is shown, :func:`display_name`).
    """
    return [ev for ev in evaluations if not is_scorer(ev)]


def display_name(ev: dict) -> str:
    """A model's label in tables and plots, marked when its figures are in-sample.

    The ensemble reads ``ensemble (scorer, in-sample)``, and one replica, which is no
    ensemble, ``single replica (scorer, in-sample)``; another in-sample model (the pool
    holds its training samples) reads ``<model> (in-sample)``.
    """
    if is_scorer(ev):
        name = SINGLE_REPLICA if ev.get("replicas") == 1 else ev["model"]
        return f"{name} ({IN_SAMPLE_LABEL})"
    if ev.get("in_sample"):
        return f"{ev['model']} ({POOL_IN_SAMPLE_LABEL})"
    return ev["model"]


def in_sample_note(evaluations: list[dict]) -> str | None:
    """One line naming the models measured on their own training samples and why; None if none.

    Every model with an ``in_sample_reason`` is named (the scorer too: on a ``train`` or
    ``all`` pool it is in-sample for both reasons), and every in-sample model that is
    not the scorer even without a recorded reason.
    """
    marked = [ev for ev in evaluations
              if ev.get("in_sample_reason") or (ev.get("in_sample") and not is_scorer(ev))]  # fmt: skip
    if not marked:
        return None
    reasons = sorted({ev.get("in_sample_reason") or UNKNOWN_REASON for ev in marked})
    names = ", ".join(ev["model"] for ev in marked)
    return (
        f"({POOL_IN_SAMPLE_LABEL}): {names}: {'; '.join(reasons)}: these are training-set "
        "figures, not held-out ones"
    )


def format_params(count: int | None) -> str:
    """A parameter count for tables: ``4.8k``, ``11.2M``; ``?`` when unknown."""
    if count is None:
        return "?"
    for scale, suffix in PARAM_SCALES:
        if count >= scale:
            return f"{count / scale:.1f}{suffix}"
    return str(count)


def format_confusion_vs_accuracy(record: dict) -> str:
    """One line for the end-of-run table and the card (:mod:`engine.evaluation.model_confusion`)."""

    def num(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{v:+.3f}"

    def ci(pair: list[float]) -> str:
        return "" if math.isnan(pair[0]) else f" (95% CI {pair[0]:+.3f}..{pair[1]:+.3f})"

    models = ", ".join(
        f"{n} {m['mean_confusion']:.3f} nats / {100 * m['accuracy']:.1f}%"
        for n, m in record["models"].items()
    )
    return (
        f"confusion vs accuracy across models ({models}): Pearson {num(record['pearson'])}"
        f"{ci(record['pearson_ci95'])}, Spearman {num(record['spearman'])}"
        f"{ci(record['spearman_ci95'])}" + (f"; {record['note']}" if record["note"] else "")
    )


def format_tau_matrix(record: dict) -> list[str]:
    """The matrix as table lines, one block per set (``[]`` for fewer than two scores)."""
    names = record["names"]
    if len(names) < 2:
        return []
    lines = []
    for set_name, rec in record["sets"].items():
        cells = [
            [
                f"{value:+.3f}" if i == j or np.isnan(rec["tau_ci95"][i][j][0])
                else f"{value:+.3f} [{rec['tau_ci95'][i][j][0]:.3f}, {rec['tau_ci95'][i][j][1]:.3f}]"
                for j, value in enumerate(row)
            ]
            for i, row in enumerate(rec["tau"])
        ]  # fmt: skip
        width = 2 + max(len(c) for c in [*names, *(c for row in cells for c in row)])
        lines.append(
            f"Kendall tau of confusion between seed ensembles, {set_name} samples "
            f"({rec['count']}; 95% intervals from {rec['interval_samples']}):"
        )
        lines.append(f"{'':<{width}}" + "".join(f"{n:>{width}}" for n in names))
        for name, row in zip(names, cells, strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"{c:>{width}}" for c in row))
    return lines
