"""The benchmark's split files as MLflow dataset inputs of the evaluation runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd

DATASET_COLUMNS = ("sample_id", "label", "bin", "is_hard")  # what a split's dataset input holds
SPLIT_SUFFIX = ".parquet"  # split files; exports (image folders, datasets) are not inputs


def split_datasets(files: dict[str, Path], score: str) -> list[tuple[str, pd.DataFrame, str]]:
    """``(context, DataFrame, source)`` of every split file: ids, labels, score, bin, hard flag.

    Args:
        files: Split name -> its file (the split builder's ``BuiltSplits.files``).
        score: The benchmark's score column, logged with the ids.

    Returns:
        One ``(split name, its columns, its path)`` per Parquet split, sorted by name;
        exports (image folders, saved datasets) are the same samples again and are left out.
    """
    out = []
    for name, path in sorted(files.items()):
        if Path(path).suffix != SPLIT_SUFFIX:
            continue
        names = pq.read_schema(path).names
        columns = [c for c in (*DATASET_COLUMNS, score) if c in names]
        out.append((name, pq.read_table(path, columns=columns).to_pandas(), str(path)))
    return out
