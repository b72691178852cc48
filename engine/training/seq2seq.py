"""The sequence-to-sequence train loop: R encoder-decoders trained side by side.

Each replica has its own seed, data order and AdamW state. After every epoch all R
replicas run teacher-forced on every sample, batch by batch, and the per-sample
reductions are computed right there in torch, on the target's positions only (R x
M x V probabilities for the M target tokens of a batch is the most ever held): the replica-mean token entropy, each
replica's token-averaged NLL, margin and teacher-forced exact match. Full distributions are
never kept (for 6,500 samples, 32 positions and 7,000 words they would be 5.8 GB
per replica and epoch). ``reduce_tokens`` equals the NumPy score functions in
:mod:`engine.scores.seq2seq` (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
import torch
import torch.nn.functional as F

from engine.data.seq2seq import SPLIT_TRAIN, Seq2SeqData
from engine.models import create_model
from engine.models.text import Seq2SeqModel, token_embedding
from engine.spec.model_recipes import TextRecipe
from engine.training.embedding_gradients import embedding_gradients
from engine.training.mitigation import Mitigation
from engine.training.side_by_side import Continuation, train_side_by_side

PREDICT_BATCH = 64  # samples per teacher-forced pass when reducing (R x 64 x T x V floats)
SEQ2SEQ_MODEL = "seq2seq_transformer"  # the registered model a seq2seq recipe trains
EXTRA_POSITIONS = 2  # positions embedded beyond the longer of source and target
GRAD_BATCH = 64  # samples per forward and backward pass when recording input gradients


def make_model(recipe: TextRecipe, data: Seq2SeqData, seed: int) -> Seq2SeqModel:
    """A freshly initialized ``seq2seq_transformer``; the same seed gives the same weights."""
    torch.manual_seed(seed)
    max_len = max(data.source_ids.shape[1], data.target_ids.shape[1]) + EXTRA_POSITIONS
    return create_model(SEQ2SEQ_MODEL, num_classes=data.vocab_size, input_shape=(max_len,),
                        start_id=data.start_id, end_id=data.end_id, dim=recipe.dim,
                        layers=recipe.layers, heads=recipe.heads)  # fmt: skip


def token_loss(model: Seq2SeqModel, src: torch.Tensor, dec: torch.Tensor, mask: torch.Tensor,
               targets: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Mean over samples of each sample's token-averaged cross-entropy.

    Only the target's positions are projected onto the vocabulary.

    Args:
        model: The encoder-decoder.
        src: Int (B, S) source ids.
        dec: Int (B, T) decoder ids.
        mask: Bool (B, T) target positions.
        targets: Int (M,) the gold tokens at the M positions of ``mask`` (row-major).
    """
    logits = model.logits_of(model.hidden(src, dec)[mask])  # (M, V)
    nll = F.cross_entropy(logits, targets, reduction="none")
    weight = (1.0 / mask.sum(1)).repeat_interleave(mask.sum(1))  # each sample weighs 1
    return (nll * weight).sum() / len(src)


def reduce_tokens(
    logits: torch.Tensor, targets: torch.Tensor, sample: torch.Tensor, num_samples: int
) -> dict[str, torch.Tensor]:
    """Per-sample reductions of R replicas' logits at the M target positions of a batch.

    Args:
        logits: Float (R, M, V) next-token logits at the target's positions.
        targets: Int (M,) gold token at each position.
        sample: Int (M,) which of the ``num_samples`` samples each position belongs to.
        num_samples: B.

    Returns:
        ``mean_entropy`` (B,) mean token entropy of the replica mean; ``ensemble_conf``
        (B,) mean replica-mean probability of the gold token; ``loss`` (R, B)
        token-averaged NLL; ``margin`` (R, B) mean of gold log-probability minus the
        best other; ``correct`` (R, B) teacher-forced exact match: every target token,
        the end token included, is the replica's most likely token given the gold
        prefix. That is "the replica's greedy decoding reproduces the target", read
        without decoding: a sequence-level correctness with no threshold, the one that
        forgetting events (Toneva et al., 2019) and the data map's correctness
        (Swayamdipta et al., 2020) count over epochs.
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    mean_p = logp.exp().mean(0)  # (M, V)
    ent = -torch.special.xlogy(mean_p, mean_p).sum(-1)  # 0 log 0 = 0
    idx = targets[None, :, None].expand(logp.shape[0], -1, 1)
    gold = logp.gather(-1, idx)[..., 0]  # (R, M)
    other = logp.scatter(-1, idx, float("-inf")).amax(-1)
    hit = (logp.argmax(-1) == targets).float()
    dev = logits.device
    count = torch.zeros(num_samples, device=dev).index_add_(
        0, sample, torch.ones(len(sample), device=dev)
    )

    def mean(values: torch.Tensor) -> torch.Tensor:  # (..., M) -> (..., B), on the CPU
        out = torch.zeros(*values.shape[:-1], num_samples, dtype=torch.float64, device=dev)
        return (out.index_add_(-1, sample, values.double()) / count).cpu()

    return {
        "mean_entropy": mean(ent),
        "ensemble_conf": mean(mean_p.gather(-1, targets[:, None])[:, 0]),
        "loss": -mean(gold),
        "margin": mean(gold - other),
        "correct": mean(hit) == 1.0,  # every token of the sample hit
    }


def _batch_tokens(
    data: Seq2SeqData, sl: slice | np.ndarray, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Source, decoder ids, target mask, the targets at the mask and their sample index."""
    mask = torch.from_numpy(data.target_mask[sl]).to(device)
    targets = torch.from_numpy(data.target_ids[sl]).to(device)[mask]
    sample = torch.arange(len(mask), device=device).repeat_interleave(mask.sum(1))
    return (torch.from_numpy(data.source_ids[sl]).to(device),
            torch.from_numpy(data.decoder_ids[sl]).to(device), mask, targets, sample)  # fmt: skip


@torch.no_grad()
def reduce_epoch(
    models: list[Seq2SeqModel], data: Seq2SeqData, device: str | torch.device = "cpu"
) -> dict[str, np.ndarray]:
    """:func:`reduce_tokens` over every sample (train and held-out), as NumPy arrays."""
    for model in models:
        model.eval()
    parts: list[dict[str, torch.Tensor]] = []
    for a in range(0, len(data), PREDICT_BATCH):
        src, dec, mask, targets, sample = _batch_tokens(
            data, slice(a, a + PREDICT_BATCH), torch.device(device)
        )
        logits = torch.stack([m.logits_of(m.hidden(src, dec)[mask]) for m in models])
        parts.append(reduce_tokens(logits, targets, sample, len(src)))
    out = {}
    for key in parts[0]:
        axis = 0 if parts[0][key].ndim == 1 else 1
        out[key] = torch.cat([p[key] for p in parts], dim=axis).numpy()
    return out


def source_input_gradients(
    model: Seq2SeqModel, data: Seq2SeqData, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Every sample's gradient of its reference's log-likelihood w.r.t. its embedded source.

    The log-likelihood is the sum over the target's positions (end token included) of
    ``log p(target token | source, gold prefix)`` under teacher forcing, i.e.
    ``log p(reference | source)``. It is differentiated w.r.t. the source tokens as the
    encoder embeds them (:meth:`~engine.models.text.Seq2SeqModel.token_embedding`):
    the source is the model's input, as the image is the classifier's. The decoder's
    inputs (the reference shifted right) are not included: they are the label itself,
    and a gradient w.r.t. them would mix how the answer's own prefix drives its
    likelihood into the input's variance. In eval mode; the model's mode is restored.

    Returns:
        (N, S, D) gradients, float32 (float64 for a float64 model); NaN at every
        padded source position (id 0), which VoG never counts.
    """
    was_training = model.training
    model.eval()
    dev = torch.device(device)
    out = []
    for a in range(0, len(data), GRAD_BATCH):
        src, dec, mask, targets, sample = _batch_tokens(data, slice(a, a + GRAD_BATCH), dev)

        def log_likelihood(src=src, dec=dec, mask=mask, targets=targets, sample=sample):
            logp = F.log_softmax(model.logits_of(model.hidden(src, dec)[mask]), dim=-1)
            gold = logp.gather(1, targets[:, None])[:, 0]  # (M,) one per target token
            return torch.zeros(len(src), dtype=gold.dtype, device=dev).index_add(0, sample, gold)

        grad = embedding_gradients(token_embedding(model), src, log_likelihood,
                                   owner=type(model).__name__)  # fmt: skip
        out.append(grad.to(torch.promote_types(grad.dtype, torch.float32)).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


@torch.no_grad()
def predict_loss_and_text(
    model: Seq2SeqModel, data: Seq2SeqData, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, list[str]]:
    """Token-averaged NLL (N,) of the reference and the greedy decoding (N strings)."""
    model.eval()
    losses, texts = [], []
    for a in range(0, len(data), PREDICT_BATCH):
        src, dec, mask, targets, sample = _batch_tokens(
            data, slice(a, a + PREDICT_BATCH), torch.device(device)
        )
        logits = model.logits_of(model.hidden(src, dec)[mask])[None]
        losses.append(reduce_tokens(logits, targets, sample, len(src))["loss"][0].numpy())
        ids = model.greedy(src, data.start_id, data.end_id, data.target_ids.shape[1])
        texts += [data.decode(row) for row in ids.cpu().numpy()]
    return np.concatenate(losses), texts


def train_seq2seq(
    data: Seq2SeqData,
    recipe: TextRecipe,
    seeds: list[int],
    *,
    on_epoch: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    log: Callable[[str], None] = lambda line: None,
    device: str | torch.device = "cpu",
    continuation: Continuation | None = None,
    mitigation: Mitigation | None = None,
    grad_epochs: Collection[int] = (),
) -> list[Seq2SeqModel]:
    """Train one encoder-decoder per seed on the training split, side by side.

    Args:
        data: The pairs.
        recipe: Model size and optimizer settings.
        seeds: One seed per replica (initialization and data order).
        on_epoch: Called after each epoch with ``(epoch, reduce_epoch(...))``; on an
            epoch of ``grad_epochs`` the dict also holds ``input_grad``, the replicas'
            source gradients, float32 (R, N, S, D) (:func:`source_input_gradients`).
        log: Progress lines.
        device: Torch device to train and predict on.
        continuation: Resume state, per-epoch checkpoint callback and the epochs to
            report (``on_epoch`` is called for those only); default: all, from scratch.
        mitigation: Upsampling or a curriculum over the training split's samples (in
            sample order), or None for a plain shuffle per epoch
            (:func:`~engine.training.side_by_side.train_side_by_side`).
        grad_epochs: Epochs after which ``on_epoch`` also gets the input gradients (VoG).

    Returns:
        The trained models.
    """
    train_idx = np.flatnonzero(data.split == SPLIT_TRAIN)
    if len(train_idx) == 0:
        raise ValueError("the seq2seq data has no training samples")
    device = torch.device(device)
    models = [make_model(recipe, data, s).to(device) for s in seeds]

    def batch_loss(model: Seq2SeqModel, idx: np.ndarray) -> torch.Tensor:
        src, dec, mask, targets, _ = _batch_tokens(data, idx, device)
        return token_loss(model, src, dec, mask, targets)

    def after_epoch(epoch: int, losses: list[float]) -> None:
        log(f"[seq2seq] epoch {epoch + 1}/{recipe.epochs}: train token NLL "
            + ", ".join(f"{x:.3f}" for x in losses))  # fmt: skip
        if on_epoch is not None:
            reduced = reduce_epoch(models, data, device)
            if epoch in grad_epochs:
                reduced["input_grad"] = np.stack(
                    [source_input_gradients(m, data, device) for m in models]
                )
            on_epoch(epoch, reduced)

    return train_side_by_side(
        models, seeds, train_idx, epochs=recipe.epochs, batch_size=recipe.batch_size,
        lr=recipe.lr, weight_decay=recipe.weight_decay, batch_loss=batch_loss,
        after_epoch=after_epoch, continuation=continuation, mitigation=mitigation,
    )  # fmt: skip
