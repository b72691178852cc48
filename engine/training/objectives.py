"""Training objectives: how a train loop turns logits and targets into a loss, and shards into records.

A replica or an evaluated model is the same registered network for every
classification-like task; what differs is the objective:

- :data:`SINGLE_LABEL`: one class per sample. Targets int (N,) in [0, K); softmax
  probabilities; loss = cross-entropy; a sample is right when the argmax is its class.
  This is exactly the code the classification loops ran before objectives existed
  (``F.cross_entropy``, ``argmax == y``, :func:`softmax_and_loss`): bit for bit.
- :data:`MULTI_LABEL`: several classes per sample. Targets multi-hot uint8 (N, L);
  one sigmoid per label; loss = binary cross-entropy with logits summed over the
  labels and averaged over the batch's samples; a sample is right when every label
  is right at the 0.5 threshold (logit > 0). Per-sample records for shards are
  computed from the float32 sigmoid probabilities with
  :func:`engine.scores.multilabel.multilabel_scalars`, so a shard's loss is the one
  the multi-label scores compute from its stored probabilities.

Each objective refuses the other's targets by shape and dtype: int class labels
never reach a multi-label loss, nor multi-hot rows a cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.scores.multilabel import multilabel_scalars


@dataclass(frozen=True)
class Records:
    """What a replica records per scoring-set sample after an epoch.

    Attributes:
        probs: Float32 (N, K): softmax probabilities (single-label, rows sum to 1) or
            per-label sigmoid probabilities (multi-label, each in [0, 1]).
        loss: Float32 (N,) natural-log loss (cross-entropy, or BCE summed over
            labels); None without labels. Higher = worse fit.
        margin: Float32 (N,) given logit minus the largest other (single-label only),
            else None.
    """

    probs: np.ndarray
    loss: np.ndarray | None
    margin: np.ndarray | None


def softmax_and_loss(
    logits: np.ndarray, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Class probabilities, per-sample cross-entropy and logit margin from logits.

    Args:
        logits: Float array of shape (N, K).
        labels: Int array of shape (N,), or None for unlabeled data.

    Returns:
        ``(probs, loss, margin)``: float32 (N, K) probabilities, float32 (N,) natural-log
        cross-entropy, and float32 (N,) given logit minus largest other logit (both
        None without labels).
    """
    t = torch.as_tensor(logits, dtype=torch.float64)
    logp = torch.log_softmax(t, dim=1)
    probs = logp.exp().float().numpy()
    if labels is None:
        return probs, None, None
    y = torch.as_tensor(labels, dtype=torch.long)
    rows = torch.arange(len(t))
    loss = -logp[rows, y]
    others = t.clone()
    others[rows, y] = -torch.inf
    margin = t[rows, y] - others.max(dim=1).values
    return probs, loss.float().numpy(), margin.float().numpy()


class SingleLabel:
    """Softmax + cross-entropy over K classes (see the module docstring)."""

    name = "single_label"

    def targets(self, labels: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
        """Int64 (N,) targets on ``device``.

        Raises:
            ValueError: For anything but a 1-D array of class indices (multi-hot rows
                included: they are several classes per sample).
        """
        arr = np.asarray(labels)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"single-label training needs int class indices of shape (N,), got "
                f"{arr.dtype} {arr.shape}" + (" (multi-hot rows: use the multi-label objective)"
                                              if arr.ndim == 2 else "")
            )  # fmt: skip
        return torch.as_tensor(arr, dtype=torch.long, device=device)

    def batch_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of (B, K) logits against (B,) classes."""
        return F.cross_entropy(logits, targets)

    def batch_correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Int8 (B,): 1 where the argmax is the class."""
        return (logits.argmax(dim=1) == targets).to(torch.int8)

    def records(self, logits: np.ndarray, labels: np.ndarray | None) -> Records:
        """Softmax probabilities, cross-entropy and margin (:func:`softmax_and_loss`)."""
        return Records(*softmax_and_loss(logits, labels))


class MultiLabel:
    """One sigmoid per label + binary cross-entropy summed over labels (see the module docstring)."""

    name = "multi_label"

    def targets(self, labels: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
        """Float32 (N, L) 0/1 targets on ``device``.

        Raises:
            ValueError: For anything but a 2-D array of 0/1 (int class indices included:
                one class per sample is not a label set).
        """
        arr = np.asarray(labels)
        if arr.ndim != 2 or not np.isin(arr, (0, 1)).all():
            raise ValueError(
                f"multi-label training needs multi-hot 0/1 rows of shape (N, L), got "
                f"{arr.dtype} {arr.shape}" + (" (int class indices: one class per sample)"
                                              if arr.ndim == 1 else "")
            )  # fmt: skip
        return torch.as_tensor(arr, dtype=torch.float32, device=device)

    def batch_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """BCE with logits summed over the L labels, averaged over the B samples."""
        per_label = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return per_label.sum(dim=1).mean()

    def batch_correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Int8 (B,): 1 where every label is right (present iff logit > 0, i.e. p > 0.5)."""
        return ((logits > 0) == (targets > 0)).all(dim=1).to(torch.int8)

    def records(self, logits: np.ndarray, labels: np.ndarray | None) -> Records:
        """Sigmoid probabilities and the summed BCE of those float32 probabilities (no margin)."""
        probs = torch.sigmoid(torch.as_tensor(logits, dtype=torch.float64)).float().numpy()
        if labels is None:
            return Records(probs, None, None)
        hot = self.targets(labels).numpy().astype(bool)
        loss = multilabel_scalars(hot, probs.astype(np.float64))["loss"]
        return Records(probs, loss.astype(np.float32), None)


SINGLE_LABEL = SingleLabel()  # the classification objective (softmax + cross-entropy)
MULTI_LABEL = MultiLabel()  # the multi-label objective (sigmoids + summed BCE)
Objective = SingleLabel | MultiLabel  # what the train loops accept
