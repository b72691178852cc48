"""Benchmarks re-measured on corrected labels: original and relabelled side by side.

"Pervasive label errors in test sets destabilize ML benchmarks" (Northcutt et al.,
2021) shows that correcting a test set's labels can change which model ranks first.
Given the per-sample predictions of several models on a benchmark's pool, its
original labels and a relabelled version (corrected labels plus samples a reviewer
removed), :func:`compare_on_labels` measures every model on both label sets with the
one :func:`engine.evaluation.evaluate.evaluate_predictions` every evaluation uses
(error overall, on the hard split, on the rest, per bin, bootstrap intervals), ranks
the models on each, and flags where a ranking changes. Removed samples are left out of
the corrected side only; the original side is the build's own measurement, exactly.

Pure NumPy: no I/O. :func:`format_labels_table` words the result for a terminal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from engine.evaluation.evaluate import evaluate_predictions, top1_quality
from engine.splits.builder import BuiltSplits
from engine.splits.display import display_name

RANKING_KEYS = ("error_all", "error_hard")  # the rankings compared: overall, hard split
RANKING_NAMES = {"error_all": "overall error", "error_hard": "hard-split error"}  # in tables
ORIGINAL = "original"  # the name of the run's own labels in tables and records
TABLE_CELL = 15  # width of one "original / corrected" cell of the printed table
CARRIED_KEYS = ("in_sample", "in_sample_reason", "params", "replicas")  # kept from the build


@dataclass(frozen=True)
class CorrectedLabels:
    """A relabelled version of a run's labels, one value per sample of the run.

    Attributes:
        version: Its name, e.g. ``v1``.
        original: Int64 (N,) the run's own label of each sample (index = sample id).
        labels: Int64 (N,) the version's label of each sample.
        removed: Bool (N,) samples the version removed.
        source: Where it was read from (its ``labels.parquet``), for messages.
    """

    version: str
    original: np.ndarray
    labels: np.ndarray
    removed: np.ndarray
    source: str = ""

    @property
    def relabelled(self) -> np.ndarray:
        """Bool (N,) samples whose label differs from the original and are not removed."""
        return (self.labels != self.original) & ~self.removed

    def on_pool(
        self, sample_ids: np.ndarray, pool_labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The version's labels and removals of a pool, checked against the pool's labels.

        Args:
            sample_ids: Int64 (P,) the pool's sample ids.
            pool_labels: Int64 (P,) the labels the pool was built with.

        Returns:
            ``(labels int64 (P,), removed bool (P,))`` aligned with ``sample_ids``.

        Raises:
            ValueError: If a pool id is outside the version or the version's original
                labels are not the pool's.
        """
        ids = np.asarray(sample_ids)
        n = len(self.labels)
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(
                f"{self.source or self.version}: the pool holds sample ids outside [0, {n})"
            )
        if not np.array_equal(self.original[ids], pool_labels):
            bad = int(ids[np.argmax(self.original[ids] != pool_labels)])
            raise ValueError(
                f"{self.source or self.version}: original_label of sample {bad} is not the "
                "label the pool was built with: the version was made for other labels"
            )
        return self.labels[ids], self.removed[ids]


@dataclass(frozen=True)
class RankingChange:
    """The ranking of the models by one error, on the original and the corrected labels.

    Attributes:
        key: The error ranked (``error_all`` or ``error_hard``), lowest first.
        original: Model names, best (lowest error) first; ties by name, NaN last.
        corrected: The same on the corrected labels.
        swapped: Pairs ``(a, b)`` where ``a`` had strictly lower error than ``b`` on the
            original labels and strictly higher on the corrected ones.
        first_original: The models with the lowest original error (several on a tie).
        first_corrected: The models with the lowest corrected error.
    """

    key: str
    original: list[str]
    corrected: list[str]
    swapped: list[tuple[str, str]]
    first_original: list[str]
    first_corrected: list[str]

    @property
    def changed(self) -> bool:
        """Whether some strictly ordered pair of models changed order (ties do not count)."""
        return bool(self.swapped)

    def to_json(self) -> dict:
        """The ranking as plain JSON values, ``changed`` included."""
        return {
            "key": self.key,
            "original": self.original,
            "corrected": self.corrected,
            "changed": self.changed,
            "swapped": [list(p) for p in self.swapped],
            "first_original": self.first_original,
            "first_corrected": self.first_corrected,
        }


@dataclass(frozen=True)
class LabelsComparison:
    """Every model measured on the original and on the corrected labels of one pool.

    Attributes:
        version: The labels version's name, e.g. ``v1``.
        original: One evaluation per model on the original labels, every pool sample
            (as :func:`evaluate_predictions` returns it).
        corrected: The same on the corrected labels, removed samples left out.
        rankings: :data:`RANKING_KEYS` -> :class:`RankingChange`.
        pool_samples: P, the pool's size.
        removed: Pool samples the version removed (left out of ``corrected``).
        relabelled: Pool samples whose corrected label differs from the original one
            and that are not removed.
        sample_ids: Int64 (P,) the pool's sample ids.
        correct_original: Model -> bool (P,) whether it is right on the original label.
        correct_corrected: Model -> float64 (P,) 1.0 / 0.0 whether it is right on the
            corrected label, NaN for a removed sample.
    """

    version: str
    original: list[dict]
    corrected: list[dict]
    rankings: dict[str, RankingChange]
    pool_samples: int
    removed: int
    relabelled: int
    sample_ids: np.ndarray
    correct_original: dict[str, np.ndarray]
    correct_corrected: dict[str, np.ndarray]

    @property
    def ranking_changed(self) -> bool:
        """Whether any of the rankings changes order."""
        return any(r.changed for r in self.rankings.values())

    def to_json(self) -> dict:
        """The comparison as plain JSON values (no per-sample arrays)."""
        return {
            "labels_version": self.version,
            "pool_samples": self.pool_samples,
            "corrected_samples": self.pool_samples - self.removed,
            "removed": self.removed,
            "relabelled": self.relabelled,
            "ranking_changed": self.ranking_changed,
            "rankings": {k: r.to_json() for k, r in self.rankings.items()},
            "original": self.original,
            "corrected": self.corrected,
        }


def corrected_view(splits: BuiltSplits, labels: np.ndarray, removed: np.ndarray) -> BuiltSplits:
    """The built pool with corrected labels and without the removed samples.

    Every sample keeps its bin, hard flag and score (the benchmark is not re-cut: the
    same hard split, measured against other labels); ``bin_edges`` stay the build's so
    every per-bin list keeps its length (a bin emptied by removals reads NaN).

    Args:
        splits: The built benchmark (P pool samples).
        labels: Int (P,) corrected label of each pool sample, aligned with
            ``splits.sample_ids``.
        removed: Bool (P,) samples to leave out.

    Returns:
        A :class:`BuiltSplits` of the P - removed kept samples; no files.
    """
    keep = ~removed
    return replace(
        splits,
        sample_ids=splits.sample_ids[keep],
        labels=np.asarray(labels, dtype=np.int64)[keep],
        score=splits.score[keep],
        bins=splits.bins[keep],
        is_hard=splits.is_hard[keep],
        files={},
        duplicate_of=None if splits.duplicate_of is None else splits.duplicate_of[keep],
    )


def rank_models(errors: dict[str, float]) -> list[str]:
    """Model names by ascending error (best first); ties by name, NaN errors last."""
    return sorted(errors, key=lambda m: (math.isnan(errors[m]), errors[m], m))


def ranking_change(
    key: str, original: dict[str, float], corrected: dict[str, float]
) -> RankingChange:
    """Compare the ranking of the same models by one error on two label sets.

    A change is a strictly ordered pair that reverses strictly: two models tied on one
    side are no change, so a change is never an artefact of the tie order.

    Args:
        key: The error ranked, for the record.
        original: Model -> its error on the original labels.
        corrected: Model -> its error on the corrected labels (the same models).

    Raises:
        ValueError: If the two sides name different models.
    """
    if set(original) != set(corrected):
        raise ValueError(
            f"the two label sets rank different models: {sorted(original)} vs {sorted(corrected)}"
        )
    names = sorted(original)
    swapped = [
        (a, b)
        for a in names
        for b in names
        if original[a] < original[b] and corrected[a] > corrected[b]  # NaN compares False
    ]

    def first(errors: dict[str, float]) -> list[str]:
        finite = [v for v in errors.values() if not math.isnan(v)]
        return sorted(m for m, v in errors.items() if finite and v == min(finite))

    return RankingChange(
        key=key,
        original=rank_models(original),
        corrected=rank_models(corrected),
        swapped=swapped,
        first_original=first(original),
        first_corrected=first(corrected),
    )


def _checked_labels(name: str, values: np.ndarray, size: int) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (size,):
        raise ValueError(
            f"{name} has shape {values.shape}, the pool has {size} samples "
            "(one value per pool sample, in the order of splits.sample_ids)"
        )
    return values


def compare_on_labels(
    splits: BuiltSplits,
    predictions: dict[str, np.ndarray],
    *,
    corrected_labels: np.ndarray,
    removed: np.ndarray,
    version: str,
    confidences: dict[str, np.ndarray] | None = None,
    build_records: dict[str, dict] | None = None,
    seed: int = 0,
) -> LabelsComparison:
    """Measure several models on a pool's original labels and on a corrected version.

    Args:
        splits: The built benchmark: P pool samples with their original ``labels``
            (all >= 0), ``bins``, ``is_hard`` and score.
        predictions: Model name -> int (P,) predicted classes, aligned with
            ``splits.sample_ids``.
        corrected_labels: Int (P,) the version's label of each pool sample (a removed
            sample's value is ignored).
        removed: Bool (P,) samples the version removed: left out of the corrected side.
        version: The version's name (``v1``), for the record.
        confidences: Model -> float (P,) predicted-class probability (the calibration
            error); a model without one gets ``ece`` NaN.
        build_records: Model -> its build evaluation; ``in_sample``, ``in_sample_reason``,
            ``params`` and ``replicas`` are carried to both sides (a scorer stays marked).
        seed: Seed of every bootstrap (the build's seed reproduces its intervals).

    Returns:
        The :class:`LabelsComparison`.

    Raises:
        ValueError: For no model, an unlabelled pool, an array that is not one value
            per pool sample, a non-boolean ``removed`` or a negative corrected label.
    """
    size = len(splits.sample_ids)
    if not predictions:
        raise ValueError("no model to compare: give at least one model's predictions")
    if splits.labels is None or (splits.labels < 0).any():
        raise ValueError("the pool has unlabelled samples: there is no original error to compare")
    removed = _checked_labels("removed", removed, size)
    if removed.dtype != bool:
        raise ValueError(f"removed must be boolean (True = removed), got dtype {removed.dtype}")
    corrected_labels = _checked_labels("corrected_labels", corrected_labels, size).astype(np.int64)
    if (corrected_labels[~removed] < 0).any():
        raise ValueError("corrected_labels holds a negative label on a kept sample")
    view = corrected_view(splits, corrected_labels, removed)
    confidences, build_records = confidences or {}, build_records or {}
    original, corrected, right, right_corr = [], [], {}, {}
    for name, pred in predictions.items():
        pred = _checked_labels(f"{name}: predictions", pred, size)
        carried = {k: build_records.get(name, {})[k] for k in CARRIED_KEYS
                   if k in build_records.get(name, {})}  # fmt: skip
        conf = confidences.get(name)
        for target, labels, pool, c in (
            (original, splits.labels, splits, conf),
            (corrected, view.labels, view, None if conf is None else conf[~removed]),
        ):
            quality, miss = top1_quality(name, labels, pred if pool is splits else pred[~removed])
            ev = evaluate_predictions(
                name, pool, quality=quality, miss=miss, seed=seed, confidence=c,
                in_sample=bool(carried.get("in_sample", False)), params=carried.get("params"),
            )  # fmt: skip
            target.append({**ev, **carried})
        right[name] = pred == splits.labels
        corr = np.full(size, np.nan)
        corr[~removed] = (pred[~removed] == view.labels).astype(np.float64)
        right_corr[name] = corr
    rankings = {
        key: ranking_change(
            key,
            {ev["model"]: ev[key] for ev in original},
            {ev["model"]: ev[key] for ev in corrected},
        )
        for key in RANKING_KEYS
    }
    return LabelsComparison(
        version=version,
        original=original,
        corrected=corrected,
        rankings=rankings,
        pool_samples=size,
        removed=int(removed.sum()),
        relabelled=int(((corrected_labels != splits.labels) & ~removed).sum()),
        sample_ids=splits.sample_ids,
        correct_original=right,
        correct_corrected=right_corr,
    )


def ranking_lines(rankings: dict[str, RankingChange], version: str) -> list[str]:
    """One line per ranking: the order on each label set, and the change when there is one.

    E.g. ``ranking by overall error changes: small_mlp was first on original, ensemble
    on v1 (swapped: small_mlp/ensemble; ...)``.

    Args:
        rankings: :data:`RANKING_KEYS` -> :class:`RankingChange`.
        version: The corrected labels' name.
    """
    lines = []
    for key, r in rankings.items():
        what = RANKING_NAMES[key]
        order = f"{ORIGINAL}: {' < '.join(r.original)}; {version}: {' < '.join(r.corrected)}"
        if not r.changed:
            lines.append(f"ranking by {what} unchanged ({order})")
            continue
        pairs = ", ".join(f"{a}/{b}" for a, b in r.swapped)
        if r.first_original != r.first_corrected:
            lead = (
                f"{' and '.join(r.first_original)} was first on {ORIGINAL}, "
                f"{' and '.join(r.first_corrected)} on {version}"
            )
        else:
            lead = f"{' and '.join(r.first_original)} stays first"
        lines.append(f"ranking by {what} changes: {lead} (swapped: {pairs}; {order})")
    return lines


def format_labels_table(comparison: LabelsComparison, *, run: str = "") -> str:
    """The models' errors on the original and corrected labels side by side, then rankings.

    Columns hold ``original / <version>`` per part (all, hard, rest) and per bin, bins
    from the easiest (0) to the hardest.
    """
    version = comparison.version

    def pct(v: float | None) -> str:
        return "n/a" if v is None or math.isnan(v) else f"{100 * v:.1f}"

    names = [display_name(ev) for ev in comparison.original]
    bins = len(comparison.original[0]["error_per_bin"])
    heads = ["all", "hard", "rest", *(f"bin {b}" for b in range(bins))]
    model_w = max(len("model"), *(len(n) for n in names)) + 2
    lines = [
        f"labels {version}{f' of run {run}' if run else ''}: {comparison.relabelled} pool samples "
        f"relabelled, {comparison.removed} removed (left out of {version}: "
        f"{comparison.pool_samples - comparison.removed} of {comparison.pool_samples} measured)",
        f"error % as {ORIGINAL} / {version}",
        f"{'model':<{model_w}}" + "".join(f"{h:>{TABLE_CELL}}" for h in heads),
    ]
    lines.append("-" * len(lines[-1]))
    for name, orig, corr in zip(names, comparison.original, comparison.corrected, strict=True):
        cells = [
            f"{pct(orig[f'error_{p}'])} / {pct(corr[f'error_{p}'])}"
            for p in ("all", "hard", "rest")
        ]
        cells += [
            f"{pct(a)} / {pct(b)}"
            for a, b in zip(orig["error_per_bin"], corr["error_per_bin"], strict=True)
        ]
        lines.append(f"{name:<{model_w}}" + "".join(f"{c:>{TABLE_CELL}}" for c in cells))
    return "\n".join([*lines, *ranking_lines(comparison.rankings, version)])
