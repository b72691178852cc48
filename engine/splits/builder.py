"""Cut the hard split and the score bins from a scores table and write them as a dataset.

One builder for every task: it reads a task's samples through
:class:`engine.splits.samples.SplitSamples` (labels or none, leaks, the task's own
columns). Outputs under ``<run>/benchmark/``: ``splits/{pool,hard,rest,bin_<b>}.parquet``
always, ``imagefolder/<split>/<class>/<sample_id>.png`` (image samples) and ``hf/`` (a
``datasets.DatasetDict`` saved with ``save_to_disk``) when the spec's ``exports`` ask
for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.layout import BENCHMARK_DIR, SPLITS_DIR
from engine.scores import hardness
from engine.shards import atomic_write_table
from engine.spec import FRACTION_RULES, BinsSpec, HardSpec, SplitsSpec
from engine.splits.samples import IMAGE_CHANNELS, INPUT_SHAPE_KEY, SplitImages, SplitSamples
from engine.splits.selectors import (
    edge_bins,
    per_class,
    quantile_bins,
    threshold,
    top_fraction,
    width_bins,
    width_edges,
)

UNLABELLED_FOLDER = "_unlabelled"  # imagefolder export: where unlabelled pool samples go


@dataclass
class BuiltSplits:
    """The pool a benchmark is cut from, with each sample's bin and hard flag.

    Attributes:
        sample_ids: Int64 (P,) ids of the pool samples, ascending.
        labels: Int64 (P,) class of each pool sample (-1: unlabelled), or None for a
            task without classes.
        score: Float64 (P,) the splitting score, in its own units and direction.
        bins: Int64 (P,) bin index, 0 = easiest by the score's direction.
        is_hard: Bool (P,).
        bin_edges: (count, 2) min and max score in each bin (NaN for an empty bin).
        files: Split name -> path written (Parquet files and export directories).
        score_name: The splitting score's registry name (its direction orients
            :attr:`hardness`).
        duplicate_of: Int64 (P,) the training sample each pool sample duplicates (-1:
            none), or None where duplicates were not looked for.
        leaked_left_out: Whether leaked samples were kept out of the hard split.
        width: Width of the fixed-width bins every evaluation also reports (score
            units; ``splits.bins.width``), or None for none.
    """

    sample_ids: np.ndarray
    labels: np.ndarray | None
    score: np.ndarray
    bins: np.ndarray
    is_hard: np.ndarray
    bin_edges: np.ndarray
    files: dict[str, Path]
    score_name: str = "confusion"
    duplicate_of: np.ndarray | None = None
    leaked_left_out: bool = False
    width: float | None = None

    @property
    def width_edges(self) -> np.ndarray | None:
        """Float (B_w + 1,) fixed-width bin edges in the score's units, or None (no width)."""
        return None if self.width is None else width_edges(self.score, self.width)

    @property
    def width_bins(self) -> np.ndarray | None:
        """Int64 (P,) fixed-width bin of each pool sample (0 = lowest score), or None."""
        edges = self.width_edges
        return None if edges is None else width_bins(self.score, edges)

    @property
    def leaked(self) -> np.ndarray | None:
        """Bool (P,) pool samples that duplicate a training sample, or None if unknown."""
        return None if self.duplicate_of is None else self.duplicate_of >= 0

    @property
    def hardness(self) -> np.ndarray:
        """Float64 (P,) the splitting score oriented so that higher = harder."""
        return hardness(self.score_name, self.score)


def select_hard(
    spec: HardSpec, score_name: str, score: np.ndarray, ids: np.ndarray, labels: np.ndarray | None
) -> np.ndarray:
    """Apply the spec's hard rule to a pool: Bool (P,) mask of the hardest samples.

    Fraction rules rank by :func:`engine.scores.hardness` (the spec has already refused
    a literal rule that names the easy side), ties broken by lower sample id.

    Raises:
        ValueError: For a per-class rule without labels (a label-free pool or a task
            without classes).
    """
    if spec.rule in FRACTION_RULES:
        h = hardness(score_name, score)
        if spec.per_class:
            if labels is None:
                raise ValueError(
                    "hard.per_class needs each sample's class; these samples have none"
                )
            return per_class(
                h, ids, labels, fraction=spec.value, descending=True,
                min_per_class=spec.min_per_class,
            )  # fmt: skip
        return top_fraction(h, ids, spec.value)
    return threshold(score, min_score=spec.min_score, max_score=spec.max_score)


def score_bins(spec: BinsSpec, score_name: str, score: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Int64 (P,) bin of each pool sample, bin 0 = the easiest by the score's direction.

    Equal-count bins rank :func:`engine.scores.hardness`; fixed ``edges`` are in the
    score's units and cut the hardness at the same places, so the bins are numbered
    from the easiest for either direction and a value exactly on an edge belongs to
    the harder bin (as a threshold rule's own value belongs to the hard split).
    """
    h = hardness(score_name, score)
    if spec.edges is None:
        return quantile_bins(h, ids, spec.count)
    return edge_bins(h, sorted(hardness(score_name, np.asarray(spec.edges)).tolist()))


def _split_masks(is_hard: np.ndarray, bins: np.ndarray, count: int) -> dict[str, np.ndarray]:
    masks = {"pool": np.ones(len(is_hard), bool), "hard": is_hard, "rest": ~is_hard}
    masks.update({f"bin_{b}": bins == b for b in range(count)})
    return masks


def bin_ranges(score: np.ndarray, bins: np.ndarray, count: int) -> np.ndarray:
    """(count, 2) min and max ``score`` in each bin; NaN for an empty bin."""
    return np.array(
        [
            [score[bins == b].min(), score[bins == b].max()] if (bins == b).any() else [np.nan] * 2
            for b in range(count)
        ]
    )


def read_input_shape(schema: pa.Schema) -> tuple[int, ...]:
    """The shape of one input, from a split file's schema metadata."""
    return tuple(int(d) for d in schema.metadata[INPUT_SHAPE_KEY].decode().split(","))


def load_built_splits(run_dir: Path | str, spec: SplitsSpec) -> BuiltSplits:
    """Rebuild a finished run's :class:`BuiltSplits` from its pool file.

    Raises:
        ValueError: For a label-free benchmark (its splits carry no labels).
    """
    import pyarrow.parquet as pq

    splits_dir = Path(run_dir) / BENCHMARK_DIR / SPLITS_DIR
    pool = pq.read_table(splits_dir / "pool.parquet")
    if "label" not in pool.column_names:
        raise ValueError(
            f"{run_dir} is a label-free benchmark: its splits carry no labels to evaluate against"
        )
    bins = pool.column("bin").to_numpy()
    score = pool.column(spec.score).to_numpy()
    partner = (
        pool.column("duplicate_of").to_numpy() if "duplicate_of" in pool.column_names else None
    )
    return BuiltSplits(
        sample_ids=pool.column("sample_id").to_numpy(),
        labels=pool.column("label").to_numpy().astype(np.int64),
        score=score,
        bins=bins,
        is_hard=pool.column("is_hard").to_numpy(zero_copy_only=False),
        bin_edges=bin_ranges(score, bins, spec.bins.count),
        files={p.stem: p for p in splits_dir.glob("*.parquet")},
        score_name=spec.score,
        duplicate_of=partner,
        leaked_left_out=partner is not None and not spec.keep_leaked,
        width=spec.bins.width,
    )


def pool_view(
    spec: SplitsSpec, ids: np.ndarray, score: np.ndarray, labels: np.ndarray | None
) -> BuiltSplits:
    """The spec's bins and hard rule applied to another set of samples, in memory.

    For figures on samples that are not the benchmark's pool (the paper's Figure 2:
    the training samples beside the held-out ones); no file is written.

    Args:
        spec: The splits spec (score, hard rule, bins, width).
        ids: Int64 (P,) sample ids, ascending.
        score: Float64 (P,) the splitting score of those samples.
        labels: Int64 (P,) their classes, or None.

    Raises:
        ValueError: For an empty set, a NaN score or a rule that selects nothing.
    """
    if not len(ids):
        raise ValueError("cannot cut bins from an empty set of samples")
    if np.isnan(score).any():
        raise ValueError(
            f"{spec.score} is undefined (NaN) for {int(np.isnan(score).sum())} samples"
        )
    is_hard = select_hard(spec.hard, spec.score, score, ids, labels)
    bins = score_bins(spec.bins, spec.score, score, ids)
    return BuiltSplits(
        sample_ids=ids, labels=labels, score=score, bins=bins, is_hard=is_hard,
        bin_edges=bin_ranges(score, bins, spec.bins.count), files={}, score_name=spec.score,
        width=spec.bins.width,
    )  # fmt: skip


def build_splits(
    run_dir: Path | str, spec: SplitsSpec, samples: SplitSamples, scores: pa.Table
) -> BuiltSplits:
    """Select the hard split and bins from ``scores`` and write them under ``benchmark/``.

    Each split file holds ``sample_id``, the scores-table columns the task keeps (its
    ``label`` left out in label-free mode), ``bin``, ``is_hard``, then ``key``,
    ``leaked`` and ``duplicate_of`` where known, then the task's own columns
    (:class:`engine.splits.samples.SplitSamples`).

    Args:
        run_dir: The run directory.
        spec: Which score, pool, rule, bins and exports.
        samples: The task's samples the scores were computed on.
        scores: Scores table with ``sample_id``, ``split`` and one column per score.

    Returns:
        The pool with its bins and hard flags, and the files written.

    Raises:
        ValueError: If the pool is empty, the score is undefined on it, the hard rule
            selects nothing, or an export does not fit the samples (image folders need
            images with classes).
    """
    if "imagefolder" in spec.exports and (samples.images is None or samples.labels is None):
        raise ValueError(
            f"the imagefolder export needs image samples (C, H, W) with C in {IMAGE_CHANNELS} "
            "and their classes; these have none: export parquet or hf"
        )
    ids_all = scores.column("sample_id").to_numpy()
    split_all = np.asarray(scores.column("split").to_pylist())
    pool_mask = np.ones(len(ids_all), bool) if spec.pool == "all" else split_all == spec.pool
    if not pool_mask.any():
        raise ValueError(f"the {spec.pool!r} pool is empty: no samples to cut splits from")
    pool = scores.filter(pa.array(pool_mask))
    ids = pool.column("sample_id").to_numpy()
    score = pool.column(spec.score).to_numpy().astype(np.float64)
    if samples.score_columns is not None:
        pool = pool.select(["sample_id", *dict.fromkeys(samples.score_columns)])
    labels = None if samples.labels is None else np.asarray(samples.labels)[ids]  # -1: unlabelled
    label_free = spec.label_free or (labels is not None and bool((labels < 0).any()))
    if np.isnan(score).any():
        raise ValueError(
            f"{spec.score} is undefined (NaN) for {int(np.isnan(score).sum())} samples of the "
            f"{spec.pool} pool; cut the splits from samples the score covers"
        )
    partner = None if samples.leak_partner is None else np.asarray(samples.leak_partner)[ids]
    eligible = np.ones(len(ids), bool)
    if partner is not None and not spec.keep_leaked:
        eligible = partner < 0  # a held-out copy of a training sample leaks: not hard
    is_hard = np.zeros(len(ids), bool)
    is_hard[eligible] = select_hard(spec.hard, spec.score, score[eligible], ids[eligible],
                                    None if label_free or labels is None
                                    else labels[eligible])  # fmt: skip
    if not is_hard.any():
        raise ValueError(
            f"the hard rule {spec.hard.rule}={spec.hard.value} selects no sample; "
            f"{spec.score} ranges over [{score.min():.4g}, {score.max():.4g}] in the {spec.pool} pool"
        )
    bins = score_bins(spec.bins, spec.score, score, ids)
    edges = bin_ranges(score, bins, spec.bins.count)

    table = pool.append_column("bin", pa.array(bins)).append_column("is_hard", pa.array(is_hard))
    if samples.keys is not None:
        table = table.append_column("key", pa.array([samples.keys[i] for i in ids], pa.string()))
    if partner is not None:
        table = table.append_column("leaked", pa.array(partner >= 0))
        table = table.append_column("duplicate_of", pa.array(partner, pa.int64()))
    for name, column in samples.columns(ids).items():
        table = table.append_column(name, column)
    if label_free:
        table = table.drop_columns([c for c in samples.label_columns if c in table.column_names])
    table = table.replace_schema_metadata(dict(samples.metadata) or None)
    out = Path(run_dir) / BENCHMARK_DIR
    masks = _split_masks(is_hard, bins, spec.bins.count)
    files: dict[str, Path] = {}
    for name, mask in masks.items():
        files[name] = out / SPLITS_DIR / f"{name}.parquet"
        atomic_write_table(files[name], table.filter(pa.array(mask)))
    if "imagefolder" in spec.exports:
        files["imagefolder"] = export_imagefolder(
            out / "imagefolder", samples.images, samples.class_names, ids, labels, masks
        )
    if "hf" in spec.exports:
        files["hf"] = export_hf(out / "hf", table, masks, samples.images)
    return BuiltSplits(
        sample_ids=ids,
        labels=labels,
        score=score,
        bins=bins,
        is_hard=is_hard,
        bin_edges=edges,
        files=files,
        score_name=spec.score,
        duplicate_of=partner,
        leaked_left_out=partner is not None and not spec.keep_leaked,
        width=spec.bins.width,
    )


def export_imagefolder(
    root: Path,
    images: SplitImages,
    class_names: Sequence[str],
    ids: np.ndarray,
    labels: np.ndarray,
    masks: dict[str, np.ndarray],
) -> Path:
    """Write ``root/<split>/<class name>/<sample_id>.png`` for every split but the pool.

    Unlabelled samples (label -1) go to ``root/<split>/_unlabelled/``.
    """
    for split, mask in masks.items():
        if split == "pool":
            continue
        for i in np.flatnonzero(mask):
            folder = class_names[labels[i]] if labels[i] >= 0 else UNLABELLED_FOLDER
            path = root / split / folder / f"{ids[i]}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(images.png(int(ids[i])))
    return root


def export_hf(
    root: Path, table: pa.Table, masks: dict[str, np.ndarray], images: SplitImages | None
) -> Path:
    """Save the splits as a Hugging Face ``DatasetDict`` with ``save_to_disk``.

    The columns are the split files'; images that stay in the dataset cache are
    materialised here, as an ``image`` column of PNG bytes (the ``datasets`` Image
    feature).
    """
    from datasets import Dataset, DatasetDict

    plain = table.replace_schema_metadata(None)
    if images is None or images.stored_png is None:
        DatasetDict(
            {name: Dataset(plain.filter(pa.array(mask))) for name, mask in masks.items()}
        ).save_to_disk(str(root))
        return root
    from datasets import Image

    pngs = [images.stored_png(int(i)) for i in plain.column("sample_id").to_numpy()]
    image = pa.array([{"bytes": b, "path": None} for b in pngs],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))  # fmt: skip
    plain = plain.append_column("image", image)
    DatasetDict(
        {name: Dataset(plain.filter(pa.array(mask))).cast_column("image", Image())
         for name, mask in masks.items()}
    ).save_to_disk(str(root))  # fmt: skip
    return root
