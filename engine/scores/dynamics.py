"""Training-dynamics scores that use the labels: data maps, AUM, forgetting events, EL2N.

Notation: R seed replicas, E epochs, N samples, K classes. Every public function
validates its inputs; every accumulator equals its function on the concatenation of
its chunks along the epoch axis (chunks must arrive in epoch order).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from engine.scores._moments import RunningMoments
from engine.scores._validation import (
    add_per_sample,
    as_float_array,
    as_labels,
    check_probabilities,
)

DATA_MAP_FIELDS = ("confidence", "variability", "correctness")  # keys of data_map()'s result


def _probs_and_labels(labels: object, pred_probs: object) -> tuple[np.ndarray, np.ndarray]:
    probs = as_float_array("pred_probs", pred_probs, 4, "(R, E, N, K)")
    check_probabilities("pred_probs", probs)
    return as_labels(labels, probs.shape[2], probs.shape[3]), probs


def replica_scalars(labels: np.ndarray, pred_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-(replica, epoch, sample) scalars that the label-aware scores are built from.

    Args:
        labels: Int (N,) in [0, K).
        pred_probs: Float (R, E, N, K), already validated.

    Returns:
        ``p_true`` (R, E, N) probability of the given label, ``correct`` (R, E, N) bool
        (argmax == label), ``el2n`` (R, E, N) L2 norm of probs minus one-hot.
    """
    n = pred_probs.shape[2]
    p_true = pred_probs[:, :, np.arange(n), labels]
    correct = pred_probs.argmax(axis=-1) == labels
    # ||p - e_y||^2 = sum_k p_k^2 - 2 p_y + 1
    sq = np.einsum("renk,renk->ren", pred_probs, pred_probs) - 2 * p_true + 1.0
    return {"p_true": p_true, "correct": correct, "el2n": np.sqrt(np.maximum(sq, 0.0))}


def margins_from_logits(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Assigned logit minus the largest other logit, over the last axis.

    Args:
        labels: Int (N,).
        logits: Float (..., N, K).

    Returns:
        Float (..., N) margins; negative when another class wins.
    """
    n = logits.shape[-2]
    assigned = logits[..., np.arange(n), labels]
    others = logits.copy()
    others[..., np.arange(n), labels] = -np.inf
    return assigned - others.max(axis=-1)


# ---------------------------------------------------------------- data maps


def data_map(labels: np.ndarray, pred_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Data-map coordinates (Swayamdipta et al. 2020), averaged over replicas.

    For each replica, over epochs: confidence = mean of p(given label), variability =
    its standard deviation (ddof=0), correctness = fraction of epochs whose argmax is
    the given label. Each is then averaged over replicas.

    Args:
        labels: Int (N,) in [0, K).
        pred_probs: Float (R, E, N, K).

    Returns:
        ``{"confidence", "variability", "correctness"}``, each (N,). Lower confidence
        and correctness = harder; higher variability = more ambiguous.
    """
    labels, probs = _probs_and_labels(labels, pred_probs)
    s = replica_scalars(labels, probs)
    return {
        "confidence": s["p_true"].mean(axis=1).mean(axis=0),
        "variability": s["p_true"].std(axis=1).mean(axis=0),
        "correctness": s["correct"].mean(axis=1).mean(axis=0),
    }


class DataMapAccumulator:
    """Streaming :func:`data_map` (per-replica running moments over epoch chunks)."""

    def __init__(self) -> None:
        self._p_true = RunningMoments()  # over epochs, per (replica, sample)
        self._correct: np.ndarray | None = None  # (R, N) correct-epoch counts

    def update(self, labels: np.ndarray, pred_probs: np.ndarray) -> None:
        """Add a chunk: labels (N,), pred_probs (R, E_chunk, N, K)."""
        labels, probs = _probs_and_labels(labels, pred_probs)
        s = replica_scalars(labels, probs)
        self.update_scalars(s["p_true"], s["correct"])

    def update_scalars(self, p_true: np.ndarray, correct: np.ndarray) -> None:
        """Add precomputed (R, E_chunk, N) p(given label) and correctness."""
        self._p_true.update(p_true)
        counts = np.asarray(correct).sum(axis=1).astype(np.float64)
        self._correct = counts if self._correct is None else self._correct + counts

    def result(self) -> dict[str, np.ndarray]:
        """``{"confidence", "variability", "correctness"}``, each (N,)."""
        if self._p_true.mean is None:
            raise ValueError("DataMapAccumulator.result() called before any update()")
        return {
            "confidence": self._p_true.mean.mean(axis=0),
            "variability": self._p_true.std().mean(axis=0),
            "correctness": (self._correct / self._p_true.count).mean(axis=0),
        }


# ---------------------------------------------------------------- AUM


def aum(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Area under the margin (Pleiss et al. 2020), averaged over epochs and replicas.

    Margin = logit of the given label minus the largest other logit.

    Args:
        labels: Int (N,) in [0, K).
        logits: Float (R, E, N, K).

    Returns:
        Float (N,). Lower = more likely mislabeled (negative: another class wins on average).
    """
    arr = as_float_array("logits", logits, 4, "(R, E, N, K)")
    labels = as_labels(labels, arr.shape[2], arr.shape[3])
    return margins_from_logits(labels, arr).mean(axis=(0, 1))


class AUMAccumulator:
    """Streaming :func:`aum`; the pool feeds stored margins through ``update_margins``."""

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None
        self._count = 0

    def update(self, labels: np.ndarray, logits: np.ndarray) -> None:
        """Add a chunk: labels (N,), logits (R, E_chunk, N, K)."""
        arr = as_float_array("logits", logits, 4, "(R, E_chunk, N, K)")
        labels = as_labels(labels, arr.shape[2], arr.shape[3])
        self.update_margins(margins_from_logits(labels, arr))

    def update_margins(self, margins: np.ndarray) -> None:
        """Add precomputed margins of shape (R, E_chunk, N)."""
        margins = np.asarray(margins, dtype=np.float64)
        self._sum = add_per_sample(self._sum, margins.sum(axis=(0, 1)))
        self._count += margins.shape[0] * margins.shape[1]

    def result(self) -> np.ndarray:
        """(N,) mean margin. Lower = more likely mislabeled."""
        if self._sum is None:
            raise ValueError("AUMAccumulator.result() called before any update()")
        return self._sum / self._count


# ---------------------------------------------------------------- forgetting


def forgetting_events(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Forgetting events (Toneva et al. 2019), summed over replicas.

    For each replica, an event is an epoch t where the sample was classified correctly
    at t-1 and incorrectly at t. A replica that never classifies the sample correctly
    counts E for it (more than the floor(E/2) events possible), so never-learned
    samples rank above every learned one.

    Args:
        labels: Int (N,) in [0, K).
        pred_probs: Float (R, E, N, K).

    Returns:
        Float (N,) in [0, R*E]. Higher = harder.
    """
    labels, probs = _probs_and_labels(labels, pred_probs)
    return _forgetting_from_correct(replica_scalars(labels, probs)["correct"])


def _forgetting_from_correct(correct: np.ndarray) -> np.ndarray:
    epochs = correct.shape[1]
    events = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.float64)
    never = ~correct.any(axis=1)
    return np.where(never, float(epochs), events).sum(axis=0)


NOT_PRESENTED = -1  # presentation record of a sample that no mini-batch of that epoch held


def forgetting_from_presentations(presented: np.ndarray) -> np.ndarray:
    """Forgetting events counted over training presentations (Toneva et al. 2019).

    Toneva et al. record, each time a training sample appears in a mini-batch, whether
    the model (before that step's update) classifies it correctly; an event is a
    presentation that is wrong after one that was right. Here each replica presents
    every training sample once per epoch, so the record is one value per epoch. As in
    :func:`forgetting_events`, a replica that never classifies the sample correctly
    counts E (the epochs seen) for it.

    Args:
        presented: Int (R, E, N): 1 = correct at its presentation in that epoch, 0 =
            wrong, -1 (``NOT_PRESENTED``) = not in any mini-batch of that epoch (held-out
            samples, or a BatchNorm model's skipped batch of one).

    Returns:
        Float (N,) summed over replicas; NaN for a sample some replica never saw (every
        held-out sample). Higher = harder.
    """
    acc = ForgettingAccumulator(presentations=True)
    acc.update_presentations(np.asarray(presented))
    return acc.result()


class ForgettingAccumulator:
    """Streaming :func:`forgetting_events`; chunks must arrive in epoch order.

    Args:
        presentations: Take presentation records (:func:`forgetting_from_presentations`,
            through ``update_presentations``) instead of end-of-epoch correctness.
    """

    def __init__(self, *, presentations: bool = False) -> None:
        self.presentations = presentations
        self._last: np.ndarray | None = None  # (R, N) int8: last seen correctness, -1 = none
        self._events: np.ndarray | None = None  # (R, N) correct-to-wrong transitions
        self._ever: np.ndarray | None = None  # (R, N) ever correct
        self._epochs = 0

    def update(self, labels: np.ndarray, pred_probs: np.ndarray) -> None:
        """Add a chunk: labels (N,), pred_probs (R, E_chunk, N, K)."""
        labels, probs = _probs_and_labels(labels, pred_probs)
        self.update_correct(replica_scalars(labels, probs)["correct"])

    def update_correct(self, correct: np.ndarray) -> None:
        """Add precomputed (R, E_chunk, N) correctness (every sample seen every epoch)."""
        correct = np.asarray(correct, dtype=bool)
        self._add(correct.astype(np.int8))

    def update_presentations(self, presented: np.ndarray) -> None:
        """Add (R, E_chunk, N) presentation records: 1 right, 0 wrong, -1 not presented."""
        presented = np.asarray(presented)
        if presented.size and (presented.min() < NOT_PRESENTED or presented.max() > 1):
            raise ValueError("presentation records must be 1 (right), 0 (wrong) or -1 (not shown)")
        self._add(presented.astype(np.int8))

    def _add(self, chunk: np.ndarray) -> None:
        if self._last is None:
            shape = (chunk.shape[0], chunk.shape[2])
            self._last = np.full(shape, NOT_PRESENTED, np.int8)
            self._events = np.zeros(shape, np.int64)
            self._ever = np.zeros(shape, bool)
        elif (chunk.shape[0], chunk.shape[2]) != self._last.shape:
            raise ValueError(
                f"chunks must keep (R, N) = {self._last.shape}, got {(chunk.shape[0], chunk.shape[2])}"
            )
        for t in range(chunk.shape[1]):
            now = chunk[:, t]
            seen = now != NOT_PRESENTED
            self._events += seen & (self._last == 1) & (now == 0)
            self._ever |= now == 1
            self._last = np.where(seen, now, self._last)
        self._epochs += chunk.shape[1]

    def result(self) -> np.ndarray:
        """(N,) forgetting events summed over replicas (E per never-learning replica).

        NaN for a sample that some replica never saw (presentation records only).
        """
        if self._events is None:
            raise ValueError("ForgettingAccumulator.result() called before any update()")
        per_replica = np.where(self._ever, self._events, self._epochs).astype(np.float64)
        per_replica[self._last == NOT_PRESENTED] = np.nan
        return per_replica.sum(axis=0)


# ---------------------------------------------------------------- EL2N


def el2n(labels: np.ndarray, pred_probs: np.ndarray, *, epoch: int = -1) -> np.ndarray:
    """EL2N (Paul et al. 2021): L2 norm of probabilities minus one-hot, averaged over replicas.

    Args:
        labels: Int (N,) in [0, K).
        pred_probs: Float (R, E, N, K).
        epoch: Which epoch to read (Python indexing; -1 = last). Paul et al. use an
            early epoch.

    Returns:
        Float (N,) in [0, sqrt(2)]. Higher = harder.
    """
    labels, probs = _probs_and_labels(labels, pred_probs)
    e = probs.shape[1]
    if not -e <= epoch < e:
        raise ValueError(f"epoch must be in [{-e}, {e}), got {epoch}")
    return replica_scalars(labels, probs[:, [epoch]])["el2n"][:, 0].mean(axis=0)


class EL2NAccumulator:
    """Streaming :func:`el2n` at a fixed epoch (a negative epoch keeps a short ring buffer).

    Args:
        epoch: A non-negative epoch index (the chunk's epoch indices are given to
            ``update_el2n``, or counted from 0), or a negative position from the last
            epoch seen.
    """

    def __init__(self, *, epoch: int = -1) -> None:
        self.epoch = epoch
        self._seen = 0
        self._value: np.ndarray | None = None
        self._recent: deque[np.ndarray] = deque(maxlen=-epoch if epoch < 0 else 1)

    def update(self, labels: np.ndarray, pred_probs: np.ndarray) -> None:
        """Add a chunk: labels (N,), pred_probs (R, E_chunk, N, K)."""
        labels, probs = _probs_and_labels(labels, pred_probs)
        self.update_el2n(replica_scalars(labels, probs)["el2n"])

    def update_el2n(self, values: np.ndarray, *, epochs: list[int] | None = None) -> None:
        """Add precomputed per-replica EL2N of shape (R, E_chunk, N).

        Args:
            values: Float (R, E_chunk, N).
            epochs: The chunk's epoch indices (default: the next ones counting from 0).
        """
        values = np.asarray(values, dtype=np.float64)
        if epochs is None:
            epochs = list(range(self._seen, self._seen + values.shape[1]))
        if len(epochs) != values.shape[1]:
            raise ValueError(f"epochs has {len(epochs)} entries for {values.shape[1]} epochs")
        for i, epoch in enumerate(epochs):
            per_sample = values[:, i].mean(axis=0)
            if self.epoch < 0:
                self._recent.append(per_sample)
            elif epoch == self.epoch:
                self._value = per_sample
            self._seen += 1

    def result(self) -> np.ndarray:
        """(N,) EL2N at the chosen epoch. Higher = harder."""
        if self.epoch < 0:
            if len(self._recent) < -self.epoch:
                raise ValueError(
                    f"epoch {self.epoch} needs at least {-self.epoch} epochs, saw {self._seen}"
                )
            return self._recent[0]
        if self._value is None:
            raise ValueError(f"epoch {self.epoch} was never seen (saw {self._seen} epochs)")
        return self._value
