"""Confusion-based mitigation for any training recipe: GroupDRO, upsampling, curriculum.

Each method uses a per-training-sample hardness from a finished run: the confusion
score by default, any score read in its own direction through
:func:`engine.scores.hardness` (higher = harder here, always):

- ``groupdro`` (Sagawa et al., 2020, online algorithm): samples are grouped by
  equal-count quantile bins of the score (``groups`` bins), or at fixed edges
  (``group_edges``; ``half``: the paper's two bands, confusion below and at or above
  ln K / 2); group weights q follow
  ``q_g <- q_g * exp(eta * loss_g)`` (normalised) after every batch and the loss is
  the q-weighted sum of the batch's group mean losses, so training leans towards the
  worst group.
- ``upsample``: the hardest ``hard_fraction`` of samples appear ``factor`` times per
  epoch (rounded per sample so the expected count is exact), in a shuffled order.
- ``curriculum``: samples ordered easy to hard; epoch e trains on the easiest
  fraction ``p(e)`` of them, shuffled, with ``p`` rising from ``start_fraction`` to 1
  over the first ``ramp_fraction`` of the epochs, linearly or as a square root.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.spec.evaluate import METHODS, MitigationOptions


def quantile_groups(scores: np.ndarray, num_groups: int) -> np.ndarray:
    """Equal-count bins of ``scores``: int (N,) in [0, num_groups), 0 = easiest.

    Ties are broken by position, so the bins have sizes differing by at most one.
    """
    order = np.argsort(scores, kind="stable")
    groups = np.empty(len(scores), dtype=np.int64)
    groups[order] = np.arange(len(scores)) * num_groups // len(scores)
    return groups


def fixed_groups(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Groups cut at fixed hardness edges: int (N,) in [0, len(edges)], 0 = easiest.

    Group g holds ``edges[g-1] <= score < edges[g]`` (a score on an edge goes to the
    harder group, as a threshold's own value belongs to the hard split).

    Raises:
        ValueError: If a group is empty (the edges miss the scores' range), which would
            leave GroupDRO a group it can never weigh.
    """
    groups = np.searchsorted(edges, scores, side="right").astype(np.int64)
    counts = np.bincount(groups, minlength=len(edges) + 1)
    if len(scores) and (counts == 0).any():
        empty = [int(g) for g in np.flatnonzero(counts == 0)]
        raise ValueError(
            f"GroupDRO group edges {edges.tolist()} leave group(s) {empty} empty: the training "
            f"samples' hardness lies in [{scores.min():.4g}, {scores.max():.4g}]"
        )
    return groups


def upsample_order(hard: np.ndarray, factor: float, generator: torch.Generator) -> torch.Tensor:
    """One epoch's sample order with every hard sample repeated ``factor`` times.

    Args:
        hard: Bool (N,) mask of hard samples.
        factor: Expected copies of a hard sample per epoch (>= 1); the fractional part
            is drawn per sample.
        generator: Source of randomness (the recipe's data-order generator).

    Returns:
        Int64 indices into the N samples, shuffled.
    """
    n = len(hard)
    whole = int(np.floor(factor))
    extra = torch.rand(n, generator=generator).numpy() < (factor - whole)
    copies = np.where(hard, whole + extra.astype(np.int64), 1)
    idx = torch.as_tensor(np.repeat(np.arange(n), copies))
    return idx[torch.randperm(len(idx), generator=generator)]


def pacing_fraction(epoch: int, epochs: int, start: float, ramp: float, pacing: str) -> float:
    """Share of the samples (easiest first) a curriculum trains on at ``epoch``."""
    ramp_epochs = max(1, round(ramp * epochs))
    t = min(1.0, epoch / ramp_epochs)
    if pacing == "root":
        t = t**0.5
    return min(1.0, start + (1.0 - start) * t)


def curriculum_order(
    scores: np.ndarray,
    epoch: int,
    epochs: int,
    *,
    start: float,
    ramp: float,
    pacing: str,
    generator: torch.Generator,
) -> torch.Tensor:
    """One epoch's order: the easiest ``pacing_fraction`` of samples, shuffled."""
    easy_first = np.argsort(scores, kind="stable")
    keep = max(1, round(pacing_fraction(epoch, epochs, start, ramp, pacing) * len(scores)))
    chosen = torch.as_tensor(easy_first[:keep])
    return chosen[torch.randperm(keep, generator=generator)]


class GroupDRO:
    """Online GroupDRO loss with exponentiated-gradient group weights.

    Args:
        num_groups: G.
        eta: Step size of the group-weight update.
    """

    def __init__(self, num_groups: int, eta: float) -> None:
        self.q = torch.full((num_groups,), 1.0 / num_groups, dtype=torch.float64)
        self.eta = eta

    def loss(self, per_sample: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """The q-weighted loss of one batch; updates q from the batch's group losses.

        Args:
            per_sample: Float (B,) losses (with grad).
            groups: Int (B,) group of each sample.

        Returns:
            Scalar loss.
        """
        num_groups = len(self.q)
        counts = torch.bincount(groups, minlength=num_groups).to(per_sample.dtype)
        sums = torch.zeros(num_groups, dtype=per_sample.dtype, device=per_sample.device)
        sums = sums.index_add(0, groups, per_sample)
        present = counts > 0
        group_loss = torch.where(present, sums / counts.clamp(min=1), torch.zeros_like(sums))
        with torch.no_grad():
            step = torch.where(
                present.cpu(),
                self.eta * group_loss.detach().double().cpu(),
                torch.zeros(num_groups, dtype=torch.float64),
            )
            self.q = self.q * torch.exp(step)
            self.q = self.q / self.q.sum()
        return (self.q.to(per_sample.device, per_sample.dtype) * group_loss).sum()


class Mitigation:
    """A mitigation bound to the training samples' scores.

    Args:
        method: One of ``METHODS``.
        scores: Float (N_train,) hardness of each training sample (higher = harder:
            orient a lower-is-harder score with :func:`engine.scores.hardness` first).
        options: Its settings (defaults: ``MitigationOptions()``).
        group_edges: GroupDRO's fixed group edges in the same (hardness) units as
            ``scores``, ascending; None for ``options.groups`` quantile groups.
    """

    def __init__(
        self,
        method: str,
        scores: np.ndarray,
        options: MitigationOptions | None = None,
        group_edges: np.ndarray | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        self.method = method
        self.options = options or MitigationOptions()
        self.scores = np.asarray(scores, dtype=np.float64)
        opt = self.options
        if group_edges is None:
            self._groups = quantile_groups(self.scores, opt.groups)
            num_groups = opt.groups
        else:
            self._groups = fixed_groups(self.scores, np.asarray(group_edges, dtype=np.float64))
            num_groups = len(group_edges) + 1
        cut = np.quantile(self.scores, 1 - opt.hard_fraction) if len(self.scores) else 0.0
        self._hard = self.scores >= cut
        self.dro = GroupDRO(num_groups, opt.eta) if method == "groupdro" else None

    def expected_steps(self, epochs: int, batch_size: int) -> int:
        """Optimizer steps over ``epochs`` epochs (expected, for upsampling's random part)."""
        n = len(self.scores)
        if self.method == "upsample":
            per_epoch = n + self._hard.sum() * (self.options.factor - 1)
            return epochs * max(1, int(np.ceil(per_epoch / batch_size)))
        if self.method == "curriculum":
            sizes = [
                max(1, round(pacing_fraction(e, epochs, self.options.start_fraction,
                                             self.options.ramp_fraction, self.options.pacing) * n))
                for e in range(epochs)
            ]  # fmt: skip
            return sum(-(-s // batch_size) for s in sizes)
        return epochs * max(1, -(-n // batch_size))

    def epoch_order(self, epoch: int, epochs: int, generator: torch.Generator) -> torch.Tensor:
        """Sample indices for one epoch (a plain shuffle for ERM and GroupDRO)."""
        n = len(self.scores)
        if self.method == "upsample":
            return upsample_order(self._hard, self.options.factor, generator)
        if self.method == "curriculum":
            opt = self.options
            return curriculum_order(
                self.scores, epoch, epochs, start=opt.start_fraction, ramp=opt.ramp_fraction,
                pacing=opt.pacing, generator=generator,
            )  # fmt: skip
        return torch.randperm(n, generator=generator)

    def batch_loss(self, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch of samples ``idx``."""
        if self.dro is None:
            return F.cross_entropy(logits, y)
        per_sample = F.cross_entropy(logits, y, reduction="none")
        groups = torch.as_tensor(self._groups, device=idx.device)[idx]
        return self.dro.loss(per_sample, groups)
