"""Cut the hard split and the score bins from a scores table and write them as a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data import ClassificationData
from engine.shards import atomic_write_table
from engine.splits.selectors import quantile_bins, top_fraction
from engine.splits.spec import SplitsSpec

BENCHMARK_DIR = "benchmark"  # under the run directory: splits/ and the card
INPUT_SHAPE_KEY = b"input_shape"  # Parquet schema metadata: the shape of one input


@dataclass
class BuiltSplits:
    """The pool a benchmark is cut from, with each sample's bin and hard flag.

    Attributes:
        sample_ids: Int64 (P,) ids of the pool samples, ascending.
        labels: Int64 (P,).
        score: Float64 (P,) the splitting score (higher = harder).
        bins: Int64 (P,) bin index, 0 = lowest score.
        is_hard: Bool (P,).
        bin_edges: (count, 2) min and max score in each bin.
        files: Split name -> Parquet path written.
    """

    sample_ids: np.ndarray
    labels: np.ndarray
    score: np.ndarray
    bins: np.ndarray
    is_hard: np.ndarray
    bin_edges: np.ndarray
    files: dict[str, Path]


def build_splits(
    run_dir: Path | str, spec: SplitsSpec, data: ClassificationData, scores: pa.Table
) -> BuiltSplits:
    """Select the hard split and bins from ``scores`` and write them under ``benchmark/splits``.

    Each split file holds ``sample_id, label, input`` (flattened; the shape is in the
    schema metadata), every score column, ``bin`` and ``is_hard``.

    Args:
        run_dir: The run directory.
        spec: Which score, pool, fraction and bin count.
        data: The dataset the scores were computed on.
        scores: Scores table with ``sample_id``, ``split`` and one column per score.

    Returns:
        The pool with its bins and hard flags, and the files written.
    """
    ids_all = scores.column("sample_id").to_numpy()
    split_all = np.asarray(scores.column("split").to_pylist())
    pool_mask = np.ones(len(ids_all), bool) if spec.pool == "all" else split_all == spec.pool
    if not pool_mask.any():
        raise ValueError(f"the {spec.pool!r} pool is empty: no samples to cut splits from")
    pool = scores.filter(pa.array(pool_mask))
    ids = pool.column("sample_id").to_numpy()
    score = pool.column(spec.score).to_numpy().astype(np.float64)
    is_hard = top_fraction(score, ids, spec.hard.top_fraction)
    bins = quantile_bins(score, ids, spec.bins.count)
    edges = np.array(
        [[score[bins == b].min(), score[bins == b].max()] for b in range(spec.bins.count)]
    )

    flat_inputs = data.inputs[ids].reshape(len(ids), -1).astype(np.float32)
    width = flat_inputs.shape[1]
    table = pool.append_column("bin", pa.array(bins)).append_column("is_hard", pa.array(is_hard))
    table = table.append_column(
        "input", pa.FixedSizeListArray.from_arrays(pa.array(flat_inputs.reshape(-1)), width)
    )
    table = table.replace_schema_metadata(
        {INPUT_SHAPE_KEY: ",".join(str(d) for d in data.input_shape).encode()}
    )
    out = Path(run_dir) / BENCHMARK_DIR / "splits"
    files = {
        "pool": out / "pool.parquet",
        "hard": out / "hard.parquet",
        "rest": out / "rest.parquet",
    }
    atomic_write_table(files["pool"], table)
    atomic_write_table(files["hard"], table.filter(pa.array(is_hard)))
    atomic_write_table(files["rest"], table.filter(pa.array(~is_hard)))
    for b in range(spec.bins.count):
        files[f"bin_{b}"] = out / f"bin_{b}.parquet"
        atomic_write_table(files[f"bin_{b}"], table.filter(pa.array(bins == b)))
    return BuiltSplits(
        sample_ids=ids,
        labels=pool.column("label").to_numpy().astype(np.int64),
        score=score,
        bins=bins,
        is_hard=is_hard,
        bin_edges=edges,
        files=files,
    )
