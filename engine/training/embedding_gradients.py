"""Gradients w.r.t. embedded tokens: the input VoG (Agarwal et al. 2022) reads for text.

Token ids have no gradient; text VoG differentiates a log-likelihood w.r.t. the outputs
of a model's token-embedding layer instead (the embedded tokens, before positions,
token types or LayerNorm). A forward hook swaps that layer's output for a detached
leaf of the same values, so the forward pass is unchanged and the leaf's gradient is
the gradient w.r.t. the embedded tokens. Positions holding the layer's padding id are
NaN: they are no part of the sample, and :class:`engine.scores.vog.VoGAccumulator`
averages over the other elements only.

Used by the classification loop (true-class log-likelihood), the QA span readers
(gold span) and the seq2seq encoder-decoders (reference, w.r.t. the source tokens).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def embedding_gradients(
    layer: nn.Embedding | None,
    ids: torch.Tensor,
    log_likelihood: Callable[[], torch.Tensor],
    *,
    owner: str,
) -> torch.Tensor:
    """(B, L, D) gradient of each sample's log-likelihood w.r.t. its embedded tokens.

    Args:
        layer: The token-embedding layer whose outputs are differentiated; it must have
            a padding id and be called exactly once, on ``ids``, by ``log_likelihood``.
        ids: Int (B, L) token ids that layer embeds (padding = ``layer.padding_idx``).
        log_likelihood: Runs the model's forward pass and returns the (B,) per-sample
            log-likelihoods; samples are independent, so the gradient of their sum
            holds each sample's own gradient.
        owner: The model's name, for error messages.

    Returns:
        The gradient, dtype of the embeddings; NaN at every padded position.

    Raises:
        ValueError: For a missing layer or one without a padding id, or a layer the
            forward pass calls other than once.
    """
    if layer is None or layer.padding_idx is None:
        raise ValueError(
            f"input gradients of token ids differentiate the token embeddings: "
            f"{owner} exposes no token_embedding() layer with a padding id"
        )
    embedded: list[torch.Tensor] = []

    def capture(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().requires_grad_(True)  # the embedded tokens, as a leaf
        embedded.append(leaf)
        return leaf

    handle = layer.register_forward_hook(capture)
    try:
        with torch.enable_grad():
            values = log_likelihood()
    finally:
        handle.remove()
    if len(embedded) != 1:
        raise ValueError(
            f"{owner} called its token embedding {len(embedded)} times in one forward pass; "
            "VoG needs exactly one embedding of the tokens"
        )
    if embedded[0].shape[:2] != ids.shape:
        raise ValueError(
            f"{owner} embedded tokens of shape {tuple(embedded[0].shape[:2])}, not the "
            f"{tuple(ids.shape)} ids given"
        )
    (grad,) = torch.autograd.grad(values.sum(), embedded[0])
    return grad.masked_fill((ids == layer.padding_idx)[..., None], float("nan"))
