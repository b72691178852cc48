"""Plots of a run: error per score bin (the paper's Figure 4) and score histograms (Figure 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def get_pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures go to files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _direction(score: str) -> str:
    from engine.scores import get_score

    try:
        return get_score(score).direction
    except ValueError:  # not a registered score (a plot of another quantity)
        return "higher = harder"


def plot_error_by_bin(
    evaluations: list[dict], score: str, path: Path | str, *, metric: str = "top-1 error"
) -> Path:
    """Line plot of an error (``metric``) against score bin, one line per model, rho in the legend.

    Bins run from easiest (0) to hardest by the score's direction. This is a transfer
    figure, so the in-sample scorer (the replicas' own ensemble, ``in_sample``) is
    left out: its bins were cut from its own score. Evaluations of an unlabelled pool
    (``label_free``) plot each model's disagreement with the others instead.
    """
    from engine.splits.display import display_name, transfer_rows

    plt = get_pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    transfer = transfer_rows(evaluations)
    key = "error_per_bin"
    if transfer and all(ev.get("label_free") for ev in transfer):
        key, metric = "disagreement_per_bin", "disagreement with the other models' majority"
    for ev in transfer:
        errors = 100 * np.asarray(ev[key], dtype=float)
        ax.plot(
            np.arange(len(errors)),
            errors,
            marker="o",
            label=f"{display_name(ev)} (rho={ev['pearson_rho']:.2f})",
        )
    if not transfer:
        ax.text(0.5, 0.5, "no evaluated models", ha="center", va="center", transform=ax.transAxes)
    if evaluations:
        ax.set_xticks(range(len(evaluations[0]["error_per_bin"])))
    ax.set_xlabel(f"{score} bin (0 = easiest; {_direction(score)})")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"Error by {score} bin (evaluated models, not the scorer)")
    ax.grid(alpha=0.3)
    if transfer:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_score_histogram(
    values_by_split: dict[str, np.ndarray], score: str, path: Path | str
) -> Path:
    """Histogram of a score per data split, log-scaled counts.

    NaN values (where the score is undefined for a split) are left out.
    """
    plt = get_pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = {k: v[np.isfinite(v)] for k, v in values_by_split.items()}
    all_values = np.concatenate([v for v in finite.values() if len(v)] or [np.zeros(1)])
    edges = np.linspace(all_values.min(), all_values.max(), 31)
    for name, values in finite.items():
        if len(values):
            ax.hist(values, bins=edges, alpha=0.5, label=f"{name} (n={len(values)})")
    ax.set_yscale("log")
    ax.set_xlabel(f"{score} ({_direction(score)})")
    ax.set_ylabel("samples (log)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
