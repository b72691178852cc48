"""The extractive-QA train loop: R span readers trained side by side in one process.

Each replica has its own seed (initialization), data order and AdamW state; after
every epoch each replica predicts start and end log-probabilities on every sample,
and ``on_epoch`` receives all R of them, so the caller can reduce over replicas
before anything is written (the reduced shard form). No Ray here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
import torch
import torch.nn.functional as F

from engine.data.qa import SPLIT_TRAIN, QAData
from engine.models import create_model
from engine.models.text import SpanReader, token_embedding
from engine.spec.model_recipes import TextRecipe
from engine.training.embedding_gradients import embedding_gradients
from engine.training.mitigation import Mitigation
from engine.training.side_by_side import Continuation, train_side_by_side

PREDICT_BATCH = 256  # samples per forward pass when predicting
GRAD_BATCH = 64  # samples per forward and backward pass when recording input gradients
READER_MODEL = "span_reader"  # the registered model a QA recipe trains


def make_reader(recipe: TextRecipe, vocab: int, seq_len: int, seed: int) -> SpanReader:
    """A fresh ``span_reader`` from the registry; the same seed gives the same weights."""
    torch.manual_seed(seed)
    return create_model(READER_MODEL, input_shape=(seq_len,), vocab=vocab, dim=recipe.dim,
                        layers=recipe.layers, heads=recipe.heads)  # fmt: skip


def _tensors(data: QAData, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(data.input_ids[idx]).to(device),
        torch.from_numpy(data.token_types[idx]).to(device),
        torch.from_numpy(data.context_mask[idx]).to(device),
    )


@torch.no_grad()
def span_log_probs(
    model: SpanReader, data: QAData, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end log-probabilities of every sample, float32 (N, L); -inf off-window."""
    model.eval()
    starts, ends = [], []
    for a in range(0, len(data), PREDICT_BATCH):
        idx = np.arange(a, min(a + PREDICT_BATCH, len(data)))
        s, e = model(*_tensors(data, idx, torch.device(device)))
        starts.append(F.log_softmax(s, dim=-1).cpu().numpy())
        ends.append(F.log_softmax(e, dim=-1).cpu().numpy())
    return np.concatenate(starts), np.concatenate(ends)


def span_input_gradients(
    model: SpanReader, data: QAData, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Every sample's gradient of its gold span's log-likelihood w.r.t. its embedded tokens.

    The log-likelihood is ``log p_start(gold start) + log p_end(gold end)``, the two
    softmaxes over the passage window that the span loss trains; the embedded tokens
    are the outputs of the reader's word embeddings
    (:meth:`~engine.models.text.SpanReader.token_embedding`) for the question and
    passage ids. In eval mode (no dropout); the model's mode is restored.

    Returns:
        (N, L, D) gradients, float32 (float64 for a float64 model); NaN at every
        padded position (input id 0), which VoG never counts.
    """
    was_training = model.training
    model.eval()
    dev = torch.device(device)
    start_t, end_t = torch.from_numpy(data.start).to(dev), torch.from_numpy(data.end).to(dev)
    out = []
    for a in range(0, len(data), GRAD_BATCH):
        idx = np.arange(a, min(a + GRAD_BATCH, len(data)))
        ids, types, window = _tensors(data, idx, dev)

        def log_likelihood(ids=ids, types=types, window=window, idx=idx) -> torch.Tensor:
            s, e = model(ids, types, window)
            return (
                F.log_softmax(s, dim=-1).gather(1, start_t[idx, None])[:, 0]
                + F.log_softmax(e, dim=-1).gather(1, end_t[idx, None])[:, 0]
            )

        grad = embedding_gradients(token_embedding(model), ids, log_likelihood,
                                   owner=type(model).__name__)  # fmt: skip
        out.append(grad.to(torch.promote_types(grad.dtype, torch.float32)).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def span_loss(
    start_logits: torch.Tensor, end_logits: torch.Tensor, start: torch.Tensor, end: torch.Tensor
) -> torch.Tensor:
    """Mean over the batch of (CE(start) + CE(end)) / 2."""
    return (F.cross_entropy(start_logits, start) + F.cross_entropy(end_logits, end)) / 2


def train_readers(
    data: QAData,
    recipe: TextRecipe,
    seeds: list[int],
    *,
    on_epoch: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    log: Callable[[str], None] = lambda line: None,
    device: str | torch.device = "cpu",
    continuation: Continuation | None = None,
    mitigation: Mitigation | None = None,
    grad_epochs: Collection[int] = (),
) -> list[SpanReader]:
    """Train one reader per seed on the training split, side by side.

    Args:
        data: The QA samples.
        recipe: Model size and optimizer settings.
        seeds: One seed per replica (initialization and data order).
        on_epoch: Called after each epoch with ``(epoch, start_log_probs, end_log_probs)``,
            each float32 (R, N, L) over all samples (train and held-out); on an epoch of
            ``grad_epochs`` also with the replicas' input gradients, float32 (R, N, L, D)
            (:func:`span_input_gradients`), as a fourth argument.
        log: Progress lines.
        device: Torch device to train and predict on.
        continuation: Resume state, per-epoch checkpoint callback and the epochs to
            report (``on_epoch`` is called for those only); default: all, from scratch.
        mitigation: Upsampling or a curriculum over the training split's samples (in
            sample order), or None for a plain shuffle per epoch
            (:func:`~engine.training.side_by_side.train_side_by_side`).
        grad_epochs: Epochs after which ``on_epoch`` also gets the input gradients (VoG).

    Returns:
        The trained readers.
    """
    train_idx = np.flatnonzero(data.split == SPLIT_TRAIN)
    if len(train_idx) == 0:
        raise ValueError("the QA data has no training samples")
    seq_len = data.input_ids.shape[1]
    device = torch.device(device)
    models = [make_reader(recipe, data.vocab_size, seq_len, s).to(device) for s in seeds]
    start_t, end_t = torch.from_numpy(data.start).to(device), torch.from_numpy(data.end).to(device)

    def batch_loss(model: SpanReader, idx: np.ndarray) -> torch.Tensor:
        s, e = model(*_tensors(data, idx, device))
        return span_loss(s, e, start_t[idx], end_t[idx])

    def after_epoch(epoch: int, losses: list[float]) -> None:
        log(f"[qa] epoch {epoch + 1}/{recipe.epochs}: train span loss "
            + ", ".join(f"{x:.3f}" for x in losses))  # fmt: skip
        if on_epoch is not None:
            preds = [span_log_probs(m, data, device) for m in models]
            grads = (
                [np.stack([span_input_gradients(m, data, device) for m in models])]
                if epoch in grad_epochs
                else []
            )
            on_epoch(
                epoch, np.stack([p[0] for p in preds]), np.stack([p[1] for p in preds]), *grads
            )

    return train_side_by_side(
        models, seeds, train_idx, epochs=recipe.epochs, batch_size=recipe.batch_size,
        lr=recipe.lr, weight_decay=recipe.weight_decay, batch_loss=batch_loss,
        after_epoch=after_epoch, continuation=continuation, mitigation=mitigation,
    )  # fmt: skip
