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

    Bins run from easiest (0) to hardest by the score's direction; each sits at its
    centre (the mean score of its samples, ``bin_centres``) with its 95% interval where
    the evaluations record them (runs before issue 27 plot the bin index). This is a transfer
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
    centred = (
        bool(transfer) and key == "error_per_bin" and all("bin_centres" in ev for ev in transfer)
    )
    for ev in transfer:
        errors = 100 * np.asarray(ev[key], dtype=float)
        x = np.asarray(ev["bin_centres"], dtype=float) if centred else np.arange(len(errors))
        ci = np.asarray(ev.get("error_per_bin_ci95") or [], dtype=float)
        label = f"{display_name(ev)} (rho={ev['pearson_rho']:.2f})"
        if centred and ci.shape == (len(errors), 2):
            err = np.abs(np.vstack([errors - 100 * ci[:, 0], 100 * ci[:, 1] - errors]))
            ax.errorbar(x, errors, yerr=np.nan_to_num(err), marker="o", capsize=3, label=label)
        else:
            ax.plot(x, errors, marker="o", label=label)
    if not transfer:
        ax.text(0.5, 0.5, "no evaluated models", ha="center", va="center", transform=ax.transAxes)
    if centred:
        ax.set_xlabel(f"{score} (each bin at the mean score of its samples; {_direction(score)})")
    else:
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


def plot_error_by_width_bin(evaluations: list[dict], score: str, path: Path | str) -> Path:
    """Error (95% intervals) in the fixed-width bins of the score, the bin's midpoint on x.

    The paper's Figures 2 and 4 bin confusion 1 nat at a time; an empty bin is skipped.
    The in-sample scorer is left out, as in :func:`plot_error_by_bin`.
    """
    from engine.splits.display import display_name, transfer_rows

    plt = get_pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = [ev for ev in transfer_rows(evaluations) if "error_per_width_bin" in ev]
    for ev in rows:
        edges = np.asarray(ev["width_bin_edges"], dtype=float)
        mid = (edges[:-1] + edges[1:]) / 2
        errors = 100 * np.asarray(ev["error_per_width_bin"], dtype=float)
        ci = 100 * np.asarray(ev["error_per_width_bin_ci95"], dtype=float)
        keep = np.isfinite(errors)
        err = np.abs(np.vstack([errors - ci[:, 0], ci[:, 1] - errors]))[:, keep]
        rho = ev["pearson_rho_width"]
        label = display_name(ev) + (f" (rho={rho:.2f})" if np.isfinite(rho) else "")
        ax.errorbar(mid[keep], errors[keep], yerr=np.nan_to_num(err), marker="o", capsize=3,
                    label=label)  # fmt: skip
    if rows:
        edges = rows[0]["width_bin_edges"]
        ax.set_xticks(edges)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no evaluated models", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"{score}, fixed-width bins ({_direction(score)})")
    ax.set_ylabel("error (%)")
    ax.set_title(f"Error by fixed-width {score} bin (evaluated models, not the scorer)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_confusion_vs_accuracy(record: dict, path: Path | str) -> Path:
    """Each evaluated model's mean confusion on the pool against its accuracy, r in the title."""
    plt = get_pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, m in record["models"].items():
        ax.scatter(m["mean_confusion"], 100 * m["accuracy"])
        ax.annotate(name, (m["mean_confusion"], 100 * m["accuracy"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")  # fmt: skip
    r, (lo, hi) = record["pearson"], record["pearson_ci95"]
    title = "confusion vs accuracy across models"
    if np.isfinite(r):
        title += f": r = {r:+.2f}" + (
            f"\n[{lo:+.2f}, {hi:+.2f}]: 95% CI over resamples of the pool, not of the models"
            if np.isfinite(lo)
            else ""
        )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("mean confusion on the pool (nats; one seed, final epoch)")
    ax.set_ylabel("accuracy on the pool (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_train_vs_heldout(evaluations: list[dict], score: str, path: Path | str) -> Path:
    """Error by bin on the held-out pool and on the training samples, side by side.

    The paper's Figure 2. Each set has its own equal-count bins, each bin at its
    centre (the mean score of its samples). On the training samples the evaluated
    models saw the labels: the right panel is in-sample, and says so.
    """
    from engine.splits.display import display_name, transfer_rows

    plt = get_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    rows = [ev for ev in transfer_rows(evaluations) if "train_samples" in ev]
    for ax, title, get in (
        (axes[0], "held-out pool", lambda ev: ev),
        (axes[1], "training samples (the models trained on them: in-sample)",
         lambda ev: ev["train_samples"]),
    ):  # fmt: skip
        for ev in rows:
            rec = get(ev)
            ax.plot(rec["bin_centres"], 100 * np.asarray(rec["error_per_bin"], dtype=float),
                    marker="o", label=display_name(ev))  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"{score} (bin centres; {_direction(score)})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 error (%)")
    if rows:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


SCATTER_POINTS = 4000  # samples drawn per scatter panel (seeded), so the figure stays light


def plot_seed_ensemble_scatter(
    values: dict[str, np.ndarray], taus: dict, path: Path | str, *, split: np.ndarray
) -> Path:
    """The replicas' confusion against each seed ensemble's, on the held-out samples.

    The paper's Figure 3: one panel per ensemble, tau (95% interval) in its title.
    Draws at most :data:`SCATTER_POINTS` samples per panel (seeded).
    """
    plt = get_pyplot()
    names = [n for n in values if n != "replicas"]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 4),
                             squeeze=False)  # fmt: skip
    set_name = "heldout" if "heldout" in taus["sets"] else next(iter(taus["sets"]))
    rec = taus["sets"][set_name]
    ids = np.flatnonzero(split == set_name)
    rng = np.random.default_rng(0)
    shown = np.sort(rng.choice(ids, min(len(ids), SCATTER_POINTS), replace=False))
    col = taus["names"].index("replicas")
    for ax, name in zip(axes[0], names, strict=False):
        row = taus["names"].index(name)
        lo, hi = rec["tau_ci95"][col][row]
        ax.scatter(values["replicas"][shown], values[name][shown], s=3, alpha=0.4)
        ax.set_title(f"{name} ({taus['seeds'][name]} seeds): tau = {rec['tau'][col][row]:.3f}"
                     f" [{lo:.3f}, {hi:.3f}]", fontsize=9)  # fmt: skip
        ax.set_xlabel(f"replicas' confusion ({taus['seeds']['replicas']} seeds)")
        ax.set_ylabel(f"{name} seed ensemble's confusion")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{set_name} samples ({len(ids)}; {len(shown)} drawn)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
