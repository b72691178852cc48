"""Difficulty scores for multi-label classification, with streaming accumulators.

Notation: R seed replicas, E epochs, N samples, L labels. ``pred_probs`` (R, E, N, L)
holds each replica's per-label sigmoid probability that label l is present;
``labels`` (N, L) is the multi-hot truth (1 = present, 0 = absent). Every label is a
binary problem: each score is its classification counterpart computed per label
(with the same replica and epoch conventions as :mod:`engine.scores.classification`
and :mod:`engine.scores.dynamics`) and then averaged over the L labels.

A label is predicted present when its probability is strictly above
:data:`DECISION_THRESHOLD` (0.5, a logit of exactly 0, is predicted absent), so a
label is *right* when ``(p > 0.5) == y``.

Every accumulator takes one epoch (or a chunk of epochs, in epoch order) of one sample
block at a time and adds epochs one by one in the order the in-memory function sums
them, so its result equals the in-memory function bit for bit; data-map variability
alone merges running moments (Chan et al.) and equals ``np.std`` to rounding (about
1e-15), as :class:`engine.scores.dynamics.DataMapAccumulator` does.
"""

from __future__ import annotations

import numpy as np

from engine.scores._moments import RunningMoments
from engine.scores._validation import as_float_array
from engine.scores.dynamics import ForgettingAccumulator

DECISION_THRESHOLD = 0.5  # a label is predicted present when its probability is strictly above
# Probabilities are clipped to [eps, 1 - eps] before the log of the binary cross-entropy
# (Keras' epsilon): float32 sigmoids saturate to exactly 0 or 1, and 1e-7 is about the
# float32 spacing below 1.0, so one confidently wrong label costs at most -ln(1e-7) = 16.1.
BCE_PROB_CLIP = 1e-7

PROBS_SHAPE = "(R, E, N, L)"  # shape of pred_probs, in error messages
CHUNK_SHAPE = "(R, N, L) or (R, E_chunk, N, L)"  # what an accumulator's update takes


# ---------------------------------------------------------------- validation


def as_multi_hot(labels: object, n: int, num_labels: int) -> np.ndarray:
    """Return multi-hot ``labels`` as a bool (N, L) array after checking shape and values.

    Args:
        labels: Array-like of 0/1 (bool, integer, or integral float) of shape (N, L).
        n: Expected number of samples N.
        num_labels: Expected number of labels L.

    Returns:
        Bool (N, L): True where the label is present.

    Raises:
        ValueError: On a wrong shape, a non-numeric dtype, or the first value that is
            not 0 or 1 (named with its (sample, label) index).
    """
    arr = np.asarray(labels)
    if arr.shape != (n, num_labels):
        raise ValueError(
            f"labels must have shape (N, L) = ({n}, {num_labels}) (multi-hot), got {arr.shape}"
        )
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"labels must be multi-hot 0/1 numbers, got dtype {arr.dtype}")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"labels must be multi-hot (0 or 1), got {arr[index].item()!r} at (sample, label) "
            f"index {index}"
        )
    return arr == 1


def check_unit_interval(name: str, probs: np.ndarray) -> None:
    """Raise a ValueError naming the first entry of ``probs`` outside [0, 1], if any.

    Per-label sigmoid probabilities need not sum to 1 over labels; each must be a
    probability on its own.
    """
    bad = (probs < 0) | (probs > 1)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be per-label probabilities in [0, 1], got {probs[index].item()!r} at "
            f"index {index}"
        )


def _checked_probs(value: object, ndim: int, shape_doc: str) -> np.ndarray:
    probs = as_float_array("pred_probs", value, ndim, shape_doc)
    check_unit_interval("pred_probs", probs)
    return probs


def _probs_and_labels(labels: object, pred_probs: object) -> tuple[np.ndarray, np.ndarray]:
    probs = _checked_probs(pred_probs, 4, PROBS_SHAPE)
    return as_multi_hot(labels, probs.shape[2], probs.shape[3]), probs


def _chunk(pred_probs: object) -> np.ndarray:
    """An accumulator's input as a validated float64 (R, E_chunk, N, L) array."""
    arr = np.asarray(pred_probs)
    if arr.ndim == 3:
        arr = arr[:, None]
    return _checked_probs(arr, 4, CHUNK_SHAPE)


def _chunk_and_labels(labels: object, pred_probs: object) -> tuple[np.ndarray, np.ndarray]:
    probs = _chunk(pred_probs)
    return as_multi_hot(labels, probs.shape[2], probs.shape[3]), probs


# ---------------------------------------------------------------- shared pieces


def binary_entropy(probs: np.ndarray) -> np.ndarray:
    """Natural-log binary entropy ``-p ln p - (1 - p) ln(1 - p)`` elementwise, 0 ln 0 = 0.

    Args:
        probs: Probabilities of any shape, in [0, 1] (not checked here).

    Returns:
        Float64 array of the same shape, in [0, ln 2]; higher = more uncertain.
    """
    p = np.asarray(probs, dtype=np.float64)
    q = 1.0 - p
    terms = np.log(p, out=np.zeros_like(p), where=p > 0) * p
    terms += np.log(q, out=np.zeros_like(q), where=q > 0) * q
    return -terms + 0.0  # + 0.0 turns the -0.0 of a certain label into 0.0


def multilabel_scalars(labels: np.ndarray, pred_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-(replica, epoch, sample, label) scalars that the label-aware scores read.

    Args:
        labels: Bool (N, L), already validated.
        pred_probs: Float (..., N, L), already validated.

    Returns:
        ``p_true`` (..., N, L): probability of each label's true value (p where present,
        1 - p where absent); ``correct`` (..., N, L) bool: ``(p > 0.5) == label``;
        ``loss`` (..., N): binary cross-entropy summed over labels, probabilities
        clipped to [``BCE_PROB_CLIP``, 1 - ``BCE_PROB_CLIP``].
    """
    clipped = np.clip(pred_probs, BCE_PROB_CLIP, 1.0 - BCE_PROB_CLIP)
    p_true_clipped = np.where(labels, clipped, 1.0 - clipped)
    return {
        "p_true": np.where(labels, pred_probs, 1.0 - pred_probs),
        "correct": (pred_probs > DECISION_THRESHOLD) == labels,
        "loss": (-np.log(p_true_clipped)).sum(axis=-1),
    }


def _sum_axis(values: np.ndarray, axis: int) -> np.ndarray:
    """Sum along ``axis`` adding one slice at a time in index order (as accumulators do)."""
    moved = np.moveaxis(values, axis, 0)
    total = moved[0].astype(np.float64)  # a copy
    for t in range(1, moved.shape[0]):
        total += moved[t]
    return total


def _replica_mean(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 (replicas), summed slice by slice in replica order."""
    return _sum_axis(values, 0) / values.shape[0]


def _label_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis (labels) of a contiguous float64 array."""
    return np.ascontiguousarray(values, dtype=np.float64).mean(axis=-1)


def _epoch_confusion(mean_probs: np.ndarray) -> np.ndarray:
    """(..., N) mean over labels of the binary entropy of replica-mean probs (..., N, L)."""
    return _label_mean(binary_entropy(mean_probs))


def _check_same(state: np.ndarray | None, shape: tuple[int, ...], what: str, cls: str) -> None:
    if state is not None and state.shape != shape:
        raise ValueError(f"{cls}: every chunk must keep {what} = {state.shape}, got {shape}")


# ---------------------------------------------------------------- confusion


def multilabel_confusion(pred_probs: np.ndarray) -> np.ndarray:
    """Multi-label confusion: mean over labels of the binary entropy of the replica mean.

    ``p_t^l = mean_r f_t^r(x)_l``, ``s_t = mean_l H(p_t^l)`` with
    ``H(p) = -p ln p - (1 - p) ln(1 - p)`` (natural log, 0 ln 0 = 0), ``s = mean_t s_t``.
    Label-free: it scores an unlabelled pool. For L = 1 it is the classification
    confusion of the two-class distribution ``(p, 1 - p)``.

    Args:
        pred_probs: Per-label sigmoid probabilities of shape (R, E, N, L), each in [0, 1].

    Returns:
        Float64 (N,) in [0, ln 2]. Higher = harder.

    Raises:
        ValueError: If ``pred_probs`` is not 4-D, is empty, holds NaN/inf or a value
            outside [0, 1].
    """
    return _compute_confusion(_checked_probs(pred_probs, 4, PROBS_SHAPE))


def _compute_confusion(probs: np.ndarray) -> np.ndarray:
    per_epoch = _epoch_confusion(_replica_mean(probs))  # (E, N)
    return _sum_axis(per_epoch, 0) / probs.shape[1]


class MultilabelConfusionAccumulator:
    """Streaming :func:`multilabel_confusion` over epochs of one sample block."""

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None  # (N,) sum over epochs of mean-label entropy
        self._epochs = 0

    def update(self, pred_probs: np.ndarray) -> None:
        """Add one epoch (R, N, L) or a chunk of epochs (R, E_chunk, N, L), in epoch order."""
        probs = _chunk(pred_probs)
        self.update_mean(np.stack([_replica_mean(probs[:, t]) for t in range(probs.shape[1])]))

    def update_mean(self, mean_probs: np.ndarray) -> None:
        """Add replica-mean probabilities (E_chunk, N, L) (already validated)."""
        self.update_entropy(_epoch_confusion(np.asarray(mean_probs, dtype=np.float64)))

    def update_entropy(self, entropies: np.ndarray) -> None:
        """Add precomputed per-epoch confusions (E_chunk, N).

        Each value is the mean over labels of the binary entropy of the replica-mean
        probability (e.g. computed once per block by the shard reader).
        """
        entropies = np.asarray(entropies, dtype=np.float64)
        _check_same(self._sum, entropies.shape[1:], "N", type(self).__name__)
        for t in range(entropies.shape[0]):
            self._sum = entropies[t].copy() if self._sum is None else self._sum + entropies[t]
            self._epochs += 1

    def result(self) -> np.ndarray:
        """(N,) multi-label confusion of all epochs seen. Higher = harder."""
        if self._sum is None:
            raise ValueError(f"{type(self).__name__}.result() called before any update()")
        return self._sum / self._epochs


# ---------------------------------------------------------------- action


def multilabel_losses(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Per-(replica, epoch, sample) binary cross-entropy summed over labels.

    ``loss = -sum_l [y_l ln p_l + (1 - y_l) ln(1 - p_l)]`` (natural log), with ``p``
    clipped to [``BCE_PROB_CLIP``, 1 - ``BCE_PROB_CLIP``] so a saturated probability
    gives a finite loss. It equals ``BCEWithLogits(reduction="sum")`` over a sample's
    labels wherever the probabilities lie inside the clip range.

    Args:
        labels: Multi-hot (N, L) of 0/1.
        pred_probs: Float (R, E, N, L) in [0, 1].

    Returns:
        Float64 (R, E, N), each >= 0. Higher = worse fit.

    Raises:
        ValueError: On shapes that do not match, NaN/inf, probabilities outside [0, 1] or
            labels other than 0/1.
    """
    labels, probs = _probs_and_labels(labels, pred_probs)
    return multilabel_scalars(labels, probs)["loss"]


def multilabel_action(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Multi-label action: summed-over-labels BCE summed over epochs, averaged over replicas.

    The classification action (Arriaga et al., CVPR-W 2023: the area under each
    sample's loss curve) with the per-sample loss of :func:`multilabel_losses`. From
    stored per-sample losses, it is :func:`engine.scores.classification.action`.

    Args:
        labels: Multi-hot (N, L) of 0/1.
        pred_probs: Float (R, E, N, L) in [0, 1].

    Returns:
        Float64 (N,), >= 0, at most ``E * L * -ln(BCE_PROB_CLIP)``. Higher = harder.

    Raises:
        ValueError: As :func:`multilabel_losses`.
    """
    return _compute_action(multilabel_losses(labels, pred_probs))


def _compute_action(losses: np.ndarray) -> np.ndarray:
    return _replica_mean(_sum_axis(losses, 1))


class MultilabelActionAccumulator:
    """Streaming :func:`multilabel_action`; every update holds all R replicas."""

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None  # (R, N) per-replica loss summed over epochs
        self._epochs = 0

    def update(self, labels: np.ndarray, pred_probs: np.ndarray) -> None:
        """Add labels (N, L) and one epoch (R, N, L) or a chunk (R, E_chunk, N, L)."""
        labels, probs = _chunk_and_labels(labels, pred_probs)
        self.update_losses(multilabel_scalars(labels, probs)["loss"])

    def update_losses(self, losses: np.ndarray) -> None:
        """Add per-sample losses (R, E_chunk, N) summed over labels (e.g. read from shards).

        Raises:
            ValueError: On a wrong rank, NaN/inf or a negative loss, or a chunk whose
                (R, N) differs from the first one's.
        """
        arr = as_float_array("losses", losses, 3, "(R, E_chunk, N)")
        if (arr < 0).any():
            index = tuple(int(i) for i in np.argwhere(arr < 0)[0])
            raise ValueError(f"losses must be >= 0, got {arr[index].item()!r} at index {index}")
        _check_same(self._sum, (arr.shape[0], arr.shape[2]), "(R, N)", type(self).__name__)
        for t in range(arr.shape[1]):
            self._sum = arr[:, t].copy() if self._sum is None else self._sum + arr[:, t]
            self._epochs += 1

    def result(self) -> np.ndarray:
        """(N,) multi-label action. Higher = harder."""
        if self._sum is None:
            raise ValueError(f"{type(self).__name__}.result() called before any update()")
        return _replica_mean(self._sum)


# ---------------------------------------------------------------- data maps


def multilabel_data_map(labels: np.ndarray, pred_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Data-map coordinates (Swayamdipta et al. 2020) per label, averaged over labels.

    With ``q = p`` where the label is present and ``1 - p`` where absent (the probability
    of the label's true value), for each (replica, label) over epochs: confidence = mean
    of ``q``; variability = standard deviation of ``q`` (ddof=0; the per-replica std
    over epochs, not the std of the replica mean); correctness = fraction of epochs with
    ``(p > 0.5) == label``. Each is averaged over replicas (as
    :func:`engine.scores.dynamics.data_map`), then over labels.

    Variability measures *ambiguity*, not hardness: high variability = ambiguous;
    hard-to-learn = low confidence and low variability.

    Args:
        labels: Multi-hot (N, L) of 0/1.
        pred_probs: Float (R, E, N, L) in [0, 1].

    Returns:
        ``{"confidence", "variability", "correctness"}`` (the keys of
        :data:`engine.scores.dynamics.DATA_MAP_FIELDS`), each float64 (N,): confidence
        and correctness in [0, 1], lower = harder; variability in [0, 0.5], higher = more
        ambiguous.

    Raises:
        ValueError: As :func:`multilabel_losses`.
    """
    labels, probs = _probs_and_labels(labels, pred_probs)
    s = multilabel_scalars(labels, probs)
    epochs = probs.shape[1]
    return {
        "confidence": _label_mean(_replica_mean(_sum_axis(s["p_true"], 1) / epochs)),
        "variability": _label_mean(_replica_mean(s["p_true"].std(axis=1))),
        "correctness": _label_mean(_replica_mean(s["correct"].sum(axis=1) / epochs)),
    }


class MultilabelDataMapAccumulator:
    """Streaming :func:`multilabel_data_map` (per-(replica, sample, label) running sums)."""

    def __init__(self) -> None:
        self._p_sum: np.ndarray | None = None  # (R, N, L) sum over epochs of p(true value)
        self._moments = RunningMoments()  # over epochs, per (replica, sample, label)
        self._correct: np.ndarray | None = None  # (R, N, L) right-epoch counts
        self._epochs = 0

    def update(self, labels: np.ndarray, pred_probs: np.ndarray) -> None:
        """Add labels (N, L) and one epoch (R, N, L) or a chunk (R, E_chunk, N, L)."""
        labels, probs = _chunk_and_labels(labels, pred_probs)
        s = multilabel_scalars(labels, probs)
        self.update_scalars(s["p_true"], s["correct"])

    def update_scalars(self, p_true: np.ndarray, correct: np.ndarray) -> None:
        """Add precomputed (R, E_chunk, N, L) p(true value) and rightness (already valid)."""
        p_true = np.asarray(p_true, dtype=np.float64)
        correct = np.asarray(correct, dtype=bool)
        state = (p_true.shape[0], *p_true.shape[2:])
        _check_same(self._p_sum, state, "(R, N, L)", type(self).__name__)
        if correct.shape != p_true.shape:
            raise ValueError(f"correct has shape {correct.shape}, p_true {p_true.shape}")
        for t in range(p_true.shape[1]):
            now, right = p_true[:, t], correct[:, t].astype(np.int64)
            self._p_sum = now.copy() if self._p_sum is None else self._p_sum + now
            self._correct = right if self._correct is None else self._correct + right
            self._epochs += 1
        self._moments.update(p_true)

    def result(self) -> dict[str, np.ndarray]:
        """``{"confidence", "variability", "correctness"}``, each (N,)."""
        if self._p_sum is None:
            raise ValueError(f"{type(self).__name__}.result() called before any update()")
        return {
            "confidence": _label_mean(_replica_mean(self._p_sum / self._epochs)),
            "variability": _label_mean(_replica_mean(self._moments.std())),
            "correctness": _label_mean(_replica_mean(self._correct / self._epochs)),
        }


# ---------------------------------------------------------------- forgetting


def multilabel_forgetting(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Forgetting events (Toneva et al. 2019) per label, summed over replicas, mean over labels.

    For each (replica, label), an event is an epoch t where the label was right
    (``(p > 0.5) == label``) at t-1 and wrong at t; a replica that never gets the label
    right counts E for it, so never-learned labels rank above every learned one. As in
    :func:`engine.scores.dynamics.forgetting_events`, per-replica counts are summed over
    replicas; the (N, L) result is then averaged over labels.

    Args:
        labels: Multi-hot (N, L) of 0/1.
        pred_probs: Float (R, E, N, L) in [0, 1].

    Returns:
        Float64 (N,) in [0, R*E]. Higher = harder.

    Raises:
        ValueError: As :func:`multilabel_losses`.
    """
    labels, probs = _probs_and_labels(labels, pred_probs)
    return _compute_forgetting(multilabel_scalars(labels, probs)["correct"])


def _compute_forgetting(correct: np.ndarray) -> np.ndarray:
    epochs = correct.shape[1]
    events = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.float64)
    never = ~correct.any(axis=1)
    return _label_mean(np.where(never, float(epochs), events).sum(axis=0))


class MultilabelForgettingAccumulator:
    """Streaming :func:`multilabel_forgetting`; chunks must arrive in epoch order.

    Each (sample, label) pair is one sample of a
    :class:`engine.scores.dynamics.ForgettingAccumulator`, so the event and
    never-learned conventions are the classification ones by construction.
    """

    def __init__(self) -> None:
        self._counts = ForgettingAccumulator()
        self._shape: tuple[int, int] | None = None  # (N, L)

    def update(self, labels: np.ndarray, pred_probs: np.ndarray) -> None:
        """Add labels (N, L) and one epoch (R, N, L) or a chunk (R, E_chunk, N, L)."""
        labels, probs = _chunk_and_labels(labels, pred_probs)
        self.update_correct(multilabel_scalars(labels, probs)["correct"])

    def update_correct(self, correct: np.ndarray) -> None:
        """Add precomputed (R, E_chunk, N, L) rightness at threshold 0.5."""
        correct = np.asarray(correct, dtype=bool)
        if correct.ndim != 4:
            raise ValueError(f"correct must have shape (R, E_chunk, N, L), got {correct.shape}")
        r, e, n, num_labels = correct.shape
        if self._shape is not None and self._shape != (n, num_labels):
            raise ValueError(
                f"{type(self).__name__}: every chunk must keep (N, L) = {self._shape}, "
                f"got {(n, num_labels)}"
            )
        self._shape = (n, num_labels)
        self._counts.update_correct(correct.reshape(r, e, n * num_labels))

    def result(self) -> np.ndarray:
        """(N,) forgetting events per label summed over replicas, mean over labels."""
        if self._shape is None:
            raise ValueError(f"{type(self).__name__}.result() called before any update()")
        return _label_mean(self._counts.result().reshape(self._shape))
