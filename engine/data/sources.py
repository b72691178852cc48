"""Dataset sources: the bundled scikit-learn digits default and the source registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine._util import unknown_name_error

SPLIT_TRAIN = "train"  # samples the replicas and the evaluated models are trained on
SPLIT_HELDOUT = "heldout"  # samples never trained on; hard splits are cut from these
DIGITS_MAX_PIXEL = 16.0  # sklearn digits pixels are integers in [0, 16]


@dataclass
class ClassificationData:
    """An image or feature classification dataset with a fixed train/held-out split.

    Attributes:
        name: Source name.
        inputs: Float32 array of shape (N, C, H, W) (or (N, D) for feature data).
        labels: Int64 array of shape (N,) with values in [0, K).
        split: Array of shape (N,) holding ``"train"`` or ``"heldout"``.
        class_names: K class names.
        sample_ids: Int64 array of shape (N,); sample ``i`` has id ``sample_ids[i] == i``.
    """

    name: str
    inputs: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]
    sample_ids: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if self.sample_ids is None:
            self.sample_ids = np.arange(n, dtype=np.int64)
        for attr in ("labels", "split", "sample_ids"):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"{attr} has {len(getattr(self, attr))} rows but inputs has {n}")
        if not np.array_equal(self.sample_ids, np.arange(n)):
            raise ValueError("sample_ids must be 0..N-1 in row order")
        k = len(self.class_names)
        if self.labels.min() < 0 or self.labels.max() >= k:
            raise ValueError(
                f"labels must lie in [0, {k}), got [{self.labels.min()}, {self.labels.max()}]"
            )

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. (1, 8, 8)."""
        return tuple(self.inputs.shape[1:])

    def indices(self, split: str) -> np.ndarray:
        """Row indices (== sample ids) of ``split``; ``"all"`` gives every row."""
        if split == "all":
            return self.sample_ids
        return np.flatnonzero(self.split == split)


def _stratified_split(labels: np.ndarray, heldout_fraction: float, seed: int) -> np.ndarray:
    """Return an (N,) split array, held-out fraction taken per class with a fixed seed."""
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), SPLIT_TRAIN, dtype=object)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        n_held = round(heldout_fraction * len(idx))
        split[rng.permutation(idx)[:n_held]] = SPLIT_HELDOUT
    return split.astype(str)


def load_sklearn_digits(*, heldout_fraction: float, split_seed: int) -> ClassificationData:
    """Load scikit-learn's bundled digits (1,797 8x8 grey images, 10 classes), offline.

    Args:
        heldout_fraction: Fraction of each class put in the held-out split.
        split_seed: Seed of the stratified split.

    Returns:
        Data with inputs of shape (1797, 1, 8, 8) scaled to [0, 1].
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    inputs = (bunch.images.astype(np.float32) / DIGITS_MAX_PIXEL)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    return ClassificationData(
        name="sklearn_digits",
        inputs=np.ascontiguousarray(inputs),
        labels=labels,
        split=_stratified_split(labels, heldout_fraction, split_seed),
        class_names=[str(c) for c in bunch.target_names],
    )


_SOURCES: dict[str, Callable[..., ClassificationData]] = {
    "sklearn_digits": load_sklearn_digits,
}


def list_sources() -> list[str]:
    """Names of the registered dataset sources."""
    return sorted(_SOURCES)


def load_dataset(source: str, *, heldout_fraction: float, split_seed: int) -> ClassificationData:
    """Load a registered dataset source with its fixed split.

    Raises:
        ValueError: For an unknown source (the message lists the valid ones).
    """
    if source not in _SOURCES:
        raise unknown_name_error("data source", source, _SOURCES)
    return _SOURCES[source](heldout_fraction=heldout_fraction, split_seed=split_seed)
