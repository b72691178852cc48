"""Dataset sources: the bundled scikit-learn digits default and the source registry."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.spec.training import NOISE_KINDS

SPLIT_TRAIN = "train"  # samples the replicas and the evaluated models are trained on
SPLIT_HELDOUT = "heldout"  # samples never trained on; hard splits are cut from these
DIGITS_MAX_PIXEL = 16.0  # sklearn digits pixels are integers in [0, 16]
UNLABELLED = -1  # the label of an unlabelled pool sample


class SampleViews:
    """What every sample set derives from its ``class_names``, ``inputs``, ``split`` and ids.

    Shared by :class:`ClassificationData` and the multi-label task's ``MultiLabelData``.
    """

    @property
    def num_classes(self) -> int:
        """K, the number of classes (a multi-label set's L labels, one output each)."""
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


@dataclass
class ClassificationData(SampleViews):
    """An image or feature classification dataset with a fixed train/held-out split.

    Attributes:
        name: Source name.
        inputs: Float32 array of shape (N, C, H, W) (or (N, D) for feature data), or a
            :class:`engine.data.cache.CachedInputs` standing for one (gathered per batch).
        labels: Int64 array of shape (N,) with values in [0, K), or -1 for an
            unlabelled held-out sample (an unlabelled pool).
        split: Array of shape (N,) holding ``"train"`` or ``"heldout"``.
        class_names: K class names.
        sample_ids: Int64 array of shape (N,); sample ``i`` has id ``sample_ids[i] == i``.
        clean_labels: Int64 (N,) labels before injected label noise (benchmarks), or None.
        texts: N raw strings for text data, whose ``inputs`` are int64 token ids (N, L).
        dataset: The dataset cache's description (folder, fingerprint, skips), or None
            for data loaded without a cache.
        keys: N keys of the samples in their source (a file's path, a row), or None.
        leak_partner: Int64 (N,) for each held-out sample, the training sample it
            duplicates (exactly or nearly: :mod:`engine.data.report`), -1 for none;
            None where duplicates were not looked for.
    """

    name: str
    inputs: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]
    sample_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    clean_labels: np.ndarray | None = None  # the labels before injected noise, if any
    texts: list[str] | None = None  # the raw texts of text data (inputs are token ids)
    dataset: dict | None = None  # the dataset cache's description, when read from one
    keys: list[str] | None = None  # each sample's key in its source (file path, row, ...)
    leak_partner: np.ndarray | None = None  # the training sample a held-out one duplicates

    multilabel = False  # one class per sample (engine.data.multilabel_data: several)

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
        if self.labels.min() < UNLABELLED or self.labels.max() >= k:
            raise ValueError(
                f"labels must lie in [0, {k}) (or be {UNLABELLED}: unlabelled), got "
                f"[{self.labels.min()}, {self.labels.max()}]"
            )
        if ((self.labels == UNLABELLED) & (self.split == SPLIT_TRAIN)).any():
            raise ValueError("every training sample needs a label (unlabelled: held out only)")

    @property
    def labelled(self) -> bool:
        """Whether every sample has a label (else the held-out pool has unlabelled ones)."""
        return bool((self.labels != UNLABELLED).all())


def stratified_split(labels: np.ndarray, heldout_fraction: float, seed: int) -> np.ndarray:
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
        split=stratified_split(labels, heldout_fraction, split_seed),
        class_names=[str(c) for c in bunch.target_names],
    )


def flip_labels(
    labels: np.ndarray,
    *,
    fraction: float,
    kind: str,
    seed: int,
    num_classes: int,
    confusable: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(fraction * N)`` labels, chosen at random with ``seed``.

    Args:
        labels: Int (N,) clean labels.
        fraction: Share of samples to flip, in (0, 1).
        kind: ``uniform`` (a different class, uniformly) or ``class_conditional`` (class c
            always becomes ``confusable[c]``, a fixed confusable class).
        seed: Seed of the choice of samples and new labels.
        num_classes: K.
        confusable: K class ids, ``confusable[c] != c`` (default ``(c + 1) % K``).

    Returns:
        ``(noisy labels (N,), flipped mask (N,) bool)``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    rng = np.random.default_rng(seed)
    n = len(labels)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=round(fraction * n), replace=False)] = True
    noisy = labels.copy()
    if kind == "uniform":
        shift = rng.integers(1, num_classes, size=n)  # never the same class
        noisy[flipped] = (labels[flipped] + shift[flipped]) % num_classes
    else:
        mapping = np.asarray(confusable if confusable is not None else
                             [(c + 1) % num_classes for c in range(num_classes)])  # fmt: skip
        if len(mapping) != num_classes or np.any(mapping == np.arange(num_classes)):
            raise ValueError("confusable must give K classes, none mapped to itself")
        noisy[flipped] = mapping[labels[flipped]]
    return noisy, flipped
