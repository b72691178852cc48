"""The epochs-and-seeds ablation of a difficulty score (the paper's Section 3.3, Figures 5 and 6).

Confusion is an average over epochs of the entropy of a replica-mean; how much of the
run does it need? A *setting* is a subset of the epochs and replicas a run recorded:

- epoch subsets: for each count n below the run's E, ``every_k`` (n evenly spaced
  epochs ending at the last one: every (E/n)-th epoch when n divides E) and
  ``first_n`` (epochs 0 .. n-1, as if training had stopped there); plus all epochs;
- replica subsets: for each count k below the run's R, up to ``draws`` distinct
  subsets drawn with a seed (all of them when there are no more than ``draws``);
  plus all replicas.

Every epoch subset is crossed with every replica subset. Per setting, on the pool:
the score's distribution (summary and a histogram on edges shared by all settings),
the point-biserial and Spearman correlation of the score with the strongest
evaluated model's per-sample error (bootstrap intervals), the AUROC of the score's
hardness for that model's errors, and the overlap of the setting's hardest samples
with the full setting's (the same number of samples as the run's hard split). Pure
NumPy/SciPy: the scores come from :mod:`engine.distributed.ablation_scoring`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from engine.evaluation.metrics import auroc, correlation_ci
from engine.scores import hardness
from engine.splits.selectors import top_fraction

DEFAULT_EPOCH_COUNTS = (5, 10, 20)  # the paper's Figure 5 (with all epochs, always added)
DEFAULT_REPLICA_COUNTS = (1, 3)  # the paper's seeds (with all replicas, always added)
DEFAULT_DRAWS = 3  # distinct replica subsets per count, where R allows
HISTOGRAM_BINS = 40  # bars of each setting's histogram, on edges shared by all settings
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)  # of each setting's distribution
FULL = "eall_rall"  # the name of the setting with every epoch and replica


@dataclass(frozen=True)
class AblationSetting:
    """One subset of a run's epochs and replicas.

    Attributes:
        name: Column name, e.g. ``e5_every2_r3_d1`` (epochs, replicas, draw).
        epochs: Epoch indices used, ascending.
        replicas: Replica indices used, ascending.
        epoch_rule: ``all``, ``every_k`` or ``first_n``.
        draw: Which draw of a replica count (0 for all replicas).
    """

    name: str
    epochs: tuple[int, ...]
    replicas: tuple[int, ...]
    epoch_rule: str
    draw: int = 0


def spaced_epochs(epochs: list[int], count: int) -> list[int]:
    """``count`` evenly spaced entries of ``epochs`` ending at the last: every (E/n)-th.

    For E = 10 and n = 5: epochs 1, 3, 5, 7, 9 (every 2nd). Entry i (0-based) is
    ``epochs[ceil((i + 1) * E / n) - 1]``.
    """
    total = len(epochs)
    if not 0 < count <= total:
        raise ValueError(f"cannot pick {count} of {total} epochs")
    return [epochs[math.ceil((i + 1) * total / count) - 1] for i in range(count)]


def _epoch_label(count: int, total: int) -> str:
    step = total / count
    return f"every{int(step)}" if step == int(step) else f"spaced{count}"


def epoch_subsets(
    epochs: list[int], counts: tuple[int, ...]
) -> tuple[list[tuple[str, str, tuple[int, ...]]], list[str]]:
    """The epoch subsets of an ablation: ``(label, rule, epochs)`` each, and notes.

    Counts at or above the run's E collapse into ``all`` (said in a note).
    """
    total = len(epochs)
    out: list[tuple[str, str, tuple[int, ...]]] = []
    notes = []
    for n in sorted(set(counts)):
        if n < 1:
            raise ValueError(f"epoch counts must be positive, got {n}")
        if n >= total:
            notes.append(f"{n} epochs: the run recorded {total}, so that is all epochs")
            continue
        out.append((f"e{n}_{_epoch_label(n, total)}", "every_k", tuple(spaced_epochs(epochs, n))))
        out.append((f"e{n}_first", "first_n", tuple(epochs[:n])))
    out.append(("eall", "all", tuple(epochs)))
    return out, notes


def replica_subsets(
    replicas: list[int], counts: tuple[int, ...], draws: int, seed: int
) -> tuple[list[tuple[str, int, tuple[int, ...]]], list[str]]:
    """The replica subsets of an ablation: ``(label, draw, replicas)`` each, and notes.

    For each count k below R: every k-subset when there are at most ``draws`` of
    them, else ``draws`` distinct k-subsets drawn with ``seed``.
    """
    total = len(replicas)
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    rng = np.random.default_rng(seed)
    out: list[tuple[str, int, tuple[int, ...]]] = []
    notes = []
    for k in sorted(set(counts)):
        if k < 1:
            raise ValueError(f"replica counts must be positive, got {k}")
        if k >= total:
            notes.append(f"{k} replicas: the run has {total}, so that is all replicas")
            continue
        combos = list(itertools.combinations(replicas, k))
        if len(combos) > draws:
            picked = sorted(rng.choice(len(combos), size=draws, replace=False).tolist())
            combos = [combos[i] for i in picked]
        out += [(f"r{k}_d{d}", d, tuple(c)) for d, c in enumerate(combos)]
    out.append(("rall", 0, tuple(replicas)))
    return out, notes


def ablation_settings(
    epochs: list[int],
    replicas: list[int],
    *,
    epoch_counts: tuple[int, ...] = DEFAULT_EPOCH_COUNTS,
    replica_counts: tuple[int, ...] = DEFAULT_REPLICA_COUNTS,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> tuple[list[AblationSetting], list[str]]:
    """Every epoch subset crossed with every replica subset; the full setting last.

    Args:
        epochs: The epoch indices the run recorded, ascending.
        replicas: The replica indices the run recorded, ascending.
        epoch_counts: Numbers of epochs to try (below E; all epochs always added).
        replica_counts: Numbers of replicas to try (below R; all always added).
        draws: Distinct replica subsets per count.
        seed: Seed of the draws.

    Returns:
        The settings (names unique, :data:`FULL` last) and notes on counts that
        collapsed into the full run.
    """
    e_sets, e_notes = epoch_subsets(list(epochs), tuple(epoch_counts))
    r_sets, r_notes = replica_subsets(list(replicas), tuple(replica_counts), draws, seed)
    settings = [
        AblationSetting(f"{e_label}_{r_label}", e_used, r_used, rule, draw)
        for e_label, rule, e_used in e_sets
        for r_label, draw, r_used in r_sets
    ]
    return settings, e_notes + r_notes


def histogram_edges(columns: list[np.ndarray], top: float | None) -> np.ndarray:
    """:data:`HISTOGRAM_BINS` + 1 histogram edges shared by every setting.

    0 .. ``top`` for an entropy (``top`` = ln K), else the range of all the settings'
    values.
    """
    values = np.concatenate([c[np.isfinite(c)] for c in columns])
    low = 0.0 if top is not None else float(values.min(initial=0.0))
    high = top if top is not None else float(values.max(initial=1.0))
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high, HISTOGRAM_BINS + 1)


def setting_figures(
    setting: AblationSetting,
    score_name: str,
    score: np.ndarray,
    *,
    full_score: np.ndarray,
    sample_ids: np.ndarray,
    hard_count: int,
    edges: np.ndarray,
    error: np.ndarray | None,
    n_boot: int,
    seed: int,
) -> dict:
    """The figures of one setting on the pool.

    Args:
        setting: The setting.
        score_name: The registered score (its direction orients hardness).
        score: Float (P,) the setting's score on the pool samples.
        full_score: Float (P,) the full setting's score on the same samples.
        sample_ids: Int (P,) pool sample ids (break ties in the hardest-first ranking).
        hard_count: How many hardest samples to compare (the run's hard split size).
        edges: Histogram edges (shared by every setting).
        error: Float (P,) the strongest evaluated model's per-sample error (1 = wrong),
            or None when no model was evaluated against labels.
        n_boot: Bootstrap resamples of each interval.
        seed: Seed of the resampling.

    Returns:
        ``{"name", "epoch_rule", "epochs", "replicas", "num_epochs", "num_replicas",
        "draw", "mean", "std", "quantiles" {q: value}, "histogram" (counts on
        ``edges``), "pearson_r" and "pearson_r_ci95" (point-biserial, score vs error),
        "spearman_r" and its interval, "auroc" (hardness -> error), "hard_overlap"
        (share of the full setting's hardest ``hard_count`` samples that this setting
        also ranks among its hardest ``hard_count``), "hard_jaccard"}``.
    """
    finite = score[np.isfinite(score)]
    counts, _ = np.histogram(finite, bins=edges)
    out: dict[str, object] = {
        "name": setting.name,
        "epoch_rule": setting.epoch_rule,
        "epochs": list(setting.epochs),
        "replicas": list(setting.replicas),
        "num_epochs": len(setting.epochs),
        "num_replicas": len(setting.replicas),
        "draw": setting.draw,
        "mean": float(finite.mean()) if len(finite) else math.nan,
        "std": float(finite.std()) if len(finite) else math.nan,
        "quantiles": {str(q): float(np.quantile(finite, q)) for q in QUANTILES}
        if len(finite)
        else {},
        "histogram": counts.astype(int).tolist(),
    }
    nan_pair = [math.nan, math.nan]
    if error is None:
        out.update(pearson_r=math.nan, pearson_r_ci95=nan_pair, spearman_r=math.nan,
                   spearman_r_ci95=nan_pair, auroc=math.nan)  # fmt: skip
    else:
        h = hardness(score_name, score)
        r, lo, hi = correlation_ci(h, error, n_boot=n_boot, seed=seed)
        rs, los, his = correlation_ci(h, error, method="spearman", n_boot=n_boot, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a model with no errors: AUROC undefined (NaN)
            roc = auroc(h, error > 0.5)
        out.update(pearson_r=r, pearson_r_ci95=[lo, hi], spearman_r=rs,
                   spearman_r_ci95=[los, his], auroc=roc)  # fmt: skip
    count = min(max(1, hard_count), len(score))
    if count >= len(score):
        out.update(hard_overlap=1.0, hard_jaccard=1.0)
        return out
    fraction = count / len(score)
    mine = top_fraction(hardness(score_name, score), sample_ids, fraction)
    full = top_fraction(hardness(score_name, full_score), sample_ids, fraction)
    both = int((mine & full).sum())
    out["hard_overlap"] = both / int(full.sum())
    out["hard_jaccard"] = both / int((mine | full).sum())
    return out


def format_ablation_table(figures: list[dict], score_name: str, model: str | None) -> str:
    """The ablation as a Markdown table, one row per setting."""
    who = f"`{model}`'s error" if model else "no evaluated model's error (none measured)"
    lines = [
        f"Ablation of `{score_name}`: per setting, the pool's mean and median, the "
        f"point-biserial r (95% interval) and Spearman r of the score's hardness vs {who}, "
        "AUROC, and the overlap of its hardest samples with all epochs and replicas'.",
        "",
        "| setting | epochs | replicas | mean | median | r (95% CI) | Spearman | AUROC "
        "| hard overlap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def num(v: float, fmt: str = ".3f") -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    for f in figures:
        lo, hi = f["pearson_r_ci95"]
        lines.append(
            f"| {f['name']} | {f['num_epochs']} ({f['epoch_rule']}) | {f['num_replicas']} | "
            f"{num(f['mean'])} | {num(f['quantiles'].get('0.5', math.nan))} | "
            f"{num(f['pearson_r'], '+.3f')} ({num(lo, '+.3f')}, {num(hi, '+.3f')}) | "
            f"{num(f['spearman_r'], '+.3f')} | {num(f['auroc'])} | {num(f['hard_overlap'], '.2f')} |"
        )
    return "\n".join(lines) + "\n"
