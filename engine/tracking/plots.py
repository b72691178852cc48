"""Plots of a run: error per score bin (the paper's Figure 4) and score histograms (Figure 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_error_by_bin(
    evaluations: list[dict], score: str, path: Path | str, *, metric: str = "top-1 error"
) -> Path:
    """Line plot of an error (``metric``) against score bin, one line per model, rho in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for ev in evaluations:
        errors = 100 * np.asarray(ev["error_per_bin"], dtype=float)
        ax.plot(
            np.arange(len(errors)),
            errors,
            marker="o",
            label=f"{ev['model']} (rho={ev['pearson_rho']:.2f})",
        )
    ax.set_xlabel(f"{score} bin (0 = easiest)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"Error by {score} bin")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_score_histogram(
    values_by_split: dict[str, np.ndarray], score: str, path: Path | str
) -> Path:
    """Histogram of a score per data split, log-scaled counts."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    all_values = np.concatenate(list(values_by_split.values()))
    edges = np.linspace(all_values.min(), all_values.max(), 31)
    for name, values in values_by_split.items():
        ax.hist(values, bins=edges, alpha=0.5, label=f"{name} (n={len(values)})")
    ax.set_yscale("log")
    ax.set_xlabel(f"{score} score")
    ax.set_ylabel("samples (log)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
