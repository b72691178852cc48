"""A small random run written as real shards, for tests that score or read shards back."""

from pathlib import Path

import numpy as np

from engine.scores import margins_from_logits
from engine.shards import record_epoch, write_epoch_shards


def write_full_run(
    run_dir: Path,
    r: int = 3,
    e: int = 4,
    n: int = 13,
    k: int = 4,
    block_size: int = 5,
    grad_epochs: tuple[int, ...] = (1, 3),
) -> dict[str, np.ndarray]:
    """Write float32 full shards and manifest rows of a random (R, E, N, K) run into ``run_dir``.

    Returns:
        ``logits`` (R, E, N, K), ``probs`` (R, E, N, K), ``labels`` (N,), ``losses``
        (R, E, N) and ``grads`` (R, len(grad_epochs), N, 6): what the shards hold.
    """

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(r, e, n, k)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, k, size=n)
    losses = -np.log(probs[:, :, np.arange(n), labels])
    margins = margins_from_logits(labels, logits)
    grads = rng.normal(size=(r, e, n, 6))
    for ri in range(r):
        for ei in range(e):
            blocks = write_epoch_shards(
                run_dir,
                replica=ri,
                epoch=ei,
                probs=probs[ri, ei],
                loss=losses[ri, ei],
                labels=labels,
                margin=margins[ri, ei],
                input_grad=grads[ri, ei] if ei in grad_epochs else None,
                block_size=block_size,
            )
            record_epoch(run_dir, replica=ri, epoch=ei, blocks=blocks)
    return {
        "logits": logits,
        "probs": probs,
        "labels": labels,
        "losses": losses,
        "grads": grads[:, list(grad_epochs)],
    }


ML_SHAPE = (2, 3, 11, 4)  # replicas, epochs, samples, labels of the multi-label run
ML_BLOCK = 5  # its samples per block


def write_multilabel_run(run_dir, *, seed=0, dtype="float32"):
    """Random multi-label shards of an (ML_SHAPE) run; returns ``probs`` and ``label_sets``."""
    r_, e_, n_, l_ = ML_SHAPE
    rng = np.random.default_rng(seed)
    probs = (1 / (1 + np.exp(-2 * rng.normal(size=ML_SHAPE)))).astype(np.float32)
    hot = (rng.random((n_, l_)) < 0.4).astype(np.uint8)
    hot[hot.sum(axis=1) == 0, 0] = 1
    for r in range(r_):
        for e in range(e_):
            blocks = write_epoch_shards(
                run_dir, replica=r, epoch=e, probs=probs[r, e], loss=np.ones(n_, np.float32),
                labels=None, block_size=ML_BLOCK, probs_dtype=dtype, label_sets=hot,
            )  # fmt: skip
            record_epoch(run_dir, replica=r, epoch=e, blocks=blocks)
    return probs, hot
