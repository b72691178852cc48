"""A multi-label dataset: inputs, multi-hot label sets and a train/held-out split, without int labels.

:class:`MultiLabelData` is what the multi-label task's stages read. It has no class
index per sample: its ``labels`` refuses to be read (naming ``label_sets``), so a
consumer of int class labels fails with that message instead of misreading several
classes as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.data.sources import SPLIT_HELDOUT, SPLIT_TRAIN, SampleViews

MIN_TRAIN_SAMPLES = 2  # a seeded split must leave at least this many samples to train on


@dataclass
class MultiLabelData(SampleViews):
    """Samples with several classes each.

    Attributes:
        name: Source name.
        inputs: Inputs of shape (N, C, H, W) or token ids (N, T), or cached inputs
            standing for them (:class:`engine.data.cache.CachedInputs`).
        label_sets: Uint8 (N, L) multi-hot: 1 where the sample holds the class.
        split: (N,) ``"train"`` or ``"heldout"``.
        class_names: The L class names.
        sample_ids: Int64 (N,) == 0..N-1.
        dataset: The dataset cache's description, or None.
        keys: N keys of the samples in their source, or None.
    """

    name: str
    inputs: np.ndarray
    label_sets: np.ndarray
    split: np.ndarray
    class_names: list[str]
    sample_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    dataset: dict | None = None  # the dataset cache's description, when read from one
    keys: list[str] | None = None  # each sample's key in its source

    multilabel = True  # several classes per sample (ClassificationData says False)
    labelled = True  # every sample holds a non-empty label set (ingest refuses others)

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if self.sample_ids is None:
            self.sample_ids = np.arange(n, dtype=np.int64)
        if self.label_sets.shape != (n, len(self.class_names)):
            raise ValueError(
                f"label_sets has shape {self.label_sets.shape}, not (N={n}, L={len(self.class_names)})"
            )
        if len(self.split) != n:
            raise ValueError(f"split has {len(self.split)} rows but inputs has {n}")

    @property
    def labels(self) -> np.ndarray:
        """Refused: a multi-label sample has no single class index.

        Raises:
            ValueError: Always, naming ``label_sets``.
        """
        raise ValueError(
            f"{self.name}: multi-label samples have no single class index (labels); read "
            "label_sets (N, L), or refuse multi-label data where one class per sample is needed"
        )

    @property
    def num_samples(self) -> int:
        """N."""
        return len(self.split)


def seeded_split(n: int, heldout_fraction: float, seed: int) -> np.ndarray:
    """An (N,) split holding out ``round(heldout_fraction * N)`` samples drawn with ``seed``.

    Multi-label samples have no single class to stratify by, so the draw is over all
    samples (a source's own split column is used where it has one).

    Raises:
        ValueError: When the split would leave fewer than ``MIN_TRAIN_SAMPLES`` to train on.
    """
    held = round(heldout_fraction * n)
    if n - held < MIN_TRAIN_SAMPLES or held < 1:
        raise ValueError(f"{n} samples cannot be split with heldout_fraction {heldout_fraction}")
    split = np.full(n, SPLIT_TRAIN, dtype=object)
    split[np.random.default_rng(seed).permutation(n)[:held]] = SPLIT_HELDOUT
    return split.astype(str)
