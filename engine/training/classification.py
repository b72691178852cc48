"""The classification recipe: a plain train loop that reports scoring-set logits every epoch.

It runs with no cluster; Ray Train workers and Ray tasks call it unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from engine.models import create_model
from engine.models.text import token_embedding
from engine.scores.dynamics import NOT_PRESENTED
from engine.spec.model_recipes import TrainRecipe
from engine.training.augment import AUGMENT_SEED_OFFSET, augment_batch
from engine.training.embedding_gradients import embedding_gradients
from engine.training.objectives import SINGLE_LABEL, Objective

if TYPE_CHECKING:
    from engine.training.mitigation import Mitigation

INFER_BATCH_SIZE = 1024  # inputs per forward pass when predicting on the scoring set


EpochCallback = Callable[[int, np.ndarray, "np.ndarray | None"], None]
CheckpointCallback = Callable[[int, dict], None]
PresentationCallback = Callable[[int, np.ndarray], None]  # (epoch, int8 records (N_train,))


def make_optimizer(recipe: TrainRecipe, model: nn.Module) -> torch.optim.Optimizer:
    """The recipe's optimizer (SGD, Nesterov when momentum > 0, or AdamW) over the model's parameters."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.momentum > 0,
            weight_decay=recipe.weight_decay,
        )
    return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)


def train(
    recipe: TrainRecipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    num_classes: int,
    x_score: np.ndarray | None = None,
    on_epoch: EpochCallback | None = None,
    device: str | torch.device = "cpu",
    y_score: np.ndarray | None = None,
    grad_epochs: Collection[int] = (),
    resume: dict | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    report_epochs: Collection[int] | None = None,
    until_epoch: int | None = None,
    mitigation: Mitigation | None = None,
    on_presentations: PresentationCallback | None = None,
    history: list[dict] | None = None,
    objective: Objective = SINGLE_LABEL,
    on_epoch_weights: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
) -> nn.Module:
    """Train ``recipe.model`` on (x_train, y_train), reporting scoring-set logits each epoch.

    Initialisation and data order depend only on ``recipe.seed``: the same recipe on
    the same inputs, device and thread count gives the same weights.

    Args:
        recipe: Model and optimisation settings.
        x_train: Float32 inputs of shape (N_train, *input_shape): an array, or inputs
            from the dataset cache (gathered per batch, see :func:`batch_fetcher`).
        y_train: Int labels of shape (N_train,) in [0, num_classes), or for the
            multi-label objective multi-hot uint8 (N_train, num_classes).
        num_classes: K (multi-label: L, one sigmoid output per label).
        x_score: Inputs of shape (N_score, *input_shape) predicted after every epoch.
        on_epoch: Called as ``on_epoch(epoch, logits, input_grads)`` after each epoch
            (epoch is 0-based, logits float32 of shape (N_score, K)); ``input_grads`` is
            :func:`input_gradients` of ``y_score`` (w.r.t. the input, or for token ids
            the embedded tokens) on ``grad_epochs`` and None otherwise. Needs ``x_score``.
        device: Torch device to train on.
        y_score: Labels of the scoring set, needed for ``grad_epochs``.
        grad_epochs: Epochs (0-based) after which input gradients are recorded (VoG).
        resume: A state from ``on_checkpoint`` (as returned by ``torch.load``): training
            continues after its epoch with the same weights, optimizer, schedule, data
            order and RNG, so the result is the one an uninterrupted run gives.
        on_checkpoint: Called as ``on_checkpoint(epoch, state)`` after each epoch's
            training steps and before its predictions; ``state`` is plain tensors and
            numbers, loadable with ``torch.load(weights_only=True)``.
        report_epochs: Epochs whose predictions ``on_epoch`` receives (default all);
            the others are trained through without predicting (a replay).
        until_epoch: Stop after this epoch (default the last); the schedule still spans
            ``recipe.epochs``, so a replay that stops early matches the full run.
        mitigation: GroupDRO, upsampling or a curriculum over the training samples
            (``engine.training.mitigation``); it sets each epoch's sample order and the
            batch loss, and the cosine schedule spans its expected number of steps.
        on_presentations: Called as ``on_presentations(epoch, records)`` after each
            epoch's steps (before ``on_checkpoint`` and ``on_epoch``): int8 (N_train,)
            records of whether each training sample was classified correctly by the
            forward pass of the mini-batch that held it, before that step's update (1
            right, 0 wrong, ``NOT_PRESENTED`` if no batch held it; the last presentation
            of the epoch counts). This is how Toneva et al. (2019) count forgetting.
            Checkpoints carry the records, so a resumed run reports them too.
        history: When given, one ``{"epoch", "train_loss", "train_accuracy", "started",
            "ended"}`` is appended per epoch trained: the mean loss and accuracy of the
            mini-batches' forward passes (the learning curve logged to MLflow) and the
            epoch's wall-clock start and end (Unix seconds).
        objective: :data:`SINGLE_LABEL` (softmax + cross-entropy) or
            :data:`MULTI_LABEL` (sigmoids + summed BCE; a sample is right when every
            label is); see :mod:`engine.training.objectives`.
        on_epoch_weights: When given, called as ``on_epoch_weights(epoch, weights)``
            instead of ``on_epoch`` after each epoch in ``report_epochs``, with a CPU
            copy of the model's ``state_dict``: someone else predicts the scoring set
            (:mod:`engine.distributed.epoch_predictions`); no input gradients.

    Returns:
        The trained model in eval mode.

    Raises:
        ValueError: If ``resume`` was written for another recipe, ``y_train`` is not
            what the objective trains on, or a mitigation or input gradients are asked
            of the multi-label objective.
    """
    if objective is not SINGLE_LABEL and (mitigation is not None or grad_epochs):
        raise ValueError(
            f"the {objective.name} objective trains without a mitigation or input gradients"
        )
    if on_epoch is not None and x_score is None:
        raise ValueError("on_epoch needs x_score, the inputs to predict on after every epoch")
    if grad_epochs and y_score is None:
        raise ValueError("grad_epochs needs y_score, the labels whose logits are differentiated")
    if on_epoch_weights is not None and (on_epoch is not None or grad_epochs):
        raise ValueError("on_epoch_weights replaces on_epoch and takes no grad_epochs")
    torch.manual_seed(recipe.seed)
    model = create_model(
        recipe.model,
        num_classes=num_classes,
        input_shape=tuple(x_train.shape[1:]),
        **recipe.model_kwargs,
    ).to(device)
    optimizer = make_optimizer(recipe, model)
    steps_per_epoch = max(1, -(-len(x_train) // recipe.batch_size))
    total_steps = (
        recipe.epochs * steps_per_epoch
        if mitigation is None
        else mitigation.expected_steps(recipe.epochs, recipe.batch_size)
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    fetch = batch_fetcher(x_train, device)
    yt = objective.targets(y_train, device)
    order_gen = torch.Generator().manual_seed(recipe.seed)
    aug_gen = torch.Generator().manual_seed(recipe.seed + AUGMENT_SEED_OFFSET)

    def report(epoch: int) -> None:
        if report_epochs is not None and epoch not in report_epochs:
            return
        if on_epoch_weights is not None:
            on_epoch_weights(epoch, {k: v.detach().cpu().clone()
                                     for k, v in model.state_dict().items()})  # fmt: skip
            return
        if on_epoch is None:
            return
        grads = (
            input_gradients(model, x_score, y_score, device=device)
            if epoch in grad_epochs
            else None
        )
        on_epoch(epoch, infer(model, x_score, device=device), grads)

    start_epoch = 0
    if resume is not None:
        if resume.get("recipe") != recipe_key(recipe):
            raise ValueError(
                f"checkpoint was written for recipe {resume.get('recipe')}, "
                f"not {recipe_key(recipe)}"
            )
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        order_gen.set_state(resume["order_rng"])
        if "augment_rng" in resume:
            aug_gen.set_state(resume["augment_rng"])
        torch.set_rng_state(resume["torch_rng"])
        if "cuda_rng" in resume and torch.device(device).type == "cuda":
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
        start_epoch = int(resume["epoch"]) + 1
        if on_presentations is not None and "presented" in resume:
            on_presentations(start_epoch - 1, resume["presented"].numpy())
        report(start_epoch - 1)  # the checkpointed epoch may not have been predicted yet
    last = recipe.epochs - 1 if until_epoch is None else min(until_epoch, recipe.epochs - 1)
    for epoch in range(start_epoch, last + 1):
        model.train()
        if mitigation is None:
            perm = torch.randperm(len(x_train), generator=order_gen).to(device)
        else:
            perm = mitigation.epoch_order(epoch, recipe.epochs, order_gen).to(device)
        presented = (
            None
            if on_presentations is None
            else torch.full((len(x_train),), NOT_PRESENTED, dtype=torch.int8, device=device)
        )
        seen = [0.0, 0, 0]  # loss sum, right, samples of this epoch's batches (history)
        epoch_started = time.time()
        for start in range(0, len(perm), recipe.batch_size):
            idx = perm[start : start + recipe.batch_size]
            if len(idx) < 2 and has_batchnorm(model):
                continue  # BatchNorm cannot normalise a batch of one
            x = fetch(idx)
            if recipe.augment:
                x = augment_batch(x, recipe.augment, aug_gen)
            logits = model(x)
            if presented is not None or history is not None:
                right = objective.batch_correct(logits.detach(), yt[idx])
                if presented is not None:
                    presented[idx] = right
                seen[1] += int(right.sum())
            if mitigation is None:
                loss = objective.batch_loss(logits, yt[idx])
            else:
                loss = mitigation.batch_loss(logits, yt[idx], idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler.last_epoch < total_steps:  # a longer-than-expected epoch stays at 0
                scheduler.step()
            if history is not None:
                seen[0] += float(loss.detach()) * len(idx)
                seen[2] += len(idx)
        if history is not None:
            history.append({"epoch": epoch, "train_loss": seen[0] / max(seen[2], 1),
                            "train_accuracy": seen[1] / max(seen[2], 1),
                            "started": epoch_started, "ended": time.time()})  # fmt: skip
        if presented is not None:
            on_presentations(epoch, presented.cpu().numpy())
        if on_checkpoint is not None:
            state = {
                "epoch": epoch,
                "recipe": recipe_key(recipe),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "order_rng": order_gen.get_state(),
                "torch_rng": torch.get_rng_state(),
            }
            if recipe.augment:
                state["augment_rng"] = aug_gen.get_state()
            if presented is not None:
                state["presented"] = presented.cpu()
            if torch.device(device).type == "cuda":
                state["cuda_rng"] = torch.cuda.get_rng_state(device)
            on_checkpoint(epoch, state)
        report(epoch)
    model.eval()
    return model


def recipe_key(recipe: TrainRecipe) -> str:
    """The recipe as a canonical string, stored in checkpoints to refuse a mismatched resume.

    A recipe without augmentation has the key it had before ``augment`` existed, so
    checkpoints written then still resume.
    """
    fields = asdict(recipe)
    if not fields["augment"]:
        del fields["augment"]
    return json.dumps(fields, sort_keys=True)


def as_input(x: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """Inputs as a tensor: token ids (integer arrays) stay int64, everything else float32."""
    arr = np.asarray(x)
    dtype = torch.long if np.issubdtype(arr.dtype, np.integer) else torch.float32
    return torch.as_tensor(arr, dtype=dtype, device=device)


def batch_fetcher(
    x: object, device: str | torch.device = "cpu"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """How a train loop takes the inputs at positions ``idx`` (a tensor of any shape).

    A NumPy array goes to the device once and is indexed there; inputs from the
    dataset cache (:class:`engine.data.cache.CachedInputs`) are gathered and
    converted to float32 per batch, so no whole float32 copy is ever made.

    Returns:
        ``fetch(idx)`` -> inputs of shape ``(*idx.shape, *input_shape)`` on ``device``.
    """
    if isinstance(x, (np.ndarray, torch.Tensor)):
        xt = as_input(x, device)
        return lambda idx: xt[idx]

    def fetch(idx: torch.Tensor) -> torch.Tensor:
        batch = as_input(x[idx.reshape(-1).cpu().numpy()], device)
        return batch.reshape(*idx.shape, *batch.shape[1:])

    return fetch


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` normalises by batch statistics (a batch of one cannot train it)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def infer(
    model: nn.Module,
    inputs: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = INFER_BATCH_SIZE,
) -> np.ndarray:
    """Predict logits for every input, in eval mode.

    Args:
        model: A classifier mapping (B, ...) to (B, K).
        inputs: Float32 array of shape (N, ...).
        device: Torch device.
        batch_size: Inputs per forward pass.

    Returns:
        Float32 logits of shape (N, K).
    """
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(inputs), batch_size):
        batch = as_input(inputs[start : start + batch_size], device)
        outputs.append(model(batch).float().cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy()


def input_gradients(
    model: nn.Module,
    inputs: np.ndarray,
    labels: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = INFER_BATCH_SIZE,
) -> np.ndarray:
    """Per-sample input gradients for VoG, in eval mode.

    Real-valued inputs (images, tables): the gradient of the given label's logit (the
    pre-softmax activation, as Agarwal et al. 2022) w.r.t. the input.

    Token ids (integer inputs): the gradient of the given label's log-likelihood,
    ``log_softmax(logits)[y]``, w.r.t. the embedded tokens, the outputs of the model's
    token-embedding layer (:func:`engine.models.text.token_embedding`): token ids have
    no gradient, and the log-likelihood is the loss VoG's text form is defined on.
    Positions holding the layer's padding id are NaN: they are no part of the sample,
    and :class:`engine.scores.vog.VoGAccumulator` averages over the other elements only.

    Args:
        model: A classifier mapping (B, ...) to (B, K).
        inputs: Float (N, ...) inputs, or int (N, L) token ids.
        labels: Int (N,).
        device: Torch device.
        batch_size: Inputs per pass.

    Returns:
        (N, ...) gradients, the shape of ``inputs``; for token ids (N, L, D), D the
        embedding width. Float32, or float64 for a float64 model.

    Raises:
        ValueError: For token ids and a model without a token-embedding layer (or one
            without a padding id).
    """
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(inputs), batch_size):
        x = as_input(inputs[start : start + batch_size], device)
        y = torch.as_tensor(labels[start : start + batch_size], dtype=torch.long, device=device)
        if x.dtype == torch.long:
            grad = _embedding_gradients(model, x, y)
        else:
            x.requires_grad_(True)
            logits = model(x)
            (grad,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), x)
        out.append(grad.detach().to(torch.promote_types(grad.dtype, torch.float32)).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def _embedding_gradients(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, L, D) gradient of log p(label) w.r.t. the embedded tokens; NaN at padding."""
    return embedding_gradients(
        token_embedding(model),
        ids,
        lambda: torch.log_softmax(model(ids), dim=1).gather(1, labels[:, None])[:, 0],
        owner=type(model).__name__,
    )
