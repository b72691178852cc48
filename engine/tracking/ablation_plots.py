"""Plots of an epochs-and-seeds ablation (the paper's Figures 5 and 6).

The score's histograms per setting, and its correlation with a model's error.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from engine.tracking.plots import get_pyplot


def _full_replicas(figures: list[dict]) -> list[dict]:
    top = max(f["num_replicas"] for f in figures)
    return [f for f in figures if f["num_replicas"] == top]


def _full_epochs(figures: list[dict]) -> list[dict]:
    return [f for f in figures if f["epoch_rule"] == "all"]


def plot_ablation_histograms(
    figures: list[dict], edges: np.ndarray, score: str, path: Path | str
) -> Path:
    """Two panels of step histograms on shared edges.

    Left: the epoch subsets (all replicas); right: the replica counts (all epochs, the
    first draw of each).
    """
    plt = get_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    centres = (edges[:-1] + edges[1:]) / 2
    panels = (
        (axes[0], _full_replicas(figures), "epochs (all replicas)",
         lambda f: f"{f['num_epochs']} epochs ({f['epoch_rule']})"),
        (axes[1], [f for f in _full_epochs(figures) if f["draw"] == 0], "replicas (all epochs)",
         lambda f: f"{f['num_replicas']} replicas"),
    )  # fmt: skip
    for ax, rows, title, label in panels:
        for f in rows:
            ax.step(centres, f["histogram"], where="mid", label=label(f))
        ax.set_title(title)
        ax.set_xlabel(score)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("pool samples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_ablation_correlations(figures: list[dict], model: str, path: Path | str) -> Path:
    """Point-biserial r (95% interval) of the score's hardness vs ``model``'s error.

    Left: against the number of epochs (all replicas, one line per epoch rule); right:
    against the number of replicas (all epochs, every draw).
    """
    plt = get_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)

    def bars(ax: object, rows: list[dict], x_key: str, label: str, line: bool = True) -> None:
        rows = [f for f in rows if not math.isnan(f["pearson_r"])]
        if not rows:
            return
        x = np.array([f[x_key] for f in rows], dtype=float)
        r = np.array([f["pearson_r"] for f in rows])
        ci = np.array([f["pearson_r_ci95"] for f in rows], dtype=float)
        err = np.abs(np.vstack([r - ci[:, 0], ci[:, 1] - r]))
        ax.errorbar(x, r, yerr=np.nan_to_num(err), fmt="o-" if line and len(rows) > 1 else "o",
                    capsize=3, label=label)  # fmt: skip

    full_r = _full_replicas(figures)
    for rule in sorted({f["epoch_rule"] for f in full_r} - {"all"}):
        rows = sorted(
            [f for f in full_r if f["epoch_rule"] in (rule, "all")], key=lambda f: f["num_epochs"]
        )
        bars(axes[0], rows, "num_epochs", rule)
    bars(axes[1], sorted(_full_epochs(figures), key=lambda f: f["num_replicas"]),
         "num_replicas", "each draw", line=False)  # fmt: skip
    axes[0].set_xlabel("epochs used")
    axes[1].set_xlabel("replicas used")
    axes[0].set_ylabel(f"point-biserial r with {model}'s error")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
