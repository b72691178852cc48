"""Running mean and variance along a chunked axis (Chan et al.'s parallel merge)."""

from __future__ import annotations

import numpy as np


class RunningMoments:
    """Mean and population variance over axis 1 of chunks shaped (A, m, *rest).

    Merging chunks with Chan's formula keeps the result equal (to rounding) to
    ``x.mean(axis=1)`` and ``x.var(axis=1)`` on the concatenated chunks, without the
    cancellation of a sum-of-squares formula.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    def update(self, chunk: np.ndarray) -> None:
        """Add a chunk of shape (A, m, *rest)."""
        chunk = np.asarray(chunk, dtype=np.float64)
        m = chunk.shape[1]
        chunk_mean = chunk.mean(axis=1)
        chunk_m2 = ((chunk - chunk_mean[:, None]) ** 2).sum(axis=1)
        if self.mean is None:
            self.mean, self._m2 = chunk_mean, chunk_m2
        else:
            if self.mean.shape != chunk_mean.shape:
                raise ValueError(
                    f"chunks must keep the shape {self.mean.shape} off the chunked axis, got {chunk_mean.shape}"
                )
            total = self.count + m
            delta = chunk_mean - self.mean
            self.mean = self.mean + delta * m / total
            self._m2 = self._m2 + chunk_m2 + delta**2 * self.count * m / total
        self.count += m

    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0) over everything seen."""
        if self._m2 is None:
            raise ValueError("RunningMoments.std() called before any update()")
        return np.sqrt(np.maximum(self._m2 / self.count, 0.0))
